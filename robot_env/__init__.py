"""Gymnasium robot tasks, fault injection and privileged teacher controllers.

Importing the package registers ``glocal/ArmReach-v0`` and ``glocal/BikeBalance-v0``. MuJoCo's
``Reacher-v5`` and ``Ant-v5`` come from gymnasium (the ``mujoco`` extra) and take the same
:class:`FaultWrapper` and teachers. :func:`make` builds any of them with faults attached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym

from robot_env.errors import EnvError, FaultSpecError, FaultTargetError
from robot_env.faults import KINDS, RobotFault, parse_robot_fault
from robot_env.teachers import Teacher, make_teacher
from robot_env.wrapper import FaultWrapper, find_fault_wrapper

ARM_REACH = "glocal/ArmReach-v0"
BIKE_BALANCE = "glocal/BikeBalance-v0"
NUMPY_TASKS = (ARM_REACH, BIKE_BALANCE)
MUJOCO_TASKS = ("Reacher-v5", "Ant-v5")

if ARM_REACH not in gym.registry:
    gym.register(ARM_REACH, entry_point="robot_env.arm:ArmReachEnv", max_episode_steps=400)
if BIKE_BALANCE not in gym.registry:
    gym.register(BIKE_BALANCE, entry_point="robot_env.bike:BikeBalanceEnv", max_episode_steps=400)


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
    "ARM_REACH",
    "BIKE_BALANCE",
    "KINDS",
    "MUJOCO_TASKS",
    "NUMPY_TASKS",
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
