"""The task registry: each task id's privileged teacher and body adapter.

A task module registers its own parts with its env id when it is imported
(:func:`register_task`). The MuJoCo task modules need the ``mujoco`` extra, so ``import robot_env``
only names them (:func:`register_task_module`) and the registry imports one the first time an env
of its id asks for its parts, as gymnasium imports an entry point when an env is made.

The parts are found by the env's registered id (``env.unwrapped.spec.id``), so an env made with
``gymnasium.make`` or :func:`robot_env.make` has them whatever wrappers sit around it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

ARM_REACH = "glocal/ArmReach-v0"
BIKE_BALANCE = "glocal/BikeBalance-v0"
REACHER = "Reacher-v5"  # gymnasium's MuJoCo arm (the mujoco extra)
REACHER_MOVING_TARGET = "glocal/ReacherMovingTarget-v0"  # Reacher-v5 with ArmReach's moving target
ANT = "Ant-v5"  # gymnasium's MuJoCo quadruped (the mujoco extra)


@dataclass(frozen=True)
class TaskParts:
    """``teacher(env, fault_aware)`` builds the task's privileged teacher; ``adapter(unwrapped)``
    gives sensor channels and body faults to an env that has none of its own (``None``: the env
    is its own adapter)."""

    teacher: Callable[[gym.Env, bool], Any]
    adapter: Callable[[gym.Env], Any] | None = None


_PARTS: dict[str, TaskParts] = {}
_MODULES: dict[str, str] = {}


def register_task(
    env_id: str,
    teacher: Callable[[gym.Env, bool], Any],
    adapter: Callable[[gym.Env], Any] | None = None,
) -> None:
    """Give ``env_id`` its teacher and, if the env does not model its own body, its adapter."""
    _PARTS[env_id] = TaskParts(teacher, adapter)


def register_task_module(env_id: str, module: str) -> None:
    """Say that importing ``module`` registers ``env_id``'s parts (imported when first needed)."""
    _MODULES[env_id] = module


def task_ids() -> list[str]:
    """Every id with registered parts, imported or not yet."""
    return sorted({*_PARTS, *_MODULES})


def task_parts(env: gym.Env) -> TaskParts | None:
    """The parts registered for ``env``'s id, or ``None`` for an env of no registered task."""
    spec = env.unwrapped.spec
    if spec is None:
        return None
    if spec.id not in _PARTS and spec.id in _MODULES:
        importlib.import_module(_MODULES[spec.id])
    return _PARTS.get(spec.id)


def body_adapter(unwrapped: gym.Env) -> Any:
    """What names ``unwrapped``'s sensors and takes its body faults: the task's adapter over it,
    or the env itself."""
    parts = task_parts(unwrapped)
    if parts is not None and parts.adapter is not None:
        return parts.adapter(unwrapped)
    return unwrapped
