"""Batched gymnasium episodes (MuJoCo ``Reacher-v5``) with one robot fault each, for training.

:class:`GymBatch` has :class:`train.tasks.ArmReachBatch`'s interface (``n_obs``, ``n_act``,
``batch``, ``t``, ``faults``, ``active``, ``observe()``, ``teacher(fault_aware)``,
``step(action) -> (obs, reward)``) over ``B`` real gymnasium envs, each built by
:func:`make_reacher`: ``gymnasium.make("Reacher-v5", max_episode_steps=steps)`` inside
:class:`Retarget` inside robot_env's ``FaultWrapper`` carrying the episode's fault as one spec
string (:func:`train.tasks.fault_spec`). Both teachers are ``robot_env.make_teacher``'s. Deploy's
closed loop builds its Reacher env with the same :func:`make_reacher`, so the board sees the task
that training saw.

Reacher's own episode is 50 steps (1 s) with one target. Faults need longer episodes, so episodes
here last ``steps`` control steps and, as on ArmReach, the target moves every ``TARGET_PERIOD``
(50) steps: right after step ``50 k`` (counted with the episode's ``phase``, drawn per episode when
``stagger``) a fresh goal is drawn from the env's own seeded ``np_random`` exactly as
``ReacherEnv.reset_model`` draws it, and the observation returned by that step already shows it.
The reward is the env's own (``Reacher-v5``: ``-|fingertip - target| - 1.0 * |action|^2``, where
``action`` is what reached the motors, after the actuator fault), computed before the target moves.
Every env is seeded through ``reset(seed=...)`` with a seed drawn from the batch's seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from train.tasks import NONE, FaultBatch, fault_spec

REACHER_ID = "Reacher-v5"
TARGET_PERIOD = 50  # control steps per target, as ArmReach's arm.TARGET_PERIOD
GOAL_RADIUS = 0.2  # m: ReacherEnv.reset_model's goal disc


def move_reacher_target(unwrapped: gym.Env) -> np.ndarray:
    """Give a running ``Reacher-v5`` a new target; returns the observation that shows it.

    gymnasium has no call for this: the target is two slide joints (``qpos[2:4]``, ``qvel[2:4]``)
    that only ``reset_model`` sets. This draws the goal as ``reset_model`` does (uniform in the
    disc of radius 0.2 m, by rejection, from the env's seeded ``np_random``), writes it into
    ``qpos`` with the target at rest and leaves the arm's joints as they are; ``set_state`` runs
    ``mj_forward`` so body positions, the next reward and the observation see the new target.
    """
    rng = unwrapped.np_random
    while True:
        goal = rng.uniform(-GOAL_RADIUS, GOAL_RADIUS, 2)
        if np.linalg.norm(goal) < GOAL_RADIUS:
            break
    qpos, qvel = unwrapped.data.qpos.copy(), unwrapped.data.qvel.copy()
    qpos[-2:], qvel[-2:] = goal, 0.0
    unwrapped.goal = goal
    unwrapped.set_state(qpos, qvel)
    return unwrapped._get_obs()


class Retarget(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Move Reacher's target every ``period`` steps (after step ``k`` with ``(k + phase) %
    period == 0``), see :func:`move_reacher_target`."""

    def __init__(self, env: gym.Env, period: int = TARGET_PERIOD, phase: int = 0) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, period=period, phase=phase)
        gym.Wrapper.__init__(self, env)
        self.period, self.phase, self.steps = period, phase, 0

    def reset(self, **kwargs):
        self.steps = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if (self.steps + self.phase) % self.period == 0:
            obs = move_reacher_target(self.env.unwrapped)
        return obs, reward, terminated, truncated, info


def make_reacher(faults: Sequence = (), steps: int = 300, phase: int = 0) -> gym.Env:
    """``Reacher-v5`` of ``steps`` control steps, moving targets, with ``faults`` attached."""
    from robot_env import FaultWrapper

    env = gym.make(REACHER_ID, max_episode_steps=steps)
    return FaultWrapper(Retarget(env, TARGET_PERIOD, phase), faults)


class GymBatch:
    """``B`` Reacher episodes stepped together, each with its own seed, targets and fault."""

    n_obs = 10
    n_act = 2

    def __init__(
        self, faults: FaultBatch, seed: int, stagger: bool = False, steps: int = 300
    ) -> None:
        import robot_env

        self.rng = np.random.default_rng(seed)
        self.faults = faults
        self.batch = b = faults.kind.shape[0]
        # Each episode moves its target on its own phase (see ArmReachBatch).
        phases = self.rng.integers(0, TARGET_PERIOD, b) if stagger else np.zeros(b, int)
        seeds = self.rng.integers(0, 2**31, b)
        self.envs = []
        observations = []
        for i in range(b):
            spec = fault_spec(faults.kind[i], faults.joint[i], faults.magnitude[i], faults.onset[i])
            env = make_reacher([] if spec is None else [spec], steps, int(phases[i]))
            observations.append(env.reset(seed=int(seeds[i]))[0])
            self.envs.append(env)
        self.teachers = {
            aware: [robot_env.make_teacher(env, fault_aware=aware) for env in self.envs]
            for aware in (False, True)
        }
        space = self.envs[0].action_space
        self.low, self.high = space.low, space.high
        self.obs = np.stack(observations)
        self.t = 0

    @property
    def active(self) -> np.ndarray:
        """(B,) whether each episode's fault acts on the current step."""
        return (self.faults.kind != NONE) & (self.t >= self.faults.onset)

    def observe(self) -> np.ndarray:
        return self.obs.astype(np.float32)

    def teacher(self, fault_aware: bool) -> np.ndarray:
        """robot_env's privileged teachers' actions for the current step, (B, 2) in [-1, 1]."""
        teachers = self.teachers[fault_aware]
        return np.stack([t(o) for t, o in zip(teachers, self.obs, strict=True)]).astype(np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply ``action`` (B, 2), clipped to the action space as deploy's runner clips it;
        returns ``(obs, reward)``."""
        executed = np.clip(np.asarray(action, np.float32), self.low, self.high)
        rewards = np.zeros(self.batch)
        for i, env in enumerate(self.envs):
            self.obs[i], rewards[i], *_ = env.step(executed[i])
        self.t += 1
        return self.observe(), rewards

    def close(self) -> None:
        for env in self.envs:
            env.close()
