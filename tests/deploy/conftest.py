"""A small trained checkpoint made with train's own code (seeded), shared by the deploy tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deploy.quantise import Checkpoint, load_checkpoint


def train_small(out: Path, **overrides: Any) -> Path:
    """A few seeded updates of a 16-neuron HP network (``overrides``: other TrainConfig fields)."""
    from train.loop import TrainConfig, train

    fields = dict(
        model="hp",
        steps=8,
        batch=8,
        window=10,
        episode_steps=20,
        n_hidden=16,
        ticks=8,
        validate_every=1000,
        checkpoint_every=1000,
        seed=0,
    )
    train(TrainConfig(**{**fields, **overrides}), out)
    return out


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory) -> Path:
    return train_small(tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture(scope="session")
def checkpoint(checkpoint_dir) -> Checkpoint:
    return load_checkpoint(checkpoint_dir)
