"""Privileged teachers: model-based controllers with and without knowledge of the faults.

Both kinds of teacher know the episode's randomised dynamics (what a well-identified robot's
controller would know). They differ only in what they know of the faults:

- the **fault-blind** teacher reads the (possibly corrupted) observation, plans with the
  healthy body and assumes healthy actuators: the naive baseline, a controller that does not adapt;
- the **fault-aware** teacher reads the true state from the env, plans with the faulted body and
  inverts the active actuator faults (gain, sign, bias; a delay by predicting the state the
  command will meet). Saturation and a dead motor cannot be inverted.

Every teacher is deterministic: ``act(obs)`` depends only on ``obs`` and the env's state.
Each task module owns its teacher and registers it with its id (:mod:`robot_env.registry`):
computed torque on ArmReach (:mod:`robot_env.arm`) and Reacher (:mod:`robot_env.reacher`, MuJoCo's
mass matrix), LQR on BikeBalance (:mod:`robot_env.bike`), a scripted trot with joint PD on Ant
(:mod:`robot_env.ant`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robot_env.errors import EnvError
from robot_env.faults import ActuatorModel, invert_actuator
from robot_env.registry import task_ids, task_parts
from robot_env.wrapper import find_fault_wrapper


class Teacher:
    """Shared logic; a task's teacher says how to read state, plan one output and predict.

    Subclasses implement ``observed_state(obs)``, ``true_state()``, ``model(faulted)``,
    ``output(state, model)`` (the wanted actuator output in action units) and
    ``advance(state, output, model)`` (one control step of the teacher's model).
    """

    def __init__(self, env: gym.Env, fault_aware: bool) -> None:
        self.env = env
        self.unwrapped = env.unwrapped
        self.fault_aware = fault_aware
        self.faults = find_fault_wrapper(env)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.act(obs)

    def act(self, obs: np.ndarray) -> np.ndarray:
        if not self.fault_aware:
            wanted = self.output(
                self.observed_state(np.asarray(obs, np.float64)), self.model(False)
            )
            return self._action(wanted)
        state, model = self.true_state(), self.model(True)
        actuator = self.faults.actuator if self.faults else None
        if actuator is not None and actuator.delay.any():
            state = self._predict(state, model, actuator)
        wanted = self.output(state, model)
        if actuator is not None:
            wanted = invert_actuator(wanted, actuator)
        return self._action(wanted)

    def _predict(self, state: Any, model: Any, actuator: ActuatorModel) -> Any:
        """The state the command issued now will meet, ``delay`` steps ahead."""
        pending = self.faults.pending_outputs(int(actuator.delay.max()))
        for fixed in pending:
            free = np.clip(self.output(state, model), -1.0, 1.0)
            state = self.advance(state, np.where(np.isnan(fixed), free, fixed), model)
        return state

    def _action(self, wanted: np.ndarray) -> np.ndarray:
        space = self.unwrapped.action_space
        return np.clip(wanted, space.low, space.high).astype(space.dtype)

    # --- per task ------------------------------------------------------------------------------

    def observed_state(self, obs: np.ndarray) -> Any:
        raise NotImplementedError

    def true_state(self) -> Any:
        raise NotImplementedError

    def model(self, faulted: bool) -> Any:
        raise NotImplementedError

    def output(self, state: Any, model: Any) -> np.ndarray:
        raise NotImplementedError

    def advance(self, state: Any, output: np.ndarray, model: Any) -> Any:
        raise NotImplementedError


def make_teacher(env: gym.Env, fault_aware: bool = True) -> Teacher:
    """The privileged teacher for ``env`` (any wrapper chain over a registered task)."""
    parts = task_parts(env)
    if parts is None:
        raise EnvError(
            f"no teacher for {type(env.unwrapped).__name__}; teachers exist for "
            f"{', '.join(task_ids())}."
        )
    return parts.teacher(env, fault_aware)
