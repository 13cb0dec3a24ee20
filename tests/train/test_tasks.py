"""The task registry: unknown ids refused, fault rows as spec strings, Reacher's held-out bands."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import robot_env
from glocal.cli import main
from robot_env import parse_robot_fault
from train.errors import TrainError
from train.fault_batch import REACHER_BANDS, FaultBatch, fault_spec
from train.loop import TrainConfig
from train.tasks import TASKS, get_task

UNKNOWN = "unknown task 'Nope-v0'; the tasks are glocal/ArmReach-v0, Reacher-v5."


def test_an_unknown_task_is_refused_with_one_sentence(tmp_path: Path, capsys) -> None:
    with pytest.raises(TrainError) as error:
        TrainConfig(task="Nope-v0")
    assert str(error.value) == UNKNOWN
    assert main(["train", "--task", "Nope-v0", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"glocal train: error: {UNKNOWN}"]


def test_every_task_names_its_sizes_bands_and_robot_env_env() -> None:
    for task_id, task in TASKS.items():
        assert get_task(task_id) is task
        assert (task.n_obs, task.n_act) == (10, 2)
        assert set(task.trained_kinds + task.held_out_kinds) <= set(task.bands)
        assert task.env_id in gym.registry
    assert TrainConfig(task="Reacher-v5").task == "Reacher-v5"
    # checkpoints name the task "Reacher-v5": it runs robot_env's moving-target Reacher
    assert get_task("Reacher-v5").env_id == robot_env.REACHER_MOVING_TARGET


@pytest.mark.parametrize(
    ("row", "spec"),
    [
        (("gain-loss", 1, 0.45, 50), "robot:gain-loss:joint=1,gain=0.45,onset=50"),
        (("bias-torque", 0, -0.07, 3), "robot:bias-torque:joint=0,bias=-0.07,onset=3"),
        (("payload", 1, 20.0, 100), "robot:payload:mass=20.0,onset=100"),
        (("reversed-motor", 0, -0.9, 0), "robot:reversed-motor:joint=0,gain=-0.9,onset=0"),
        (("friction", 1, 8.0, 7), "robot:friction:joint=1,scale=8.0,onset=7"),
        (("saturation", 0, 0.35, 7), "robot:saturation:joint=0,limit=0.35,onset=7"),
    ],
)
def test_a_fault_row_becomes_the_spec_robot_env_parses_back(row, spec: str) -> None:
    assert fault_spec(*row) == spec
    fault = parse_robot_fault(spec)
    assert (fault.kind, fault.magnitude, fault.onset) == (row[0], row[2], row[3])
    assert fault_spec("none", 0, 0.0, 10) is None
    # a magnitude drawn at random round-trips at full precision
    value = float(np.random.default_rng(0).uniform(0.4, 0.5))
    assert parse_robot_fault(fault_spec("gain-loss", 1, value, 5)).magnitude == value


def test_reacher_held_out_magnitudes_lie_between_its_trained_bands() -> None:
    rng = np.random.default_rng(0)
    for kind in TASKS["Reacher-v5"].trained_kinds:
        trained = FaultBatch.sample(rng, 400, (kind,), False, 10, bands=REACHER_BANDS)
        low, high = sorted(abs(x) for x in REACHER_BANDS[kind][1])
        magnitude = np.abs(trained.magnitude)
        assert not ((magnitude >= low) & (magnitude <= high)).any(), kind
        assert (magnitude < low).any() and (magnitude > high).any(), kind
        held = np.abs(FaultBatch.sample(rng, 100, (kind,), True, 10, bands=REACHER_BANDS).magnitude)
        assert ((held >= low) & (held <= high)).all(), kind


def test_fault_draws_do_not_depend_on_the_process_hash_seed() -> None:
    """A seed alone reproduces the fault mix: nothing iterates a set of names in hash order."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np; from train.fault_batch import FaultBatch, TRAINED_KINDS; "
        "f = FaultBatch.sample(np.random.default_rng(3), 64, TRAINED_KINDS, False, (20, 100)); "
        "print(f.magnitude.round(9).tolist(), f.kind.tolist())"
    )
    draws = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in ("1", "2", "3", "4")
    }
    assert len(draws) == 1
