"""The task registry: what training, its evaluation and deploy look up about one task.

A task is named as a checkpoint's config names it (``train.task``) and ``glocal train --task``
takes it: ``glocal/ArmReach-v0`` or ``Reacher-v5``. Each entry says which robot_env env it runs
(``env_id``: ``Reacher-v5`` trains and deploys on robot_env's ``glocal/ReacherMovingTarget-v0``,
gymnasium's Reacher with long episodes and a moving target), its sizes, its fault bands
(:mod:`train.fault_batch`) and how to make its batched episodes (:mod:`train.arm_batch`,
:mod:`train.gym_batch`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import robot_env
from robot_env import arm
from train.arm_batch import ArmReachBatch
from train.errors import TrainError
from train.fault_batch import BANDS, HELD_OUT_KINDS, REACHER_BANDS, TRAINED_KINDS, Bands, FaultBatch
from train.gym_batch import GymBatch

TASK_ID = robot_env.ARM_REACH


@dataclass(frozen=True)
class Task:
    """One task: ``new_batch(faults, seed, stagger, steps)`` makes its batched episodes
    (``steps`` long at least); deploy's closed loop runs ``robot_env.make(env_id, faults)``."""

    env_id: str
    n_obs: int
    n_act: int
    bands: Bands
    new_batch: Callable[[FaultBatch, int, bool, int], Any]
    trained_kinds: tuple[str, ...] = TRAINED_KINDS
    held_out_kinds: tuple[str, ...] = HELD_OUT_KINDS
    reward: str = ""


def _arm_batch(faults: FaultBatch, seed: int, stagger: bool = False, steps: int = 0):
    return ArmReachBatch(faults, seed, stagger)  # never truncates: steps is moot


TASKS: dict[str, Task] = {
    TASK_ID: Task(
        TASK_ID,
        arm.OBS_SIZE,
        2,
        BANDS,
        _arm_batch,
        reward="-|fingertip - target| / reach",
    ),
    "Reacher-v5": Task(
        robot_env.REACHER_MOVING_TARGET,
        GymBatch.n_obs,
        GymBatch.n_act,
        REACHER_BANDS,
        GymBatch,
        reward="-|fingertip - target| - |action|^2 (m; gymnasium's own)",
    ),
}


def get_task(task_id: str, error: type[Exception] = TrainError) -> Task:
    """The registry's entry for ``task_id``; an unknown id raises ``error`` with one sentence."""
    if task_id not in TASKS:
        raise error(f"unknown task {task_id!r}; the tasks are {', '.join(TASKS)}.")
    return TASKS[task_id]
