"""Board faults as data (docs/board-spec.md §8): a record, one spec syntax, masks for the engine.

A ``Fault`` is declarative: ``kind``, ``target`` (a core or ``all``), ``magnitude``, ``onset`` tick,
``duration`` in ticks (``None``: permanent) and ``seed``. The choices a fault makes (which
synapses, which neurons) are drawn from ``numpy.random.default_rng(seed)`` when it is injected,
so the same image, seed and fault list reproduce a run bit for bit. The CLI/FAULT syntax is
``board:KIND:core=3,magnitude=0.1,onset=100,duration=50,seed=7`` (``board:`` is optional).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from firmware_sim.errors import FaultError

SYNAPSE_KINDS = ("stuck-zero", "stuck-value")
NEURON_KINDS = ("dead-neuron", "always-fire")
FLIP_KINDS = ("weight-flip", "trace-flip")
KINDS = (*SYNAPSE_KINDS, *NEURON_KINDS, *FLIP_KINDS, "core-down", "input-noise")
ALL_CORES = "all"


@dataclass(frozen=True)
class Fault:
    """One board fault; see the module docstring for the fields."""

    kind: str
    target: int | str = ALL_CORES
    magnitude: float = 0.0
    onset: int = 0
    duration: int | None = None
    seed: int = 0
    params: dict[str, float] = field(default_factory=dict)
    domain: str = "board"

    def __post_init__(self) -> None:
        if self.domain != "board":
            raise FaultError(f"the board handles board faults only, not {self.domain!r} faults.")
        if self.kind not in KINDS:
            raise FaultError(
                f"unknown board fault {self.kind!r}; choose one of: {', '.join(KINDS)}."
            )
        if not (self.target == ALL_CORES or (isinstance(self.target, int) and self.target >= 0)):
            raise FaultError(f"a fault targets a core id or 'all', not {self.target!r}.")
        if self.onset < 0 or (self.duration is not None and self.duration < 1):
            raise FaultError("a fault's onset must be >= 0 and its duration >= 1 tick.")
        fraction_kinds = (*SYNAPSE_KINDS[:1], *NEURON_KINDS)
        if self.kind in fraction_kinds and not 0.0 <= self.magnitude <= 1.0:
            raise FaultError(f"{self.kind} takes a fraction in 0..1 as magnitude.")
        if self.kind in FLIP_KINDS and not 0.0 <= self.magnitude <= 1e-2:
            raise FaultError(f"{self.kind} takes a flip rate per bit per tick in 0..0.01.")
        if self.kind == "input-noise" and self.magnitude < 0:
            raise FaultError("input-noise takes a non-negative standard deviation.")
        if not 0.0 <= float(self.params.get("fraction", 0.01)) <= 1.0:
            raise FaultError("a fault's fraction must lie in 0..1.")

    def active(self, tick: int) -> bool:
        """Whether the fault acts on board tick ``tick``."""
        if tick < self.onset:
            return False
        return self.duration is None or tick < self.onset + self.duration

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Fault:
        """A fault from a FAULT message body; unknown or ill-typed fields are one sentence."""
        known = set(cls.__dataclass_fields__)
        unknown = set(record) - known
        if unknown:
            raise FaultError(f"a fault record has unknown fields: {', '.join(sorted(unknown))}.")
        if "kind" not in record:
            raise FaultError("a fault record needs a kind.")
        try:
            target = record.get("target", ALL_CORES)
            target = target if target == ALL_CORES else int(target)
            duration = record.get("duration")
            return cls(
                kind=str(record["kind"]),
                target=target,
                magnitude=float(record.get("magnitude", 0.0)),
                onset=int(record.get("onset", 0)),
                duration=None if duration is None else int(duration),
                seed=int(record.get("seed", 0)),
                params={str(k): float(v) for k, v in dict(record.get("params") or {}).items()},
                domain=str(record.get("domain", "board")),
            )
        except (TypeError, ValueError) as error:
            raise FaultError(f"a fault record has a field of the wrong type ({error}).") from None


def parse_fault(text: str) -> Fault:
    """``[board:]KIND[:key=value,...]`` -> Fault (keys: core, magnitude, onset, duration, seed,
    and kind-specific parameters such as ``fraction`` or ``value``)."""
    parts = text.split(":")
    if parts[0] == "board":
        parts = parts[1:]
    if not parts or not parts[0] or len(parts) > 2:
        raise FaultError(
            f"cannot read fault {text!r}; write e.g. board:dead-neuron:core=0,magnitude=0.1."
        )
    record: dict[str, Any] = {"kind": parts[0], "params": {}}
    for item in filter(None, (parts[1] if len(parts) == 2 else "").split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise FaultError(f"fault parameter {item!r} needs the form key=value.")
        if key in ("core", "target"):
            record["target"] = value
        elif key in ("magnitude", "onset", "duration", "seed"):
            record[key] = value
        else:
            record["params"][key] = value
    return Fault.from_dict(record)
