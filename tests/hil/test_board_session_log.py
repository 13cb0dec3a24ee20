"""``glocal board`` logs its session on stderr, one line per event, as a user watching it sees
it: a board process on a pty, driven by the host's client (issue 17)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from deploy.flash import connect
from deploy.hil import conformance_image
from firmware_sim.tables_io import pack_tables
from protocol.errors import RemoteError

pytestmark = pytest.mark.hil


def drive_board(tmp_path, *flags: str) -> tuple[list[str], str]:
    """Start a board, HELLO, flash, BOOT, RESET, send a STEP it refuses: its stderr lines and
    the image's sha256."""
    tmp_path.mkdir(exist_ok=True)
    log = tmp_path / "board.err"
    command = [sys.executable, "-m", "glocal", "board", "--port", "pty", *flags]
    command += ["--flash-dir", str(tmp_path / "flash")]
    with open(log, "w") as err:
        board = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            client, transport = connect(board.stdout.readline().strip())
            try:
                client.hello()
                image = pack_tables(conformance_image("tianjic"))
                client.boot(client.flash(image).slot)
                client.reset()
                with pytest.raises(RemoteError):
                    client.step(np.zeros(2))
            finally:
                transport.close()
        finally:
            board.terminate()
            board.wait(10)
    return log.read_text().splitlines(), hashlib.sha256(image).hexdigest()


def test_the_board_logs_one_line_per_session_event(tmp_path) -> None:
    lines, sha = drive_board(tmp_path)
    events = [line for line in lines if not line.startswith("board ")]
    assert events[0].startswith("HELLO: answered as glocal-board")
    assert events[1].startswith("FLASH begin: ") and f"sha256 {sha[:16]}..." in events[1]
    assert events[2].startswith("FLASH end: ") and "verified, written to slot 0" in events[2]
    assert events[3] == f"BOOT: slot 0, sha256 {sha[:16]}..."
    assert events[4] == "RESET"
    assert events[5].startswith("refused STEP: STEP inputs must be 6 numbers")
    assert len(events) == 6 and not any("<-" in line for line in lines)


def test_quiet_silences_and_verbose_adds_frame_hex(tmp_path) -> None:
    quiet, _ = drive_board(tmp_path / "q", "-q")
    assert quiet == []
    verbose, _ = drive_board(tmp_path / "v", "-v")
    assert any(line.startswith("<- ") for line in verbose)
    assert any(line.startswith("-> ") for line in verbose)
    assert any(line.startswith("BOOT: slot 0") for line in verbose)
