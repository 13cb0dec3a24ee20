"""A small trained checkpoint made with train's own code (seeded), shared by the deploy tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.quantise import Checkpoint, load_checkpoint


def train_small(out: Path, n_hidden: int = 16, ticks: int = 8) -> Path:
    from train.loop import TrainConfig, train

    cfg = TrainConfig(
        model="hp",
        steps=8,
        batch=8,
        window=10,
        episode_steps=20,
        n_hidden=n_hidden,
        ticks=ticks,
        validate_every=1000,
        checkpoint_every=1000,
        seed=0,
    )
    train(cfg, out)
    return out


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory) -> Path:
    return train_small(tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture(scope="session")
def checkpoint(checkpoint_dir) -> Checkpoint:
    return load_checkpoint(checkpoint_dir)
