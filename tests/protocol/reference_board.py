"""A minimal board for tests and benchmarks: HELLO, STATUS and flashing into RAM.

It is the protocol's own reference responder, not the emulated board (that is
``firmware_sim``). Run it from the repository root in its own process, the way a board sits
behind a USB-serial port::

    python -m tests.protocol.reference_board --port pty     # first stdout line: the pty path
    python -m tests.protocol.reference_board --port socket  # first line: socket://127.0.0.1:PORT

or in-process behind ``protocol.transport.InProcessTransport(board.responder.feed)``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import asdict
from typing import Any

from protocol.board import BOARD_MAX_PAYLOAD, FlashReceiver, MemorySlotStore, Responder
from protocol.messages import PROTOCOL_VERSION, MessageType
from protocol.transport import PtyServer, SocketServer

BOARD_ID = "protocol-test-board"


class ReferenceBoard:
    """A :class:`Responder` with HELLO, STATUS and FLASH_* over a :class:`MemorySlotStore`."""

    def __init__(self, capacity: int = 4 << 20, max_payload: int = BOARD_MAX_PAYLOAD) -> None:
        self.store = MemorySlotStore(capacity)
        self.responder = Responder(max_payload=max_payload)
        self.flash = FlashReceiver(self.store, max_chunk=max_payload - 1024)
        self.flash.register(self.responder)
        self.responder.register(MessageType.HELLO, self.hello)
        self.responder.register(MessageType.STATUS, self.status)

    def hello(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "board_id": BOARD_ID,
            "profile": "test",
            "firmware": "tests.protocol.reference_board",
            "protocol": PROTOCOL_VERSION,
            "capabilities": ["flash"],
            "max_payload": self.responder.max_payload,
        }

    def status(self, body: dict[str, Any]) -> dict[str, Any]:
        counters = {
            **asdict(self.responder.decoder.counters),
            **asdict(self.responder.counters),
            "flash_bytes_written": self.store.bytes_written,
        }
        return {"state": "idle", "active_slot": None, "learning": False, "counters": counters}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", choices=("pty", "socket"), default="pty")
    parser.add_argument("--max-payload", type=int, default=BOARD_MAX_PAYLOAD)
    args = parser.parse_args(argv)
    board = ReferenceBoard(max_payload=args.max_payload)
    server = PtyServer() if args.port == "pty" else SocketServer()
    server.open()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(server.url, flush=True)
    try:
        board.responder.serve(server)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
