"""Privileged teachers: model-based controllers with and without knowledge of the faults.

Both kinds of teacher know the episode's randomised dynamics (what a well-identified robot's
controller would know). They differ only in what they know of the faults:

- the **fault-blind** teacher reads the (possibly corrupted) observation, plans with the
  healthy body and assumes healthy actuators: the naive baseline, a controller that does not adapt;
- the **fault-aware** teacher reads the true state from the env, plans with the faulted body and
  inverts the active actuator faults (gain, sign, bias; a delay by predicting the state the
  command will meet). Saturation and a dead motor cannot be inverted.

Every teacher is deterministic: ``act(obs)`` depends only on ``obs`` and the env's state.
Controllers: computed torque on ArmReach and Reacher (MuJoCo's mass matrix), LQR on BikeBalance,
a scripted trot with joint PD on Ant (see :mod:`robot_env.mujoco_tasks`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robot_env import arm, bike
from robot_env.errors import EnvError
from robot_env.faults import ActuatorModel, invert_actuator
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


class ArmTeacher(Teacher):
    """Computed torque towards the inverse-kinematics solution of the current target."""

    def observed_state(self, obs: np.ndarray) -> tuple[np.ndarray, ...]:
        return arm.state_from_obs(obs)

    def true_state(self) -> tuple[np.ndarray, ...]:
        return self.unwrapped.q, self.unwrapped.qd, self.unwrapped.target

    def model(self, faulted: bool) -> arm.ArmParams:
        return self.unwrapped.params if faulted else self.unwrapped.base_params

    def output(self, state: tuple[np.ndarray, ...], model: arm.ArmParams) -> np.ndarray:
        q, qd, target = state
        return arm.torque_to_output(arm.computed_torque(q, qd, target, model), model)

    def advance(self, state: tuple, output: np.ndarray, model: arm.ArmParams) -> tuple:
        q, qd = arm.arm_step(state[0], state[1], output, model)
        return q, qd, state[2]


class BikeTeacher(Teacher):
    """LQR on the linearised Whipple model at this episode's speed and mass."""

    def __init__(self, env: gym.Env, fault_aware: bool) -> None:
        super().__init__(env, fault_aware)
        self._gains: dict[bike.BikeParams, np.ndarray] = {}

    def observed_state(self, obs: np.ndarray) -> np.ndarray:
        p = self.unwrapped.base_params
        heading = np.arctan2(obs[5], obs[4])
        return np.array([obs[0] - p.roll_offset, obs[1] - p.steer_offset, obs[2], obs[3], -heading])

    def true_state(self) -> np.ndarray:
        return self.unwrapped.teacher_state()

    def model(self, faulted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        params = self.unwrapped.params if faulted else self.unwrapped.base_params
        if params not in self._gains:
            if len(self._gains) > 16:  # one entry per episode and body fault; keep it small
                self._gains.clear()
            ad, bd = bike.discrete_matrices(params)
            self._gains[params] = (ad, bd, bike.lqr_gain(ad, bd, bike.LQR_Q, bike.LQR_R))
        return self._gains[params]

    def output(self, state: np.ndarray, model: tuple) -> np.ndarray:
        return -(model[2] @ state) / bike.TORQUE_MAX

    def advance(self, state: np.ndarray, output: np.ndarray, model: tuple) -> np.ndarray:
        ad, bd, _ = model
        return ad @ state + bd[:, 0] * bike.TORQUE_MAX * float(np.clip(output[0], -1, 1))


def make_teacher(env: gym.Env, fault_aware: bool = True) -> Teacher:
    """The privileged teacher for ``env`` (any wrapper chain over a supported task)."""
    unwrapped = env.unwrapped
    if isinstance(unwrapped, arm.ArmReachEnv):
        return ArmTeacher(env, fault_aware)
    if isinstance(unwrapped, bike.BikeBalanceEnv):
        return BikeTeacher(env, fault_aware)
    name = type(unwrapped).__name__
    if name in ("ReacherEnv", "AntEnv"):
        from robot_env import mujoco_tasks

        return mujoco_tasks.make_mujoco_teacher(env, fault_aware)
    raise EnvError(
        f"no teacher for {name}; teachers exist for ArmReach, BikeBalance, Reacher, Ant."
    )
