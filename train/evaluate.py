"""Closure: the share of the blind-to-aware teacher gap that a controller closes.

    closure = (R_controller - R_blind) / (R_aware - R_blind)

with R a mean reward per step after a fault's onset, both teachers on the controller's episodes
(1: as good as knowing the fault, 0: no better than ignoring it). Where the fault-aware teacher
is not better than the blind one by ``MIN_GAP`` per step, closure is not defined (None): on
Reacher-v5 the aware teacher pays more for control than it gains in distance under a payload,
and a fraction of a negative gap means nothing. ``glocal evaluate`` (``deploy.evaluate``) and the
studies' tables score with this one definition.
"""

from __future__ import annotations

MIN_GAP = 1e-3


def closure(value: float, blind: float, aware: float) -> float | None:
    gap = aware - blind
    return None if gap < MIN_GAP else (value - blind) / gap
