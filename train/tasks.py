"""Batched ArmReach episodes with robot faults and both privileged teachers, for training.

Meta-training steps many episodes at once, so this module drives ``robot_env.arm``'s pure,
batch-broadcasting physics and ``robot_env.faults``' pure actuator functions directly (the same
functions ``glocal/ArmReach-v0`` and its ``FaultWrapper`` call), one fault per episode:

==================  ===========================  =================================  ==============
kind                effect (robot_env)           train magnitudes                   held out (eval)
==================  ===========================  =================================  ==============
``gain-loss``       torque x gain                gain 0.15-0.35 or 0.55-0.8         0.4-0.5
``bias-torque``     + bias (action units)        abs 0.1-0.25 or 0.45-0.6, signed   abs 0.3-0.4
``payload``         kg at the fingertip          0.2-0.6 or 1.0-1.5                 0.7-0.9
``reversed-motor``  torque x gain (< 0)          gain -1.4 to -1.1 or -0.8 to -0.6  -1.05 to -0.85
==================  ===========================  =================================  ==============

Joints are drawn at random; evaluation magnitudes lie between the trained bands, so training never
sees them. ``saturation`` and ``friction`` are fault *kinds* held out entirely (reported only).

Timing follows ``robot_env.faults``: a fault with ``onset`` is active from control step ``onset``
on and acts on that step's action. Both teachers know the episode's randomised body; the
fault-blind one plans with the healthy body and actuators, the fault-aware one with the faulted
body and inverts gain and bias. Teacher actions are clipped to the action space.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from robot_env import arm
from robot_env.faults import ActuatorModel, actuate, invert_actuator

TASK_ID = "glocal/ArmReach-v0"
TRAINED_KINDS = ("gain-loss", "bias-torque", "payload", "reversed-motor")
HELD_OUT_KINDS = ("saturation", "friction")
NONE = "none"

# kind -> (training bands, evaluation band); magnitudes of abs value for bias-torque
BANDS: dict[str, tuple[tuple[tuple[float, float], ...], tuple[float, float]]] = {
    "gain-loss": (((0.15, 0.35), (0.55, 0.8)), (0.4, 0.5)),
    "bias-torque": (((0.1, 0.25), (0.45, 0.6)), (0.3, 0.4)),
    "payload": (((0.2, 0.6), (1.0, 1.5)), (0.7, 0.9)),
    "reversed-motor": (((-1.4, -1.1), (-0.8, -0.6)), (-1.05, -0.85)),
    "saturation": ((), (0.3, 0.4)),
    "friction": ((), (6.0, 10.0)),
}


@dataclass(frozen=True)
class FaultBatch:
    """One fault per episode: kind names, joint, magnitude and onset step, each (B,)."""

    kind: np.ndarray  # str
    joint: np.ndarray
    magnitude: np.ndarray
    onset: np.ndarray

    @classmethod
    def sample(
        cls,
        rng: np.random.Generator,
        batch: int,
        kinds: tuple[str, ...],
        held_out: bool,
        onset: tuple[int, int] | int,
        p_none: float = 0.0,
        bands: Mapping[str, Any] = BANDS,
    ) -> FaultBatch:
        """Faults of ``kinds`` at training (``held_out=False``) or evaluation magnitudes of
        ``bands`` (a task's, :data:`BANDS` for ArmReach)."""
        kind = rng.choice(np.array(kinds), batch)
        if p_none > 0:
            kind = np.where(rng.random(batch) < p_none, NONE, kind)
        magnitude = np.zeros(batch)
        for name in sorted(set(kind.tolist()) - {NONE}):  # sorted: set order varies by process
            rows = np.flatnonzero(kind == name)
            train_bands, eval_band = bands[name]
            drawn = (eval_band,) if held_out else train_bands
            pick = rng.integers(0, len(drawn), rows.size)
            low = np.array([drawn[i][0] for i in pick])
            high = np.array([drawn[i][1] for i in pick])
            magnitude[rows] = rng.uniform(low, high)
            if name == "bias-torque":
                magnitude[rows] *= rng.choice([-1.0, 1.0], rows.size)
        if isinstance(onset, int):
            onsets = np.full(batch, onset)
        else:
            onsets = rng.integers(onset[0], onset[1] + 1, batch)
        return cls(kind, rng.integers(0, 2, batch), magnitude, onsets)


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


# The robot_env spec key of each kind's magnitude (payload needs no joint: the fingertip).
MAGNITUDE_KEYS = {
    "gain-loss": "gain",
    "reversed-motor": "gain",
    "bias-torque": "bias",
    "saturation": "limit",
    "friction": "scale",
    "payload": "mass",
}


def fault_spec(
    kind: str, joint: int, magnitude: float, onset: int, digits: int | None = None
) -> str | None:
    """One :class:`FaultBatch` row as a robot_env spec string (``None`` for a fault-free one),
    e.g. ``robot:gain-loss:joint=1,gain=0.45,onset=50``; the magnitude at full precision unless
    ``digits`` rounds it."""
    kind = str(kind)
    if kind == NONE:
        return None
    value = repr(float(magnitude)) if digits is None else f"{float(magnitude):.{digits}f}"
    target = "" if kind == "payload" else f"joint={int(joint)},"
    return f"robot:{kind}:{target}{MAGNITUDE_KEYS[kind]}={value},onset={int(onset)}"


# Reacher-v5 (gymnasium's MuJoCo arm: links 0.1 m and 0.11 m of 0.036 kg, joint armature
# 1 kg m^2 and damping 1, gear 200): the same kinds, held-out magnitudes between trained bands,
# placed where the teachers differ. Its inertia is almost all armature (the motors' rotors), so
# a payload is sized against that, as ArmReach's 0.7-0.9 kg about doubles its shoulder inertia:
# 20 kg at the 0.21 m reach adds 0.9 kg m^2 (0.5 kg, link-sized, moves the return by 5e-4).
# Gains above 0.3 barely slow this teacher down, so gain loss is held out at 0.22-0.3.
REACHER_BANDS: dict[str, tuple[tuple[tuple[float, float], ...], tuple[float, float]]] = {
    "gain-loss": (((0.08, 0.18), (0.35, 0.6)), (0.22, 0.3)),
    "bias-torque": (((0.02, 0.045), (0.095, 0.14)), (0.06, 0.08)),
    "payload": (((5.0, 12.0), (30.0, 45.0)), (18.0, 24.0)),
    "reversed-motor": (((-1.4, -1.1), (-0.8, -0.6)), (-1.05, -0.85)),
    "saturation": ((), (0.3, 0.4)),
    "friction": ((), (6.0, 10.0)),
}


@dataclass(frozen=True)
class Task:
    """What training, its evaluation and deploy look up about one task id.

    ``new_batch(faults, seed, stagger, steps)`` makes the batched episodes (``steps`` long at
    least); ``make_env(faults, steps)`` the single env deploy's closed loop runs (``None``:
    ``robot_env.make(env_id, faults)`` as registered).
    """

    env_id: str
    n_obs: int
    n_act: int
    bands: Mapping[str, tuple[tuple[tuple[float, float], ...], tuple[float, float]]]
    new_batch: Callable[..., Any]
    make_env: Callable[..., Any] | None = None
    trained_kinds: tuple[str, ...] = TRAINED_KINDS
    held_out_kinds: tuple[str, ...] = HELD_OUT_KINDS
    reward: str = ""


def _arm_batch(faults: FaultBatch, seed: int, stagger: bool = False, steps: int = 0):
    return ArmReachBatch(faults, seed, stagger)  # never truncates: steps is moot


def _reacher_batch(faults: FaultBatch, seed: int, stagger: bool = False, steps: int = 300):
    from train.gym_batch import GymBatch

    return GymBatch(faults, seed, stagger, steps)


def _reacher_env(faults=(), steps: int = 300):
    from train.gym_batch import make_reacher

    return make_reacher(faults, steps)


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
        "Reacher-v5",
        10,
        2,
        REACHER_BANDS,
        _reacher_batch,
        _reacher_env,
        reward="-|fingertip - target| - |action|^2 (m; gymnasium's own)",
    ),
}


def get_task(task_id: str, error: type[Exception] | None = None) -> Task:
    """The registry's entry for ``task_id``; an unknown id raises ``error`` (default
    :class:`train.errors.TrainError`) with one sentence."""
    if task_id not in TASKS:
        from train.errors import TrainError

        raise (error or TrainError)(f"unknown task {task_id!r}; the tasks are {', '.join(TASKS)}.")
    return TASKS[task_id]
