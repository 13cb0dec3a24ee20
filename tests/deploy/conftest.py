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


def observations(n_obs: int, steps: int = 60) -> Any:
    """Seeded observations in [-1, 1] for stepping a board or its twin open loop."""
    import numpy as np

    return np.random.default_rng(0).uniform(-1, 1, (steps, n_obs)).astype(np.float32)


def run_engine(engine: Any, obs: Any) -> Any:
    """The engine's actions over ``obs`` with learning on."""
    import numpy as np

    engine.learning = True
    return np.array([engine.step(o) for o in obs])


def board_against_twin(checkpoint: Checkpoint, obs: Any) -> float:
    """The largest action difference, learning on, between the packed image on an in-process
    board and train's board numerics of the same checkpoint."""
    import tempfile

    import numpy as np

    from deploy.engines import BoardController, TorchController, in_process_board
    from deploy.pack import pack_checkpoint

    packed = pack_checkpoint(checkpoint, "tianjic")
    board = BoardController(in_process_board(packed.data, tempfile.mkdtemp(), "tianjic"), 1.0)
    twin = TorchController(checkpoint.policy, quantised=True)
    actions = []
    for controller in (board, twin):
        controller.set_learning(True)
        controller.reset()
        actions.append(np.array([controller.step(o) for o in obs]))
    return float(np.max(np.abs(actions[0] - actions[1])))
