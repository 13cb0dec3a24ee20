"""Route each ``DOMAIN:KIND:params`` fault spec to the package that owns its domain.

``robot`` specs become ``robot_env`` records for its ``FaultWrapper``; ``board`` specs become
``firmware_sim`` records sent with the FAULT message (onset counts control steps since RESET,
so one injection serves every episode); ``link`` specs become records for protocol's
``LinkEmulator``, switched on and off by the runner at their onset and end. Each domain parses
and validates its own kinds (``robot_env.parse_robot_fault``, ``firmware_sim.faults.parse_fault``,
``protocol.link_faults.parse_link_fault``); this module only routes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from deploy.errors import DeployError
from firmware_sim.faults import parse_fault
from protocol.faultspec import split_fault_spec
from protocol.link_faults import parse_link_fault
from robot_env import parse_robot_fault


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


def route_faults(specs: Sequence[str]) -> FaultPlan:
    """Parse every spec with its own domain's parser; unknown domains are refused."""
    robot, board, link, records = [], [], [], []
    for spec in specs:
        domain = split_fault_spec(spec, DeployError)[0]
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
