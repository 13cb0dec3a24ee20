"""The contract between host and board: framing, messages, transports, client, core images.

Imports numpy, msgpack, pyserial, cryptography and the standard library; nothing else of ours."""
