"""Gymnasium's MuJoCo ``Reacher-v5`` under faults with its teacher, and
``glocal/ReacherMovingTarget-v0``: the same arm with long episodes and a moving target.

- Sensors: ``joint=j`` is joint ``j``'s angle (cos, sin) and speed; ``channel=target`` and
  ``channel=tip`` (fingertip minus target) name the rest. A payload goes on the fingertip.
- Teacher: computed torque towards the inverse-kinematics solution, with MuJoCo's mass matrix and
  bias forces (a scratch ``MjData`` over the true or the nominal model).

Importing this module needs the ``mujoco`` extra; it registers both ids' teacher and body adapter.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv
from gymnasium.utils import EzPickle

from robot_env.arm import TARGET_PERIOD  # ArmReach's: both arms' targets move alike
from robot_env.channels import Channel, angle, scalar
from robot_env.mujoco_tasks import MujocoBody, MujocoTeacher, dense_mass_matrix
from robot_env.registry import REACHER, REACHER_MOVING_TARGET, register_task

KP = 100.0
KD = 2.0 * np.sqrt(KP)
GOAL_RADIUS = 0.2  # m: ReacherEnv.reset_model's goal disc


class ReacherBody(MujocoBody):
    """Reacher's sensors by name; a payload goes on the fingertip."""

    end_body = "fingertip"

    def sensor_channels(self) -> dict[str, list[Channel]]:
        channels = {f"joint={j}": [angle(j, 2 + j), scalar(6 + j)] for j in range(2)}
        channels["channel=target"] = [scalar(4), scalar(5)]
        channels["channel=tip"] = [scalar(8), scalar(9)]
        return channels


class ReacherTeacher(MujocoTeacher):
    """Computed torque towards the inverse-kinematics solution, with MuJoCo's dynamics."""

    def observed_state(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.arctan2(obs[2:4], obs[0:2])
        return np.concatenate([q, obs[4:6]]), np.concatenate([obs[6:8], np.zeros(2)])

    def output(self, state: tuple, model: mujoco.MjModel) -> np.ndarray:
        qpos, qvel = state
        l1 = float(model.body("body1").pos[0])
        l2 = float(model.body("fingertip").pos[0])
        q, qd, target = qpos[:2], qvel[:2], qpos[2:4]
        q_goal = _two_link_ik(target, q, l1, l2)
        qdd = KP * _wrap(q_goal - q) - KD * qd
        data = self.data_for(model, qpos, qvel)
        mujoco.mj_forward(model, data)
        mass = dense_mass_matrix(model, data)
        tau = mass[:2, :2] @ qdd + data.qfrc_bias[:2] - data.qfrc_passive[:2]
        gear = self.model(False).actuator_gear[:2, 0]
        return tau / gear


def _wrap(x: np.ndarray) -> np.ndarray:
    return (x + np.pi) % (2 * np.pi) - np.pi


def _two_link_ik(target: np.ndarray, q: np.ndarray, l1: float, l2: float) -> np.ndarray:
    dist = np.clip(np.linalg.norm(target), abs(l1 - l2) + 1e-6, l1 + l2 - 1e-6)
    cos_elbow = np.clip((dist**2 - l1**2 - l2**2) / (2 * l1 * l2), -1.0, 1.0)
    heading = np.arctan2(target[1], target[0])
    candidates = []
    for sign in (1.0, -1.0):
        q2 = sign * np.arccos(cos_elbow)
        q1 = heading - np.arctan2(l2 * np.sin(q2), l1 + l2 * np.cos(q2))
        candidates.append(np.array([q1, q2]))
    return min(candidates, key=lambda c: float(np.abs(_wrap(c - q)).sum()))


def move_target(env: ReacherEnv) -> np.ndarray:
    """Give a running Reacher a new target; returns the observation that shows it.

    gymnasium has no call for this: the target is two slide joints (``qpos[2:4]``, ``qvel[2:4]``)
    that only ``reset_model`` sets. This draws the goal as ``reset_model`` does (uniform in the
    disc of radius 0.2 m, by rejection, from the env's seeded ``np_random``), writes it into
    ``qpos`` with the target at rest and leaves the arm's joints as they are; ``set_state`` runs
    ``mj_forward`` so body positions, the next reward and the observation see the new target.
    """
    rng = env.np_random
    while True:
        goal = rng.uniform(-GOAL_RADIUS, GOAL_RADIUS, 2)
        if np.linalg.norm(goal) < GOAL_RADIUS:
            break
    qpos, qvel = env.data.qpos.copy(), env.data.qvel.copy()
    qpos[-2:], qvel[-2:] = goal, 0.0
    env.goal = goal
    env.set_state(qpos, qvel)
    return env._get_obs()


class ReacherMovingTargetEnv(ReacherEnv):
    """``Reacher-v5`` whose target moves every ``target_period`` steps, as ArmReach's does.

    Reacher's own episode is 50 steps (1 s) with one target; faults need longer episodes, so the
    registered id truncates after 300 control steps (6 s) and, right after step ``k`` with
    ``(k + phase) % target_period == 0``, a fresh goal is drawn (:func:`move_target`) and the
    observation returned by that step already shows it.

    ## Action, observation, reward
    ``Reacher-v5``'s: 2 joint torques in [-1, 1] (gear 200); 10 readings (cos, sin of the joint
    angles, target xy, joint speeds, fingertip minus target); ``-|fingertip - target| (m) -
    |action|^2``, computed before the target moves.

    ## Starting state
    ``Reacher-v5``'s (``reset_model``), from the seed given to ``reset``.

    ## Arguments
    ``target_period`` (steps, default 50), ``phase`` (steps, default 0: the first move after step
    50), and ``Reacher-v5``'s own.

    ## Version history
    v0: first version (the env that ``train.gym_batch`` and deploy's closed loop built by hand).
    """

    def __init__(self, target_period: int = TARGET_PERIOD, phase: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Pickling remakes the env from these arguments (Reacher's own would land in ours).
        EzPickle.__init__(self, target_period=target_period, phase=phase, **kwargs)
        self.target_period = int(target_period)
        self.phase = int(phase)
        self.steps = 0

    def reset_model(self) -> np.ndarray:
        self.steps = 0
        return super().reset_model()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        self.steps += 1
        if (self.steps + self.phase) % self.target_period == 0:
            obs = move_target(self)
        return obs, reward, terminated, truncated, info


register_task(REACHER, teacher=ReacherTeacher, adapter=ReacherBody)
register_task(REACHER_MOVING_TARGET, teacher=ReacherTeacher, adapter=ReacherBody)
