"""Board faults as data (docs/board-spec.md §8): a record, one spec syntax, masks for the engine.

A ``Fault`` is declarative: ``kind``, ``target`` (a core or ``all``, optionally one neuron),
``magnitude``, ``onset`` control step, ``duration`` in steps (``None``: until cleared) and
``seed``; the record on the wire is the protocol's fault record (``target`` a map such as
``{"core": 3, "neuron": 17}``, kind-specific extras such as ``fraction`` in ``params``).
The choices a fault makes (which synapses, which neurons) are drawn from
``numpy.random.default_rng(seed)`` when it is injected, so the same image, seed and fault list
reproduce a run bit for bit. The CLI syntax is
``board:KIND:core=3,neuron=5,magnitude=0.1,onset=100,duration=50,seed=7,fraction=0.2``
(``board:`` is optional).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from firmware_sim.errors import FaultError
from protocol.faultspec import split_fault_spec

SYNAPSE_KINDS = ("stuck-zero", "stuck-value")
NEURON_KINDS = ("dead-neuron", "always-fire")
FLIP_KINDS = ("weight-flip", "trace-flip")
KINDS = (*SYNAPSE_KINDS, *NEURON_KINDS, *FLIP_KINDS, "core-down", "input-noise")
ALL_CORES = "all"
BOARD_DOMAIN = "board"


@dataclass(frozen=True)
class Fault:
    """One board fault; see the module docstring for the fields."""

    kind: str
    target: int | str = ALL_CORES
    neuron: int | None = None
    magnitude: float = 0.0
    onset: int = 0
    duration: int | None = None
    seed: int = 0
    params: dict[str, float] = field(default_factory=dict)
    domain: str = BOARD_DOMAIN

    def __post_init__(self) -> None:
        if self.domain != BOARD_DOMAIN:
            raise FaultError(f"the board handles board faults only, not {self.domain!r} faults.")
        if self.kind not in KINDS:
            raise FaultError(
                f"unknown board fault {self.kind!r}; choose one of: {', '.join(KINDS)}."
            )
        if not (self.target == ALL_CORES or (isinstance(self.target, int) and self.target >= 0)):
            raise FaultError(f"a fault targets a core id or 'all', not {self.target!r}.")
        if self.onset < 0 or (self.duration is not None and self.duration < 1):
            raise FaultError("a fault's onset must be >= 0 and its duration >= 1 step.")
        if self.neuron is not None and (self.neuron < 0 or self.kind not in NEURON_KINDS):
            raise FaultError("only dead-neuron and always-fire take a neuron, and it is >= 0.")
        fraction_kinds = (*SYNAPSE_KINDS[:1], *NEURON_KINDS)
        if self.kind in fraction_kinds and not 0.0 <= self.magnitude <= 1.0:
            raise FaultError(f"{self.kind} takes a fraction in 0..1 as magnitude.")
        if self.kind in FLIP_KINDS and not 0.0 <= self.magnitude <= 1e-2:
            raise FaultError(f"{self.kind} takes a flip rate per bit per tick in 0..0.01.")
        if self.kind == "input-noise" and self.magnitude < 0:
            raise FaultError("input-noise takes a non-negative standard deviation.")
        if not 0.0 <= float(self.params.get("fraction", 0.01)) <= 1.0:
            raise FaultError("a fault's fraction must lie in 0..1.")

    def active(self, step: int) -> bool:
        """Whether the fault acts during control step ``step`` (0 for the first step)."""
        if step < self.onset:
            return False
        return self.duration is None or step < self.onset + self.duration

    def to_dict(self) -> dict[str, Any]:
        """The protocol's fault record for this fault."""
        record = asdict(self)
        target = {"core": record.pop("target")}
        if record["neuron"] is not None:
            target["neuron"] = record["neuron"]
        del record["neuron"]
        return {**record, "target": target}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Fault:
        """A fault from a FAULT message body; unknown or ill-typed fields are one sentence."""
        known = set(cls.__dataclass_fields__) - {"neuron"}
        unknown = set(record) - known
        if unknown:
            raise FaultError(f"a fault record has unknown fields: {', '.join(sorted(unknown))}.")
        if "kind" not in record:
            raise FaultError("a fault record needs a kind.")
        target = _target_map(record.get("target"))
        if set(target) - {"core", "neuron"}:
            raise FaultError("a board fault's target names a core and optionally a neuron.")
        try:
            core = target.get("core", ALL_CORES)
            neuron = target.get("neuron")
            duration = record.get("duration")
            onset = record.get("onset", 0)
            if isinstance(onset, list | tuple):  # a window: drawn once from the fault's seed
                low, high = (int(v) for v in onset)
                if high < low:
                    raise FaultError(f"an onset window {low}..{high} is empty.")
                onset = int(
                    np.random.default_rng(int(record.get("seed", 0))).integers(low, high + 1)
                )
            return cls(
                kind=str(record["kind"]),
                target=core if core == ALL_CORES else int(core),
                neuron=None if neuron is None else int(neuron),
                magnitude=float(record.get("magnitude", 0.0)),
                onset=int(onset),
                duration=None if duration is None else int(duration),
                seed=int(record.get("seed", 0)),
                params={str(k): float(v) for k, v in dict(record.get("params") or {}).items()},
                domain=str(record.get("domain", BOARD_DOMAIN)),
            )
        except (TypeError, ValueError) as error:
            raise FaultError(f"a fault record has a field of the wrong type ({error}).") from None


MAGNITUDE_KEYS: dict[str, tuple[str | None, float]] = {
    "stuck-zero": ("fraction", 0.1),
    "stuck-value": ("value", 0.0),
    "dead-neuron": ("fraction", 0.1),
    "always-fire": ("fraction", 0.01),
    "weight-flip": ("rate", 1e-4),
    "trace-flip": ("rate", 1e-4),
    "core-down": (None, 0.0),
    "input-noise": ("std", 0.1),
}
"""Each kind's magnitude key in the spec syntax, and its default."""
EXTRA_KEYS = {"stuck-value": ("fraction",)}
COMMON_KEYS = ("core", "onset", "duration", "seed")


def _target_map(target: Any) -> dict[str, Any]:
    """A target as a map: ``{"core": 3, "neuron": 5}``, ``"core=3,neuron=5"``, ``"all"`` or 3."""
    if target is None or target == ALL_CORES:
        return {}
    if isinstance(target, dict):
        return dict(target)
    if isinstance(target, str) and "=" in target:
        pairs = (item.partition("=") for item in target.split(","))
        return {key.strip(): value.strip() for key, _, value in pairs}
    return {"core": target}


def _check_number(spec: str, key: str, value: str) -> None:
    """Every key takes a number, but core may be ``all`` and onset a ``LOW..HIGH`` window."""
    if (key == "core" and value == ALL_CORES) or (key == "onset" and ".." in value):
        return
    try:
        float(value)
    except ValueError:
        raise FaultError(f"fault spec {spec!r}: {key} must be a number, not {value!r}.") from None


def parse_fault(text: str) -> Fault:
    """``[board:]KIND[:key=value,...]`` -> Fault, in the syntax of docs/faults.md.

    Keys: ``core`` (or ``all``), ``neuron`` for neuron kinds, the kind's magnitude key
    (:data:`MAGNITUDE_KEYS`), ``onset`` (a step or ``LOW..HIGH``, drawn from the seed),
    ``duration``, ``seed``, and ``fraction`` for stuck-value. Keys are case-insensitive and
    a key given twice is refused (``protocol.faultspec``).
    """
    # "board:" may be left out: a board kind never contains a colon, so a first field that is
    # not the domain is the kind.
    if text.strip().split(":", 1)[0].strip().lower() != BOARD_DOMAIN:
        text = f"{BOARD_DOMAIN}:{text}"
    _, kind, params = split_fault_spec(text, FaultError)
    if kind not in KINDS:
        raise FaultError(f"unknown board fault {kind!r}; choose one of: {', '.join(KINDS)}.")
    magnitude_key, magnitude = MAGNITUDE_KEYS[kind]
    allowed = [*COMMON_KEYS, *EXTRA_KEYS.get(kind, ())]
    allowed += [magnitude_key] if magnitude_key else []
    allowed += ["neuron"] if kind in NEURON_KINDS else []
    record: dict[str, Any] = {"kind": kind, "params": {}, "target": {}, "magnitude": magnitude}
    for key, value in params.items():
        if key not in allowed:
            raise FaultError(f"{kind} takes the keys {', '.join(allowed)}, not {key!r}.")
        _check_number(text, key, value)
        if key in ("core", "neuron"):
            record["target"][key] = value
        elif key == magnitude_key:
            record["magnitude"] = value
        elif key == "onset" and ".." in value:
            record["onset"] = value.split("..", 1)
        elif key in COMMON_KEYS:
            record[key] = value
        else:
            record["params"][key] = value
    return Fault.from_dict(record)
