"""A minimal board for tests and benchmarks: HELLO, STATUS and flashing into RAM.

It is the protocol's own reference responder, not the emulated board (that is
``firmware_sim``). Run it in its own process, the way a board sits behind a USB-serial port::

    python -m protocol.testing --port pty       # first stdout line: the pty path to open
    python -m protocol.testing --port socket    # first stdout line: socket://127.0.0.1:PORT

or in-process with :class:`LoopbackBoard`, a transport that runs the responder as it sends.
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
            "firmware": "protocol.testing",
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


class LoopbackBoard:
    """An in-process board as a transport: sending a request runs the responder, and its answers
    wait in a buffer until the client reads them, like bytes in a port's receive buffer.

    (Not pyserial's ``loop://``: its bounded queue blocks the one thread that both writes an
    answer and would read it, as soon as an answer is larger than the queue.)
    """

    bytes_per_second: float | None = None

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self._pending = bytearray()

    def open(self) -> None:
        self._pending.clear()

    def send(self, data: bytes) -> None:
        self._pending += self.responder.feed(data) or b""

    def receive(self, max_bytes: int, timeout: float) -> bytes:
        out = bytes(self._pending[:max_bytes])
        del self._pending[:max_bytes]
        return out

    def close(self) -> None:
        self._pending.clear()


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
