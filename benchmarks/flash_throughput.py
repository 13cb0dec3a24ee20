"""Flash goodput over a pty, unthrottled and at 921,600 baud emulated, as a ratio to line rate.

A reference board (``python -m tests.protocol.reference_board``) runs in its own process behind
a pty, as a USB-serial board would. The host flashes the same seeded image with several chunk
sizes; the throttled runs go through :class:`protocol.transport.LinkEmulator` at 921,600 baud,
whose line rate is 92,160 bytes/s (8N1: ten bits per byte). Goodput counts image bytes only,
from FLASH_BEGIN to the verified FLASH_END, so framing, message envelopes and answers are
overhead.
Also prints the HELLO round-trip time over the pty, the floor under one STEP of the closed loop.

    python benchmarks/flash_throughput.py [--size BYTES] [--seed N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from protocol.client import Client
from protocol.transport import BITS_PER_BYTE, DEFAULT_BAUD, open_transport

LINE_RATE = DEFAULT_BAUD / BITS_PER_BYTE
REPOSITORY = Path(__file__).resolve().parents[1]  # the reference board is a test module there


def flash_once(
    url: str, image: bytes, chunk: int, baud: int | None, seed: int
) -> tuple[float, int]:
    transport = open_transport(url, baud=baud) if baud else open_transport(url)
    try:
        # Distinct seeds give distinct seq numbers: a board takes a repeated seq with the same
        # bytes for a retry and answers from its cache.
        result = Client(transport, seed=seed).flash(image, chunk_size=chunk)
    finally:
        transport.close()
    return len(image) / result.seconds, result.retries


def round_trips(url: str, count: int) -> np.ndarray:
    transport = open_transport(url)
    try:
        client = Client(transport, seed=0)
        client.hello()
        times = []
        for _ in range(count):
            started = time.perf_counter()
            client.hello()
            times.append(time.perf_counter() - started)
    finally:
        transport.close()
    return np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", type=int, default=256 * 1024, help="image bytes (default 256 KiB)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    image = np.random.default_rng(args.seed).bytes(args.size)
    board = subprocess.Popen(
        [sys.executable, "-m", "tests.protocol.reference_board", "--port", "pty"],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = board.stdout.readline().strip()
        runs = [(None, 4096), (None, 32 * 1024 - 1024), (DEFAULT_BAUD, 1024), (DEFAULT_BAUD, 4096)]
        runs.append((DEFAULT_BAUD, 16 * 1024))
        print(
            f"image {len(image)} bytes over {url}; line rate at {DEFAULT_BAUD} baud = "
            f"{LINE_RATE:,.0f} bytes/s"
        )
        print(f"{'link':<22}{'chunk':>7}{'goodput B/s':>14}{'x line rate':>13}{'retries':>9}")
        for index, (baud, chunk) in enumerate(runs):
            goodput, retries = flash_once(url, image, chunk, baud, seed=1000 + index)
            link = f"throttled {baud} baud" if baud else "pty, unthrottled"
            print(f"{link:<22}{chunk:>7}{goodput:>14,.0f}{goodput / LINE_RATE:>13.3f}{retries:>9}")
        rtt = round_trips(url, 2000) * 1e3
        print(
            f"HELLO round trip over the pty (2000 requests): p50 {np.percentile(rtt, 50):.3f} ms, "
            f"p99 {np.percentile(rtt, 99):.3f} ms"
        )
    finally:
        board.terminate()
        board.wait(timeout=10)


if __name__ == "__main__":
    main()
