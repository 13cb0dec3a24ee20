"""``FaultWrapper``: robot faults on any gymnasium env with Box actions and observations.

Actuator faults act on the action on its way in, sensor faults on the observation on its way out
and body faults on the physics, through the env's own ``apply_body_faults`` (the numpy tasks) or
the body adapter its task registers (:mod:`robot_env.registry`; the MuJoCo tasks). Timing and
the actuator pipeline are written once, in :mod:`robot_env.faults`. ``info["faults"]`` lists the
faults active at the step just taken (their onset resolved), so an evaluation can align returns
to onset.

Sensor faults address *channels* (:mod:`robot_env.channels`). Targets: ``obs=i`` (entry ``i``,
any env), ``joint=j`` and ``channel=NAME`` (where the env or its adapter names its sensors:
``sensor_channels()``), ``all`` (every entry as a scalar).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from robot_env.channels import Channel, scalar
from robot_env.errors import EnvError, FaultTargetError
from robot_env.faults import (
    ACTUATOR,
    ALL,
    BODY,
    SENSOR,
    ActuatorModel,
    RobotFault,
    actuate,
    actuator_model,
    as_fault,
    is_active,
    joint_indices,
    target_parts,
)
from robot_env.registry import body_adapter


class BodyModel(Protocol):
    """What body faults need from an env (or an adapter over it)."""

    def apply_body_faults(self, faults: Sequence[RobotFault]) -> None: ...


class FaultWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Inject robot faults, on a schedule, into any env with Box action and observation spaces.

    Args:
        env: the env to wrap.
        faults: records, spec strings (``robot:gain-loss:joint=1,gain=0.3,onset=100``) or
            record dicts. ``reset(options={"faults": [...]})`` replaces them for the next episode.

    Seeding: ``reset(seed=s)`` reseeds each fault's generator from ``(fault.seed, s)``; without a
    seed the episodes continue a deterministic sequence. The wrapped env's own RNG is never used,
    so a wrapper without faults leaves every episode as it was.
    """

    def __init__(self, env: gym.Env, faults: Sequence[RobotFault | str | Mapping] = ()) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, faults=[as_fault(fault).to_dict() for fault in faults]
        )
        super().__init__(env)
        if not isinstance(env.action_space, gym.spaces.Box) or not isinstance(
            env.observation_space, gym.spaces.Box
        ):
            raise EnvError("FaultWrapper needs an env with Box action and observation spaces.")
        self.n_action = int(np.prod(env.action_space.shape))
        self.n_obs = int(np.prod(env.observation_space.shape))
        adapter = body_adapter(env.unwrapped)
        self.channels: dict[str, list[Channel]] = (
            dict(adapter.sensor_channels()) if hasattr(adapter, "sensor_channels") else {}
        )
        self.body: BodyModel | None = adapter if hasattr(adapter, "apply_body_faults") else None
        self.faults: tuple[RobotFault, ...] = ()
        self.onsets: tuple[int, ...] = ()
        self.actuator = ActuatorModel.healthy(self.n_action)
        self.step_index = 0
        self._active: tuple[int, ...] = ()
        self._sensing: tuple[int, ...] = ()
        self._healthy = True
        self._sensor_plan: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._edges: list[int] = []
        self._next_change = 0
        self._active_dicts: list[dict[str, Any]] = []
        self._history = np.zeros((1, self.n_action))
        self._rngs: list[np.random.Generator] = []
        self._stuck: dict[int, np.ndarray] = {}
        self._seed_key = 0
        self._episode = 0
        self.set_faults(faults)

    # --- configuration ---------------------------------------------------------------------

    def set_faults(self, faults: Sequence[RobotFault | str | Mapping]) -> None:
        """Validate ``faults`` against this env and use them from the next reset."""
        records = tuple(as_fault(fault) for fault in faults)
        for fault in records:
            self._check_target(fault)
        self.faults = records
        self._sensor_plan = {}
        for i, fault in enumerate(records):
            if fault.group == SENSOR:
                channels = self.sensor_channels_of(fault.target)
                scalars = [c.index[0] for c in channels if c.kind == "scalar"]
                pairs = [c.index for c in channels if c.kind == "angle"]
                self._sensor_plan[i] = (
                    np.array(scalars, dtype=np.int64),
                    np.array(pairs, dtype=np.int64).reshape(-1, 2),
                )
        max_delay = sum(int(f.magnitude) for f in records if f.kind == "delay")
        self._history = np.zeros((max_delay + 1, self.n_action))

    def _check_target(self, fault: RobotFault) -> None:
        if fault.group == ACTUATOR:
            joint_indices(fault.target, self.n_action)
        elif fault.group == SENSOR:
            self.sensor_channels_of(fault.target)
        elif self.body is None:
            raise FaultTargetError(
                f"{fault.kind} is a body fault, and {type(self.env.unwrapped).__name__} exposes no "
                "body model (apply_body_faults, or a body adapter registered with its task)."
            )
        elif hasattr(self.body, "check_body_fault"):
            self.body.check_body_fault(fault)

    def sensor_channels_of(self, target: str) -> list[Channel]:
        key, value = target_parts(target)
        if key == ALL:
            return [scalar(i) for i in range(self.n_obs)]
        if key == "obs":
            index = int(value) if value.lstrip("-").isdigit() else -1
            if not 0 <= index < self.n_obs:
                raise FaultTargetError(f"obs={value} is not an index 0..{self.n_obs - 1}.")
            return [scalar(index)]
        if target not in self.channels:
            known = ", ".join(sorted(self.channels)) or "none"
            raise FaultTargetError(
                f"{type(self.env.unwrapped).__name__} has no sensor {target!r}; named sensors: "
                f"{known} (or obs=INDEX)."
            )
        return self.channels[target]

    # --- the episode -------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if options and "faults" in options:
            options = dict(options)
            self.set_faults(options.pop("faults"))
        if seed is not None:
            self._seed_key, self._episode = seed + 1, 0
        else:
            self._episode += 1
        self._rngs = [
            np.random.default_rng([fault.seed, i, self._seed_key, self._episode])
            for i, fault in enumerate(self.faults)
        ]
        self.onsets = tuple(
            int(rng.integers(f.onset[0], f.onset[1] + 1)) if isinstance(f.onset, tuple) else f.onset
            for f, rng in zip(self.faults, self._rngs, strict=True)
        )
        obs, info = self.env.reset(seed=seed, options=options)
        self.step_index = 0
        self._history[:] = 0.0
        self._stuck = {}
        self._active = ()
        self._edges = sorted(
            {
                edge
                for f, on in zip(self.faults, self.onsets, strict=True)
                for edge in (on, on + (f.duration or 0))
                if edge > 0
            }
        )
        self._activate(0, force=True)
        info = dict(info)
        info["faults"] = self._active_dicts
        return self._sense(obs, 0), info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        # The hot path of every wrapped env: the schedule is checked against one precomputed
        # edge, and the env's fresh info dict is extended in place rather than copied.
        t = self.step_index
        if t >= self._next_change:
            self._activate(t)
        if len(self._history) > 1:  # a delay fault is scheduled: remember every command
            self._history[1:] = self._history[:-1].copy()
            self._history[0] = np.asarray(action, dtype=np.float64).reshape(-1)
        if not self._healthy:
            action = self._actuate(np.asarray(action, dtype=np.float64).reshape(-1))
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.step_index = t + 1
        info["faults"] = self._active_dicts
        info["fault_step"] = t
        if t + 1 >= self._next_change:
            self._activate(t + 1)
        return self._sense(obs, t + 1), reward, terminated, truncated, info

    def active_faults(self) -> list[RobotFault]:
        """The faults active at the current step (what a fault-aware teacher may know)."""
        return [self.faults[i] for i in self._active]

    def pending_outputs(self, horizon: int) -> np.ndarray:
        """Actuator outputs of the next ``horizon`` steps that are already fixed by the delay.

        Row ``k`` is the output at step ``now + k`` for dimensions whose delay exceeds ``k``, and
        NaN where the next command decides it.
        """
        out = np.full((horizon, self.n_action), np.nan)
        model = self.actuator
        for k in range(horizon):
            fixed = model.delay > k
            # The output at now+k comes from the command issued at now+k-delay, i.e. history row
            # delay-k-1 as the history stands before this step's command is pushed.
            rows = np.clip(model.delay - k - 1, 0, len(self._history) - 1)
            past = self._history[rows, np.arange(self.n_action)]
            out[k] = np.where(fixed, actuate(past, model.gain, model.bias, model.limit), np.nan)
        return out

    # --- internals ---------------------------------------------------------------------------

    def _activate(self, t: int, force: bool = False) -> None:
        active = tuple(
            i
            for i, (fault, onset) in enumerate(zip(self.faults, self.onsets, strict=True))
            if is_active(onset, fault.duration, t)
        )
        # The active set can only change where some fault starts or ends.
        edges = [e for e in self._edges if e > t]
        self._next_change = min(edges) if edges else np.iinfo(np.int64).max
        if active == self._active and not force:
            return
        self._active = active
        faults = self.active_faults()
        self.actuator = actuator_model([f for f in faults if f.group == ACTUATOR], self.n_action)
        self._healthy = self.actuator.is_healthy
        self._sensing = tuple(i for i in active if self.faults[i].group == SENSOR)
        if self.body is not None:
            self.body.apply_body_faults([f for f in faults if f.group == BODY])
        self._active_dicts = [{**self.faults[i].to_dict(), "onset": self.onsets[i]} for i in active]

    def _actuate(self, command: np.ndarray) -> Any:
        model = self.actuator
        delayed = command
        if len(self._history) > 1:
            delayed = self._history[model.delay, np.arange(self.n_action)]
        out = actuate(delayed, model.gain, model.bias, model.limit)
        return out.reshape(self.env.action_space.shape).astype(self.env.action_space.dtype)

    def _sense(self, obs: Any, t: int) -> Any:
        if not self._sensing:
            return obs
        reading = np.array(obs, dtype=np.float64).reshape(-1)
        for i in self._sensing:
            scalars, pairs = self._sensor_plan[i]
            _corrupt(reading, scalars, pairs, self.faults[i], self._rngs[i], self._stuck, i)
        space = self.env.observation_space
        return reading.reshape(space.shape).astype(space.dtype)


def _corrupt(
    reading: np.ndarray,
    scalars: np.ndarray,
    pairs: np.ndarray,
    fault: RobotFault,
    rng: np.random.Generator,
    stuck: dict[int, np.ndarray],
    key: int,
) -> None:
    """Apply one sensor fault in place to its scalar entries and its (cos, sin) angle pairs."""
    everything = np.concatenate([scalars, pairs.reshape(-1)])
    if fault.kind == "sensor-stuck":
        reading[everything] = stuck.setdefault(key, reading[everything].copy())
        return
    if fault.kind == "sensor-dropout":
        lost = rng.random(len(scalars) + len(pairs)) < fault.magnitude
        reading[scalars[lost[: len(scalars)]]] = 0.0
        reading[pairs[lost[len(scalars) :]].reshape(-1)] = 0.0
        return
    if fault.kind == "sensor-noise":
        shift = rng.normal(0.0, fault.magnitude, len(scalars) + len(pairs))
        turn = shift[len(scalars) :]
        reading[scalars] += shift[: len(scalars)]
    else:  # a bias: one number for every channel, so no per-step arrays
        reading[scalars] += fault.magnitude
        turn = fault.magnitude
    if len(pairs):
        # An encoder's error is an angle: rotate (cos, sin) and stay on the unit circle.
        cos, sin = reading[pairs[:, 0]], reading[pairs[:, 1]]
        cos_turn, sin_turn = np.cos(turn), np.sin(turn)
        reading[pairs[:, 0]] = cos * cos_turn - sin * sin_turn
        reading[pairs[:, 1]] = sin * cos_turn + cos * sin_turn


def find_fault_wrapper(env: gym.Env) -> FaultWrapper | None:
    """The ``FaultWrapper`` in ``env``'s wrapper chain, if there is one."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, FaultWrapper):
            return env
        env = env.env
    return None
