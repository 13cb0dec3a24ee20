"""Robot faults as data: the record, the spec parser and the pure fault effects.

A fault is a small declarative record ``{domain, kind, target, magnitude, onset, duration, seed}``
(the schema shared by all three domains, written down in ``docs/faults.md``). The CLI writes one
as ``DOMAIN:KIND:key=value,...``, e.g. ``robot:gain-loss:joint=1,gain=0.3,onset=100``.
``protocol.faultspec.split_fault_spec`` is the domain-blind first half of parsing (keys are
case-insensitive, a repeated key is refused); :func:`parse_robot_fault` is the second half for
the ``robot`` domain.

Timing, in control steps counted from reset: observation ``t`` is the one the controller sees
before action ``t`` (``reset`` returns observation 0, the ``t``-th ``step`` returns observation
``t + 1``). A fault is active at step ``t`` when ``onset <= t < onset + duration``; it then affects
action ``t``, the physics of that step and observation ``t``.

Actuator pipeline (per action dimension, in this order, then the env clips to its action space)::

    delayed = command issued `delay` steps ago        (zeros before the episode began)
    out     = clip(gain * delayed, -limit, +limit) + bias

Several faults on one dimension combine: gains multiply, biases add, limits take the minimum,
delays add.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocol.faultspec import split_fault_spec
from robot_env.errors import FaultSpecError, FaultTargetError

ROBOT_DOMAIN = "robot"
ACTUATOR, SENSOR, BODY = "actuator", "sensor", "body"
TARGET_KEYS = ("joint", "leg", "obs", "channel", "body")
SCHEDULE_KEYS = ("onset", "duration", "seed")
ALL = "all"


@dataclass(frozen=True)
class FaultKind:
    """What a robot fault kind means: its group, the spec key of its magnitude and the limits."""

    name: str
    group: str
    doc: str
    magnitude_key: str | None = None
    default: float | None = None
    low: float = -math.inf
    high: float = math.inf
    integer: bool = False
    targets: tuple[str, ...] = ("joint",)
    target_required: bool = False

    def check_magnitude(self, value: float) -> float:
        if not (self.low <= value <= self.high) or math.isnan(value):
            raise FaultSpecError(
                f"{self.name}: {self.magnitude_key}={value:g} is outside "
                f"[{self.low:g}, {self.high:g}]."
            )
        if self.integer and value != int(value):
            raise FaultSpecError(f"{self.name}: {self.magnitude_key} must be a whole number.")
        return float(value)


_SENSOR_TARGETS = ("joint", "channel", "obs")
KINDS: dict[str, FaultKind] = {
    kind.name: kind
    for kind in (
        FaultKind("gain-loss", ACTUATOR, "motor torque scaled by gain", "gain", 0.5, 0.0, 1.0),
        FaultKind(
            "reversed-motor", ACTUATOR, "wiring fault: negative gain", "gain", -1.0, -2.0, -1e-3
        ),
        FaultKind("dead-motor", ACTUATOR, "motor gives no torque (gain 0)"),
        FaultKind("bias-torque", ACTUATOR, "constant torque added", "bias", 0.3, -1.0, 1.0),
        FaultKind("saturation", ACTUATOR, "output clipped to +-limit", "limit", 0.3, 1e-3, 1.0),
        FaultKind("delay", ACTUATOR, "command applied steps later", "steps", 3, 1, 50, True),
        FaultKind(
            "sensor-noise", SENSOR, "gaussian noise", "std", 0.1, 0.0, targets=_SENSOR_TARGETS
        ),
        FaultKind("sensor-bias", SENSOR, "constant offset", "bias", 0.3, targets=_SENSOR_TARGETS),
        FaultKind(
            "sensor-stuck", SENSOR, "reading frozen at its value at onset", targets=_SENSOR_TARGETS
        ),
        FaultKind(
            "sensor-dropout",
            SENSOR,
            "reading is 0 with probability p",
            "p",
            0.5,
            0.0,
            1.0,
            targets=_SENSOR_TARGETS,
        ),
        FaultKind(
            "payload",
            BODY,
            "mass in kg added at the end effector (Ant: torso)",
            "mass",
            0.5,
            0.0,
            100.0,
            targets=("body",),
        ),
        FaultKind(
            "mass-change",
            BODY,
            "masses and inertias scaled",
            "scale",
            1.5,
            0.05,
            20.0,
            targets=("body", "joint"),
        ),
        FaultKind(
            "friction",
            BODY,
            "joint damping (Ant: ground friction) scaled",
            "scale",
            5.0,
            0.0,
            100.0,
        ),
        FaultKind(
            "crippled-leg",
            BODY,
            "leg's motors dead and its lower segment gone (Ant)",
            targets=("leg",),
            target_required=True,
        ),
    )
}


@dataclass(frozen=True)
class RobotFault:
    """One robot fault: the shared fault record restricted to ``domain == "robot"``.

    ``target`` is ``"all"`` or one ``key=value`` pair (``joint=1``, ``channel=tip``, ``leg=2``,
    ``obs=4``, ``body=torso``). ``magnitude`` is in the units of the kind's key (``None`` for
    kinds without one). ``onset`` is a step or an inclusive ``(low, high)`` window drawn per
    episode; ``duration`` ``None`` means to the end of the episode. ``seed`` seeds the fault's
    own randomness (noise, dropout, random onset).
    """

    kind: str
    target: str = ALL
    magnitude: float | None = None
    onset: int | tuple[int, int] = 0
    duration: int | None = None
    seed: int = 0
    domain: str = field(default=ROBOT_DOMAIN)

    def __post_init__(self) -> None:
        if self.domain != ROBOT_DOMAIN:
            raise FaultSpecError(f"domain {self.domain!r} is not handled by robot_env.")
        spec = kind_of(self.kind)
        if spec.magnitude_key is None and self.magnitude is not None:
            raise FaultSpecError(f"{self.kind} takes no magnitude.")
        if spec.magnitude_key is not None:
            magnitude = spec.default if self.magnitude is None else self.magnitude
            object.__setattr__(self, "magnitude", spec.check_magnitude(float(magnitude)))
        key, _ = target_parts(self.target)
        if key == ALL and spec.target_required:
            raise FaultSpecError(f"{self.kind} needs a target ({', '.join(spec.targets)}=...).")
        if key not in (*spec.targets, ALL):
            raise FaultSpecError(f"{self.kind} targets {' or '.join(spec.targets)}, not {key!r}.")
        low, high = self.onset if isinstance(self.onset, tuple) else (self.onset, self.onset)
        if not 0 <= low <= high:
            raise FaultSpecError(
                f"onset must be a step >= 0 or a window low..high, not {low}..{high}."
            )
        if self.duration is not None and self.duration < 1:
            raise FaultSpecError("duration must be at least 1 step (omit it for 'until the end').")

    @property
    def group(self) -> str:
        return KINDS[self.kind].group

    def to_dict(self) -> dict[str, Any]:
        """The shared record shape, JSON-ready (a window onset becomes ``[low, high]``)."""
        onset = list(self.onset) if isinstance(self.onset, tuple) else self.onset
        return {
            "domain": self.domain,
            "kind": self.kind,
            "target": self.target,
            "magnitude": self.magnitude,
            "onset": onset,
            "duration": self.duration,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> RobotFault:
        unknown = set(record) - {
            "domain",
            "kind",
            "target",
            "magnitude",
            "onset",
            "duration",
            "seed",
        }
        if unknown:
            raise FaultSpecError(f"fault record has unknown fields {sorted(unknown)}.")
        if "kind" not in record:
            raise FaultSpecError("fault record lacks its kind.")
        onset = record.get("onset", 0)
        if isinstance(onset, list | tuple):
            onset = (int(onset[0]), int(onset[1]))
        return cls(
            kind=str(record["kind"]),
            target=str(record.get("target", ALL)),
            magnitude=record.get("magnitude"),
            onset=onset,
            duration=record.get("duration"),
            seed=int(record.get("seed", 0)),
            domain=str(record.get("domain", ROBOT_DOMAIN)),
        )

    def spec(self) -> str:
        """The CLI spec string that parses back to this record."""
        params = [] if self.target == ALL else [self.target]
        if self.magnitude is not None:
            params.append(f"{KINDS[self.kind].magnitude_key}={self.magnitude:g}")
        onset = f"{self.onset[0]}..{self.onset[1]}" if isinstance(self.onset, tuple) else self.onset
        params.append(f"onset={onset}")
        if self.duration is not None:
            params.append(f"duration={self.duration}")
        params.append(f"seed={self.seed}")
        return f"{self.domain}:{self.kind}:{','.join(params)}"


def kind_of(name: str) -> FaultKind:
    try:
        return KINDS[name]
    except KeyError:
        raise FaultSpecError(
            f"unknown robot fault kind {name!r}; known kinds: {', '.join(KINDS)}."
        ) from None


def target_parts(target: str) -> tuple[str, str]:
    """``"joint=1"`` -> ``("joint", "1")``; ``"all"`` -> ``("all", "")``."""
    if target == ALL:
        return ALL, ""
    key, sep, value = target.partition("=")
    if not sep or key not in TARGET_KEYS or not value:
        raise FaultSpecError(
            f"fault target {target!r} is not 'all' or KEY=VALUE with KEY in "
            f"{', '.join(TARGET_KEYS)}."
        )
    return key, value


def parse_robot_fault(spec: str) -> RobotFault:
    """Parse ``robot:KIND:key=value,...`` into a validated :class:`RobotFault`."""
    domain, kind_name, params = split_fault_spec(spec, FaultSpecError)
    if domain != ROBOT_DOMAIN:
        raise FaultSpecError(f"fault spec {spec!r} is for domain {domain!r}, not 'robot'.")
    kind = kind_of(kind_name)
    allowed = {*kind.targets, *SCHEDULE_KEYS} | (
        {kind.magnitude_key} if kind.magnitude_key else set()
    )
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise FaultSpecError(
            f"{kind.name} does not take {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(allowed))}."
        )
    targets = [f"{key}={params[key]}" for key in kind.targets if key in params]
    if len(targets) > 1:
        raise FaultSpecError(f"{kind.name} takes one target, got {', '.join(targets)}.")
    magnitude = None
    if kind.magnitude_key in params:
        magnitude = _number(spec, kind.magnitude_key, params[kind.magnitude_key], float)
    duration = params.get("duration")
    return RobotFault(
        kind=kind.name,
        target=targets[0] if targets else ALL,
        magnitude=magnitude,
        onset=_onset(spec, params.get("onset", "0")),
        duration=None if duration is None else _number(spec, "duration", duration, int),
        seed=_number(spec, "seed", params.get("seed", "0"), int),
    )


def _number(spec: str, key: str, text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise FaultSpecError(f"fault spec {spec!r}: {key}={text!r} is not a number.") from None


def _onset(spec: str, text: str) -> int | tuple[int, int]:
    if ".." in text:
        low, _, high = text.partition("..")
        return (_number(spec, "onset", low, int), _number(spec, "onset", high, int))
    return _number(spec, "onset", text, int)


def as_fault(fault: RobotFault | str | Mapping[str, Any]) -> RobotFault:
    """Accept a record, a spec string or a record dict."""
    if isinstance(fault, RobotFault):
        return fault
    if isinstance(fault, str):
        return parse_robot_fault(fault)
    if isinstance(fault, Mapping):
        return RobotFault.from_dict(fault)
    raise FaultSpecError(f"a fault must be a RobotFault, a spec string or a dict, not {fault!r}.")


# --- pure effects -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActuatorModel:
    """Per-action-dimension actuator faults in effect: see the pipeline in the module docstring."""

    gain: np.ndarray
    bias: np.ndarray
    limit: np.ndarray
    delay: np.ndarray

    @classmethod
    def healthy(cls, n: int) -> ActuatorModel:
        return cls(np.ones(n), np.zeros(n), np.full(n, np.inf), np.zeros(n, dtype=np.int64))

    @property
    def is_healthy(self) -> bool:
        return bool(
            np.all(self.gain == 1)
            and np.all(self.bias == 0)
            and np.all(np.isinf(self.limit))
            and np.all(self.delay == 0)
        )


def actuate(
    delayed: np.ndarray, gain: np.ndarray, bias: np.ndarray, limit: np.ndarray
) -> np.ndarray:
    """The gain, saturation and bias stages of the actuator pipeline; broadcasts over batches."""
    # minimum/maximum in place: np.clip's dispatch costs more than the arithmetic on the few
    # action dimensions of a robot, and this runs every control step.
    out = gain * delayed
    np.minimum(out, limit, out=out)
    np.maximum(out, -limit, out=out)
    out += bias
    return out


def invert_actuator(desired: np.ndarray, model: ActuatorModel) -> np.ndarray:
    """The command whose actuator output is ``desired`` where the faults allow it (dead: 0)."""
    alive = np.abs(model.gain) > 1e-6
    safe_gain = np.where(alive, model.gain, 1.0)
    return np.where(alive, (desired - model.bias) / safe_gain, 0.0)


def actuator_model(faults: list[RobotFault], n: int) -> ActuatorModel:
    """Combine the active actuator faults into one model over ``n`` action dimensions."""
    gain, bias = np.ones(n), np.zeros(n)
    limit, delay = np.full(n, np.inf), np.zeros(n, dtype=np.int64)
    for fault in faults:
        index = joint_indices(fault.target, n)
        if fault.kind in ("gain-loss", "reversed-motor"):
            gain[index] *= fault.magnitude
        elif fault.kind == "dead-motor":
            gain[index] = 0.0
        elif fault.kind == "bias-torque":
            bias[index] += fault.magnitude
        elif fault.kind == "saturation":
            limit[index] = np.minimum(limit[index], fault.magnitude)
        elif fault.kind == "delay":
            delay[index] += int(fault.magnitude)
    return ActuatorModel(gain, bias, limit, delay)


def joint_indices(target: str, n: int) -> np.ndarray:
    """The action dimensions a ``joint=`` (or ``all``) target names, checked against ``n``."""
    key, value = target_parts(target)
    if key == ALL:
        return np.arange(n)
    if key != "joint":
        raise FaultTargetError(f"target {target!r} is not a joint.")
    try:
        joint = int(value)
    except ValueError:
        raise FaultTargetError(f"joint {value!r} is not a number.") from None
    if not 0 <= joint < n:
        raise FaultTargetError(f"joint {joint} does not exist: this robot has joints 0..{n - 1}.")
    return np.array([joint])


def check_jointed_body_fault(task: str, fault: RobotFault, n_joints: int) -> None:
    """Body-fault targets of a task without legs or named bodies: ``joint=N`` or ``all``."""
    if fault.kind == "crippled-leg":
        raise FaultTargetError(f"{task} has no legs; crippled-leg needs Ant.")
    if target_parts(fault.target)[0] == "body":
        raise FaultTargetError(f"{task} body faults target joint=N or all, not body=NAME.")
    joint_indices(fault.target, n_joints)


def is_active(onset: int, duration: int | None, step: int) -> bool:
    return onset <= step and (duration is None or step < onset + duration)
