"""Route each ``DOMAIN:KIND:params`` fault spec to the package that owns its domain.

``robot`` specs become ``robot_env`` records for its ``FaultWrapper``; ``board`` specs become
``firmware_sim`` records sent with the FAULT message (onset counts control steps since RESET,
so one injection serves every episode); ``link`` specs become records for protocol's
``LinkEmulator``, switched on and off by the runner at their onset and end. Link kinds and their
magnitude keys: ``drop:rate``, ``corrupt:rate``, ``delay:seconds``, ``throttle:baud``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from deploy.errors import DeployError

LINK_KEYS = {"drop": "rate", "corrupt": "rate", "delay": "seconds", "throttle": "baud"}


@dataclass(frozen=True)
class FaultPlan:
    """Fault records split by domain, plus every record as telemetry logs it."""

    robot: tuple[Any, ...] = ()
    board: tuple[dict[str, Any], ...] = ()
    link: tuple[dict[str, Any], ...] = ()
    records: tuple[dict[str, Any], ...] = field(default=())

    def onset(self, robot_onsets: Sequence[int] = ()) -> int | None:
        """The first control step any fault acts on (robot onsets as drawn this episode)."""
        steps = [*robot_onsets]
        steps += [int(r.get("onset", 0)) for r in (*self.board, *self.link)]
        return min(steps) if steps else None


def parse_link_fault(spec: str) -> dict[str, Any]:
    """``link:KIND:KEY=VALUE,onset=N,duration=M`` -> a link fault record."""
    from protocol.transport import LINK_FAULT_KINDS
    from robot_env import split_fault_spec

    _, kind, params = split_fault_spec(spec)
    if kind not in LINK_KEYS:
        raise DeployError(f"unknown link fault {kind!r}; choose one of {', '.join(LINK_KEYS)}.")
    key = LINK_KEYS[kind]
    unknown = set(params) - {key, "onset", "duration", "seed"}
    if unknown or key not in params:
        raise DeployError(
            f"link:{kind} takes {key}=VALUE and optionally onset, duration, seed; "
            f"got {', '.join(sorted(params)) or 'nothing'}."
        )
    _, meaning, low, high = LINK_FAULT_KINDS[kind]
    try:
        magnitude: float = float(params[key])
        onset = int(params.get("onset", "0"))
        duration = int(params["duration"]) if "duration" in params else None
    except ValueError:
        raise DeployError(f"fault spec {spec!r} holds a value that is not a number.") from None
    if not low <= magnitude <= high:
        raise DeployError(f"link:{kind} {key} is {meaning}, between {low} and {high}.")
    if kind == "throttle":
        magnitude = int(magnitude)
    return {
        "domain": "link",
        "kind": kind,
        "target": "all",
        "magnitude": magnitude,
        "onset": onset,
        "duration": duration,
        "seed": int(params.get("seed", "0")),
    }


def route_faults(specs: Sequence[str]) -> FaultPlan:
    """Parse every spec with its own domain's parser; unknown domains are refused."""
    from firmware_sim.faults import parse_fault
    from robot_env import parse_robot_fault, split_fault_spec

    robot, board, link, records = [], [], [], []
    for spec in specs:
        domain = split_fault_spec(spec)[0]
        if domain == "robot":
            fault = parse_robot_fault(spec)
            robot.append(fault)
            records.append(fault.to_dict())
        elif domain == "board":
            record = parse_fault(spec).to_dict()
            record["domain"] = "board"
            board.append(record)
            records.append(record)
        elif domain == "link":
            record = parse_link_fault(spec)
            link.append(record)
            records.append(record)
        else:
            raise DeployError(
                f"fault spec {spec!r} names domain {domain!r}; use robot, board or link."
            )
    return FaultPlan(tuple(robot), tuple(board), tuple(link), tuple(records))


def link_active(record: dict[str, Any], step: int) -> bool:
    onset, duration = int(record["onset"]), record.get("duration")
    return onset <= step and (duration is None or step < onset + int(duration))
