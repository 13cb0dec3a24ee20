"""Connect to a board, flash an image (progress bar, resume, hash check) and boot it.

An emulated board in a child process is :class:`firmware_sim.process.BoardProcess`.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Any

from tqdm import tqdm

from deploy.errors import DeployError
from deploy.progress import advance
from protocol.client import Client
from protocol.errors import ProtocolError, TransportError
from protocol.transport import LinkEmulator, SerialTransport


def connect(url: str, timeout: float = 0.5, **link: Any) -> tuple[Any, Any]:
    """An opened transport to ``url`` (``link`` options add link-fault emulation) and a client."""

    transport: Any = SerialTransport(url)
    if link:
        transport = LinkEmulator(transport, **link)
    try:
        transport.open()
    except TransportError as error:
        raise DeployError(open_failure(url, error)) from None
    return Client(transport, timeout=timeout, retries=6), transport


def open_failure(url: str, error: TransportError) -> str:
    """One sentence for a port that does not open: pyserial repeats the path and the errno
    three times ("cannot open X: [Errno 2] could not open port X: [Errno 2] No such ...")."""
    errnos = re.findall(r"\[Errno (\d+)\]", str(error))
    if errnos:
        return f"cannot open {url}: {os.strerror(int(errnos[-1])).lower()}."
    return str(error)


def flash_and_boot(client: Any, data: bytes, progress: bool = True) -> dict[str, Any]:
    """Flash ``data`` (resuming what the board holds), verify its hash, boot it."""

    bar = tqdm(
        total=len(data),
        unit="B",
        unit_scale=True,
        desc="flash",
        file=sys.stderr,
        disable=not progress,
    )

    def update(offset: int, size: int) -> None:
        advance(bar, offset)  # the last step closes the bar before "Hash of data verified."

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


def wait_for_board(client: Any, seconds: float = 10.0) -> dict[str, Any]:
    """HELLO until the board answers (a board process needs a moment to start)."""

    deadline = time.monotonic() + seconds
    while True:
        try:
            return client.hello()
        except ProtocolError:
            if time.monotonic() > deadline:
                raise DeployError(f"no board answered HELLO within {seconds:.0f} s.") from None
