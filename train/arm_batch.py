"""Batched ArmReach episodes with one robot fault each and both privileged teachers, for training.

Meta-training steps many episodes at once, so this module drives ``robot_env.arm``'s pure,
batch-broadcasting physics and ``robot_env.faults``' pure actuator functions directly (the same
functions ``glocal/ArmReach-v0`` and its ``FaultWrapper`` call), with the faults of a
:class:`train.fault_batch.FaultBatch` (ArmReach's bands: :data:`train.fault_batch.BANDS`).

Timing follows ``robot_env.faults``: a fault with ``onset`` is active from control step ``onset``
on and acts on that step's action. Both teachers know the episode's randomised body; the
fault-blind one plans with the healthy body and actuators, the fault-aware one with the faulted
body and inverts gain and bias. Teacher actions are clipped to the action space.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from robot_env import arm
from robot_env.faults import ActuatorModel, actuate, invert_actuator
from train.fault_batch import NONE, FaultBatch


class ArmReachBatch:
    """``B`` ArmReach episodes stepped together, each with its own body, targets and fault."""

    n_obs = arm.OBS_SIZE
    n_act = 2

    def __init__(self, faults: FaultBatch, seed: int, stagger: bool = False) -> None:
        self.rng = np.random.default_rng(seed)
        self.faults = faults
        b = faults.kind.shape[0]
        self.batch = b
        self.base = arm.sample_arm_params(self.rng, (b,))
        self.q = np.stack([self.rng.uniform(-np.pi, np.pi, b), self.rng.uniform(-2.5, 2.5, b)], -1)
        self.qd = np.zeros((b, 2))
        self.target = arm.sample_target(self.rng, self.base, (b,))
        # Each episode changes targets on its own phase, so a batch never sees every episode
        # jump at once (which makes one window all transients and the next all steady state).
        self.target_phase = (
            self.rng.integers(0, arm.TARGET_PERIOD, b) if stagger else np.zeros(b, int)
        )
        self.t = 0
        self._build_fault_models()

    def _build_fault_models(self) -> None:
        f, b = self.faults, self.batch
        onehot = np.eye(2)[f.joint]
        gain, bias, limit = np.ones((b, 2)), np.zeros((b, 2)), np.full((b, 2), np.inf)
        motor = np.isin(f.kind, ("gain-loss", "reversed-motor"))[:, None]
        gain = np.where(motor & (onehot > 0), f.magnitude[:, None], gain)
        bias = np.where((f.kind == "bias-torque")[:, None], onehot * f.magnitude[:, None], bias)
        saturated = (f.kind == "saturation")[:, None] & (onehot > 0)
        limit = np.where(saturated, f.magnitude[:, None], limit)
        self.faulted_actuator = ActuatorModel(gain, bias, limit, np.zeros((b, 2), np.int64))
        payload = np.where(f.kind == "payload", f.magnitude, 0.0)
        friction = np.where(
            ((f.kind == "friction")[:, None]) & (onehot > 0), f.magnitude[:, None], 1.0
        )
        self.faulted_body = replace(
            self.base, payload=self.base.payload + payload, damping=self.base.damping * friction
        )

    @property
    def active(self) -> np.ndarray:
        """(B,) whether each episode's fault acts on the current step."""
        return (self.faults.kind != NONE) & (self.t >= self.faults.onset)

    def body(self) -> arm.ArmParams:
        """Each episode's body now (faulted once its fault is active)."""
        on = self.active
        return replace(
            self.base,
            payload=np.where(on, self.faulted_body.payload, self.base.payload),
            damping=np.where(on[:, None], self.faulted_body.damping, self.base.damping),
        )

    def actuator(self) -> ActuatorModel:
        on = self.active[:, None]
        healthy = ActuatorModel.healthy(2)
        f = self.faulted_actuator
        return ActuatorModel(
            np.where(on, f.gain, healthy.gain),
            np.where(on, f.bias, healthy.bias),
            np.where(on, f.limit, healthy.limit),
            f.delay,
        )

    def observe(self) -> np.ndarray:
        return arm.observe(self.q, self.qd, self.target, self.body()).astype(np.float32)

    def teacher(self, fault_aware: bool) -> np.ndarray:
        """The privileged teachers' actions for the current state, (B, 2) in [-1, 1]."""
        body = self.body() if fault_aware else self.base
        tau = arm.computed_torque(self.q, self.qd, self.target, body)
        wanted = arm.torque_to_output(tau, body)
        if fault_aware:
            wanted = invert_actuator(wanted, self.actuator())
        return np.clip(wanted, -1.0, 1.0).astype(np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply ``action`` (B, 2) for one control step; returns ``(obs, reward)``."""
        actuator = self.actuator()
        out = actuate(np.asarray(action, np.float64), actuator.gain, actuator.bias, actuator.limit)
        body = self.body()
        self.q, self.qd = arm.arm_step(self.q, self.qd, out, body)
        rew = arm.reward(self.q, self.target, body)
        self.t += 1
        switch = (self.t + self.target_phase) % arm.TARGET_PERIOD == 0
        if switch.any():
            fresh = arm.sample_target(self.rng, self.base, (self.batch,))
            self.target = np.where(switch[:, None], fresh, self.target)
        return self.observe(), rew
