"""The observation-channel schema: how an env names the sensor readings in its observation.

A channel is one reading: a scalar entry, or an angle stored as a (cos, sin) pair, on which
sensor faults act in radians and keep the pair on the unit circle. An env (or its task's body
adapter) names its sensors with ``sensor_channels() -> {"joint=0": [angle(0, 2), scalar(4)], ...}``
so that a fault spec can say ``joint=j`` or ``channel=NAME``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Channel:
    """One sensor reading: ``("scalar", (i,))`` or ``("angle", (cos_i, sin_i))``."""

    kind: str
    index: tuple[int, ...]


def scalar(i: int) -> Channel:
    return Channel("scalar", (i,))


def angle(cos_i: int, sin_i: int) -> Channel:
    return Channel("angle", (cos_i, sin_i))
