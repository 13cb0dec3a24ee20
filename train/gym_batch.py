"""Batched gymnasium episodes (robot_env's ``glocal/ReacherMovingTarget-v0``) with one robot fault
each, for training.

:class:`GymBatch` has :class:`train.arm_batch.ArmReachBatch`'s interface (``n_obs``, ``n_act``,
``batch``, ``t``, ``faults``, ``active``, ``observe()``, ``teacher(fault_aware)``,
``step(action) -> (obs, reward)``) over ``B`` real gymnasium envs, each built by
``robot_env.make`` with the episode's fault as one spec string
(:func:`train.fault_batch.fault_spec`). Both teachers are ``robot_env.make_teacher``'s. Deploy's
closed loop builds the same registered env, so the board sees the task that training saw.

The env is MuJoCo's ``Reacher-v5`` with episodes of ``steps`` control steps and a target that
moves every 50 steps as on ArmReach (see ``robot_env.reacher.ReacherMovingTargetEnv``), on the
episode's ``phase``, drawn per episode when ``stagger``. The reward is the env's own
(``-|fingertip - target| - 1.0 * |action|^2``, where ``action`` is what reached the motors, after
the actuator fault). Every env is seeded through ``reset(seed=...)`` with a seed drawn from the
batch's seed.
"""

from __future__ import annotations

import numpy as np

import robot_env
from robot_env.arm import TARGET_PERIOD
from train.fault_batch import NONE, FaultBatch, fault_spec


class GymBatch:
    """``B`` Reacher episodes stepped together, each with its own seed, targets and fault."""

    env_id = robot_env.REACHER_MOVING_TARGET
    n_obs = 10
    n_act = 2

    def __init__(
        self, faults: FaultBatch, seed: int, stagger: bool = False, steps: int = 300
    ) -> None:
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
            env = robot_env.make(
                self.env_id,
                [] if spec is None else [spec],
                max_episode_steps=steps,
                phase=int(phases[i]),
            )
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
