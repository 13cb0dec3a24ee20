"""Connect to a board, flash an image (progress bar, resume, hash check) and boot it.

Also :class:`BoardProcess`: an emulated board (``glocal board --port pty``) in a child process,
reached over its pty exactly like a USB-serial board; the demo, the HIL tests and the benchmark
use it.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from deploy.errors import DeployError


def connect(url: str, timeout: float = 0.5, **link: Any) -> tuple[Any, Any]:
    """An opened transport to ``url`` (``link`` options add link-fault emulation) and a client."""
    from protocol.client import Client
    from protocol.errors import TransportError
    from protocol.transport import LinkEmulator, SerialTransport

    transport: Any = SerialTransport(url)
    if link:
        transport = LinkEmulator(transport, **link)
    try:
        transport.open()
    except TransportError as error:
        raise DeployError(str(error)) from None
    return Client(transport, timeout=timeout, retries=6), transport


def flash_and_boot(client: Any, data: bytes, progress: bool = True) -> dict[str, Any]:
    """Flash ``data`` (resuming what the board holds), verify its hash, boot it."""
    from tqdm import tqdm

    bar = tqdm(
        total=len(data),
        unit="B",
        unit_scale=True,
        desc="flash",
        file=sys.stderr,
        disable=not progress,
    )

    def update(offset: int, size: int) -> None:
        bar.n = offset
        bar.refresh()
        if offset >= size:
            bar.close()  # before the client logs "Hash of data verified."

    try:
        result = client.flash(data, progress=update)
    finally:
        bar.close()
    booted = client.boot(result.slot)
    if booted["sha256"] != result.sha256:
        raise DeployError("the board booted an image whose hash is not the one flashed.")
    return {
        "bytes": result.size,
        "sha256": result.sha256.hex(),
        "slot": result.slot,
        "resumed_from": result.resumed_from,
        "bytes_sent": result.bytes_sent,
        "seconds": round(result.seconds, 3),
        "retries": result.retries,
    }


class BoardProcess:
    """``glocal board --port pty`` in a child process; ``url`` is the pty it announced."""

    def __init__(
        self, profile: str = "tianjic", flash_dir: str | Path | None = None, *extra: str
    ) -> None:
        self.flash_dir = Path(flash_dir or tempfile.mkdtemp(prefix="glocal-board-"))
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "glocal",
                "board",
                "--port",
                "pty",
                "--profile",
                profile,
                "--flash-dir",
                str(self.flash_dir),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url:
            self.stop()
            raise DeployError("the board process exited without announcing its port.")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def __enter__(self) -> BoardProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_board(client: Any, seconds: float = 10.0) -> dict[str, Any]:
    """HELLO until the board answers (a board process needs a moment to start)."""
    from protocol.errors import ProtocolError

    deadline = time.monotonic() + seconds
    while True:
        try:
            return client.hello()
        except ProtocolError:
            if time.monotonic() > deadline:
                raise DeployError(f"no board answered HELLO within {seconds:.0f} s.") from None
