"""Gymnasium robot tasks, fault injection and privileged teacher controllers.

Importing the package registers ``glocal/ArmReach-v0``, ``glocal/BikeBalance-v0`` and
``glocal/ReacherMovingTarget-v0`` (MuJoCo's ``Reacher-v5`` with long episodes and a moving
target). MuJoCo's ``Reacher-v5`` and ``Ant-v5`` come from gymnasium (the ``mujoco`` extra) and
take the same :class:`FaultWrapper` and teachers. Each task module registers its teacher and body
adapter with its id (:mod:`robot_env.registry`); :func:`make` builds any task with faults attached
and :func:`make_teacher` its teacher.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym

# Importing a task module registers its teacher (and body adapter) with its id.
from robot_env import arm as arm
from robot_env import bike as bike
from robot_env.errors import EnvError, FaultSpecError, FaultTargetError
from robot_env.faults import KINDS, RobotFault, parse_robot_fault
from robot_env.registry import (
    ANT,
    ARM_REACH,
    BIKE_BALANCE,
    REACHER,
    REACHER_MOVING_TARGET,
    register_task_module,
)
from robot_env.teachers import Teacher, make_teacher
from robot_env.wrapper import FaultWrapper, find_fault_wrapper

NUMPY_TASKS = (ARM_REACH, BIKE_BALANCE)
MUJOCO_TASKS = (REACHER, REACHER_MOVING_TARGET, ANT)

if ARM_REACH not in gym.registry:
    gym.register(ARM_REACH, entry_point="robot_env.arm:ArmReachEnv", max_episode_steps=400)
if BIKE_BALANCE not in gym.registry:
    gym.register(BIKE_BALANCE, entry_point="robot_env.bike:BikeBalanceEnv", max_episode_steps=400)
if REACHER_MOVING_TARGET not in gym.registry:
    gym.register(
        REACHER_MOVING_TARGET,
        entry_point="robot_env.reacher:ReacherMovingTargetEnv",
        max_episode_steps=300,
    )
# The MuJoCo task modules need the mujoco extra: imported when an env of theirs first asks.
register_task_module(REACHER, "robot_env.reacher")
register_task_module(REACHER_MOVING_TARGET, "robot_env.reacher")
register_task_module(ANT, "robot_env.ant")


def make(
    env_id: str, faults: Sequence[RobotFault | str | Mapping] = (), **kwargs: Any
) -> FaultWrapper:
    """``gym.make(env_id, **kwargs)`` inside a :class:`FaultWrapper` carrying ``faults``."""
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as error:
        raise EnvError(f"cannot make {env_id!r}: {error}") from None
    except ImportError as error:
        raise EnvError(
            f"{env_id} needs the mujoco extra (pip install -e '.[mujoco]'): {error}"
        ) from None
    return FaultWrapper(env, faults)


__all__ = [
    "ANT",
    "ARM_REACH",
    "BIKE_BALANCE",
    "KINDS",
    "MUJOCO_TASKS",
    "NUMPY_TASKS",
    "REACHER",
    "REACHER_MOVING_TARGET",
    "EnvError",
    "FaultSpecError",
    "FaultTargetError",
    "FaultWrapper",
    "RobotFault",
    "Teacher",
    "find_fault_wrapper",
    "make",
    "make_teacher",
    "parse_robot_fault",
]
