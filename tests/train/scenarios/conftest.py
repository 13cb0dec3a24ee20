"""Tiny made-up Omniglot (a standard-layout zip and an extracted folder that overlap), a tiny
few-shot configuration and random features, shared by the scenario and the board tests."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from train.scenarios.fewshot import FewShotConfig

TINY = FewShotConfig(
    image_size=14,
    n_features=9,
    iterations=3,
    meta_batch=2,
    train_way=2,
    train_query=1,
    gp_steps=3,
    test_episodes=4,
    eval_batch=2,
)


@pytest.fixture(autouse=True)
def _blas_setting_stays_in_the_test(monkeypatch):
    """``glocal scenario`` sets ``MKL_CBWR`` for its own process: undo it after each test, so
    that no later test's child process inherits it."""
    monkeypatch.setenv("MKL_CBWR", os.environ.get("MKL_CBWR", "COMPATIBLE"))


def features(n: int, dim: int, seed: int) -> torch.Tensor:
    """``n`` random feature vectors in (-1, 1), seeded."""
    return torch.tanh(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) * 2)


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def drawing(char: int, drawer: int, size: int = 21) -> np.ndarray:
    """White 21x21 with a black stroke at a place fixed by the character, jittered per drawer."""
    img = np.full((size, size), 255, np.uint8)
    rng = np.random.default_rng(1000 * char + drawer)
    r, c = (char * 5) % (size - 6), (char * 3) % (size - 6)
    dr, dc = rng.integers(-1, 2, size=2)
    img[max(0, r + dr) : r + dr + 6, max(0, c + dc) : c + dc + 3] = 0
    return img


@pytest.fixture
def omniglot_dir(tmp_path):
    """Alphabets A (zip), B (zip and, duplicated, extracted), 4 drawings per character."""
    return write_omniglot(tmp_path / "omniglot")


def write_omniglot(root: Path) -> Path:
    """The tiny Omniglot of :func:`omniglot_dir` written into ``root``."""
    root.mkdir()
    with zipfile.ZipFile(root / "images_background_small1.zip", "w") as zf:
        for alphabet, chars in (("A", range(3)), ("B", range(3, 6))):
            for k, char in enumerate(chars):
                for d in range(4):
                    name = (
                        f"images_background_small1/{alphabet}/character{k + 1:02d}/{char}_{d}.png"
                    )
                    zf.writestr(name, png_bytes(drawing(char, d)))
    for k, char in enumerate(range(3, 6)):  # alphabet B again, extracted (de-duplicated)
        folder = root / "images_background_small2" / "B" / f"character{k + 1:02d}"
        folder.mkdir(parents=True)
        for d in range(4):
            (folder / f"{char}_{d}.png").write_bytes(png_bytes(drawing(char, d)))
    return root
