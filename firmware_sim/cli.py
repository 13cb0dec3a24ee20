"""``glocal board``: start an emulated board on a pty, a TCP port or a serial URL."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)


def register(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """Add ``glocal board``."""
    from firmware_sim.profiles import PROFILES

    p = subparsers.add_parser(
        "board",
        parents=parents,
        help="run an emulated neuromorphic board (prints its port first)",
        description=(
            "Run the emulated board: it boots the active image of its flash (if any) and answers "
            "the protocol on PORT until interrupted. The first line on stdout is the port to "
            "connect to (a pty path or socket://HOST:PORT)."
        ),
    )
    p.add_argument(
        "--port",
        default="pty",
        help="pty (default), socket://127.0.0.1:PORT (0 picks a free port) or a pyserial URL",
    )
    p.add_argument("--profile", default="tianjic", choices=sorted(PROFILES), help="board profile")
    p.add_argument(
        "--flash-dir", type=Path, help="folder of the emulated flash (default: a fresh temp dir)"
    )
    p.add_argument("--baud", type=int, default=921_600, help="baud rate of a serial URL")
    p.add_argument(
        "--public-key",
        type=Path,
        help="Ed25519 public key (PEM, 32 raw bytes or hex): refuse images not signed with it",
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="board fault applied at every boot, e.g. board:dead-neuron:core=0,fraction=0.1",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no session log (by default one line per HELLO, FLASH, BOOT, RESET, refusal; "
        "-v adds the hex of every frame)",
    )
    p.set_defaults(handler=board_command)


def board_command(args: argparse.Namespace) -> dict:
    from firmware_sim.faults import parse_fault
    from firmware_sim.server import Board, serve

    if args.quiet:
        logging.getLogger("firmware_sim").setLevel(logging.WARNING)
    faults = [parse_fault(spec) for spec in args.fault]
    flash_dir = args.flash_dir or Path(tempfile.mkdtemp(prefix="glocal-board-"))
    key = None
    if args.public_key:
        from protocol.image import load_public_key

        key = load_public_key(args.public_key)
    board = Board(flash_dir, args.profile, public_key=key, startup_faults=faults, log_session=True)
    log.info(
        "board %s, flash in %s, %s",
        args.profile,
        flash_dir,
        f"booted slot {board.active_slot}" if board.engine else "no image booted",
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def announce(url: str) -> None:
        sys.stdout.write(url + "\n")
        sys.stdout.flush()

    serve(board, args.port, args.baud, announce, stop)
    return {"flash_dir": str(flash_dir), "counters": board.counters()}
