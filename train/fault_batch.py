"""One robot fault per training episode: the kinds, each task's magnitude bands, the draw.

On ArmReach (:data:`BANDS`):

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

A :class:`FaultBatch` holds one fault row per episode (kind, joint, magnitude, onset);
:func:`fault_spec` writes a row as the robot_env spec string that the gymnasium batches, deploy
and the evaluation tables hand to ``FaultWrapper``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

TRAINED_KINDS = ("gain-loss", "bias-torque", "payload", "reversed-motor")
HELD_OUT_KINDS = ("saturation", "friction")
NONE = "none"

# kind -> (training bands, evaluation band); magnitudes of abs value for bias-torque
Bands = Mapping[str, tuple[tuple[tuple[float, float], ...], tuple[float, float]]]

BANDS: Bands = {
    "gain-loss": (((0.15, 0.35), (0.55, 0.8)), (0.4, 0.5)),
    "bias-torque": (((0.1, 0.25), (0.45, 0.6)), (0.3, 0.4)),
    "payload": (((0.2, 0.6), (1.0, 1.5)), (0.7, 0.9)),
    "reversed-motor": (((-1.4, -1.1), (-0.8, -0.6)), (-1.05, -0.85)),
    "saturation": ((), (0.3, 0.4)),
    "friction": ((), (6.0, 10.0)),
}


# Reacher-v5 (gymnasium's MuJoCo arm: links 0.1 m and 0.11 m of 0.036 kg, joint armature
# 1 kg m^2 and damping 1, gear 200): the same kinds, held-out magnitudes between trained bands,
# placed where the teachers differ. Its inertia is almost all armature (the motors' rotors), so
# a payload is sized against that, as ArmReach's 0.7-0.9 kg about doubles its shoulder inertia:
# 20 kg at the 0.21 m reach adds 0.9 kg m^2 (0.5 kg, link-sized, moves the return by 5e-4).
# Gains above 0.3 barely slow this teacher down, so gain loss is held out at 0.22-0.3.
REACHER_BANDS: Bands = {
    "gain-loss": (((0.08, 0.18), (0.35, 0.6)), (0.22, 0.3)),
    "bias-torque": (((0.02, 0.045), (0.095, 0.14)), (0.06, 0.08)),
    "payload": (((5.0, 12.0), (30.0, 45.0)), (18.0, 24.0)),
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
        bands: Bands = BANDS,
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
