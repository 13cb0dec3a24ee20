"""The contract between host and board: framing, messages, transports, client, core images, and
the fault-spec syntax every fault domain shares (with the link domain's own faults).

Imports numpy, msgpack, pyserial, cryptography and the standard library; nothing else of ours."""
