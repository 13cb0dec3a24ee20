"""Fixtures for protocol tests: a reference board in its own process, small real images."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from protocol.image import CoreImage, Provenance, pack

REPOSITORY = Path(__file__).resolve().parents[2]  # where ``python -m tests....`` resolves


def make_image(seed: int = 0, n_cores: int = 2, n_axons: int = 8, n_neurons: int = 6) -> CoreImage:
    """A small but complete core image; every value drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    cores = tuple(
        {
            "core_id": core_id,
            "n_axons": n_axons,
            "n_neurons": n_neurons,
            "weights": rng.integers(-4, 5, (n_axons, n_neurons)).astype(np.int8),
            "threshold": int(rng.integers(32, 128)),
            "decay_shift": 3,
            "routing": rng.integers(0, n_cores, n_neurons).astype(np.int16),
        }
        for core_id in range(n_cores)
    )
    return CoreImage(
        profile="tiny",
        provenance=Provenance("reach", seed, "0123abc", "2026-01-01T00:00:00+00:00"),
        cores=cores,
        scales={"weight": 0.015625, "input": 0.5},
        encoder={"gain": rng.standard_normal(4).astype(np.float32)},
        decoder={"readout": rng.standard_normal((n_neurons, 2)).astype(np.float32)},
        network={"ticks_per_step": 8, "reset_mode": "subtract"},
        meta={"note": "test image"},
    )


@pytest.fixture
def image() -> CoreImage:
    return make_image()


@pytest.fixture
def image_bytes(image: CoreImage) -> bytes:
    return pack(image)


@pytest.fixture
def board_url() -> Iterator[str]:
    """A reference board (``python -m tests.protocol.reference_board``) on a pty in a separate
    process."""
    yield from _spawn_board("pty")


@pytest.fixture
def socket_board_url() -> Iterator[str]:
    yield from _spawn_board("socket")


def _spawn_board(port: str) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.protocol.reference_board", "--port", port],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert url, "the board process printed no port"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
