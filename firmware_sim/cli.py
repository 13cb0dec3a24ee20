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
        help="Ed25519 public key (PEM or 32 raw bytes): refuse images not signed with it",
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="board fault applied at every boot, e.g. board:dead-neuron:core=0,fraction=0.1",
    )
    p.set_defaults(handler=board_command)


def load_public_key(path: Path) -> bytes:
    """Raw 32-byte Ed25519 public key from a PEM file or a raw key file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from firmware_sim.errors import BoardError

    data = path.read_bytes()
    if len(data) == 32:
        return data
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise BoardError(f"{path} is not a PEM public key or 32 raw key bytes.") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BoardError(f"{path} holds a public key that is not Ed25519.")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def board_command(args: argparse.Namespace) -> dict:
    from firmware_sim.faults import parse_fault
    from firmware_sim.server import Board, serve

    faults = [parse_fault(spec) for spec in args.fault]
    flash_dir = args.flash_dir or Path(tempfile.mkdtemp(prefix="glocal-board-"))
    key = load_public_key(args.public_key) if args.public_key else None
    board = Board(flash_dir, args.profile, public_key=key, startup_faults=faults)
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
