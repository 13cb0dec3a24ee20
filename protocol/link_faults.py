"""Link faults as data: the kinds the link emulator applies, and their spec parser.

A link fault is ``link:KIND:KEY=VALUE[,onset=N][,duration=M][,seed=S]`` with one magnitude key
per kind (:data:`LINK_FAULT_KINDS`): ``drop:rate``, ``corrupt:rate``, ``delay:seconds``,
``throttle:baud``. :func:`parse_link_fault` turns it into the fault record shared by all three
domains (``docs/faults.md``); :class:`protocol.transport.LinkEmulator` applies such a record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.errors import LinkFaultError
from protocol.faultspec import split_fault_spec

LINK_DOMAIN = "link"
SCHEDULE_KEYS = ("onset", "duration", "seed")


@dataclass(frozen=True)
class LinkFaultKind:
    """One link fault: the emulator setting it changes and the range of its magnitude."""

    attribute: str  # the LinkEmulator setting
    key: str  # the magnitude's key in a fault spec
    meaning: str
    low: float
    high: float


LINK_FAULT_KINDS = {
    "drop": LinkFaultKind("drop_rate", "rate", "the probability that each byte is lost", 0.0, 1.0),
    "corrupt": LinkFaultKind(
        "corrupt_rate", "rate", "the probability that each byte is flipped", 0.0, 1.0
    ),
    "delay": LinkFaultKind("delay_s", "seconds", "seconds added to every write", 0.0, 10.0),
    "throttle": LinkFaultKind(
        "baud", "baud", "the link's baud rate (0: unlimited)", 0, 100_000_000
    ),
}


def link_fault_kind(kind: Any) -> LinkFaultKind:
    """The kind called ``kind``; an unknown one is one sentence naming those that exist."""
    if kind not in LINK_FAULT_KINDS:
        raise LinkFaultError(
            f"link fault kind {kind!r} is unknown; use one of {sorted(LINK_FAULT_KINDS)}."
        )
    return LINK_FAULT_KINDS[kind]


def check_link_magnitude(kind: str, value: Any) -> None:
    """Refuse a magnitude that is not a number inside the kind's range."""
    spec = LINK_FAULT_KINDS[kind]
    if type(value) not in (int, float) or not spec.low <= value <= spec.high:
        raise LinkFaultError(
            f"a link {kind} magnitude is {spec.meaning}, between {spec.low} and {spec.high}; "
            f"got {value!r}."
        )


def parse_link_fault(spec: str) -> dict[str, Any]:
    """``link:KIND:KEY=VALUE,onset=N,duration=M,seed=S`` -> a link fault record."""
    domain, kind, params = split_fault_spec(spec, LinkFaultError)
    if domain != LINK_DOMAIN:
        raise LinkFaultError(f"fault spec {spec!r} is for domain {domain!r}, not 'link'.")
    key = link_fault_kind(kind).key
    if set(params) - {key, *SCHEDULE_KEYS} or key not in params:
        raise LinkFaultError(
            f"link:{kind} takes {key}=VALUE and optionally {', '.join(SCHEDULE_KEYS)}; "
            f"got {', '.join(sorted(params)) or 'nothing'}."
        )
    try:
        magnitude: float = float(params[key])
        onset = int(params.get("onset", "0"))
        duration = int(params["duration"]) if "duration" in params else None
        seed = int(params.get("seed", "0"))
    except ValueError:
        raise LinkFaultError(f"fault spec {spec!r} holds a value that is not a number.") from None
    check_link_magnitude(kind, magnitude)
    if kind == "throttle":
        magnitude = int(magnitude)
    return {
        "domain": LINK_DOMAIN,
        "kind": kind,
        "target": "all",
        "magnitude": magnitude,
        "onset": onset,
        "duration": duration,
        "seed": seed,
    }
