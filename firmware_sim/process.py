"""A board in a child process: ``glocal board --port pty``, reached over its pty exactly like a
USB-serial board. The demo, the HIL tests and the benchmarks start boards this way."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from firmware_sim.errors import BoardError


class BoardProcess:
    """Start a board; ``url`` is the port it announced on its first stdout line.

    ``extra`` are further ``glocal board`` arguments (``--public-key``, ``--fault``...). Use it as a
    context manager, or call :meth:`stop`; :meth:`kill` is SIGKILL, for power-loss tests.
    """

    def __init__(
        self, profile: str = "tianjic", flash_dir: str | Path | None = None, *extra: str
    ) -> None:
        self.flash_dir = Path(flash_dir or tempfile.mkdtemp(prefix="glocal-board-"))
        command = [sys.executable, "-m", "glocal", "board", "--port", "pty"]
        command += ["--profile", profile, "--flash-dir", str(self.flash_dir), *extra]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.process.stdout is not None  # Popen with stdout=PIPE always has one
        self.url = self.process.stdout.readline().strip()
        if not self.url:
            self.stop()
            raise BoardError("the board process exited without announcing its port.")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> BoardProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
