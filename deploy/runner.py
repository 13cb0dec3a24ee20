"""The closed loop: env observation -> controller step -> action -> env, with telemetry.

One *run* is ``episodes`` seeded episodes of one controller with learning on or off. Episode
``e`` uses env seed ``seed + e``, so runs that differ only in learning see the same bodies,
targets and fault draws. Faults come as a :class:`deploy.faults.FaultPlan`: robot faults go to
the env's ``FaultWrapper``; board faults are injected once through the FAULT message (their
onset counts steps since RESET, and every episode starts with RESET); link faults switch the
``LinkEmulator`` at their onset and end.

On a board each control step is one STEP exchange bounded by a deadline, by default the env's
control period (``step_deadline`` overrides it): the client retries while the deadline allows,
and a STEP still unanswered then is a *miss*: the runner applies ``on_miss`` (``hold`` the last
action, as a motor driver does when its controller goes quiet, or ``zero``) and moves on. A board
that restarts (its boot id changes), whose port breaks, or that misses
:data:`SILENT_STEPS_LIMIT` steps in a row stops the run with one sentence: going on against a
fresh network state would not be the same run. At the end the runner reads the board's counters
and accounts for every STEP (:class:`StepAccount`): sent, delivered, executed by the board, and
whether its ticks are exactly ``ticks_per_step`` per executed STEP.

Telemetry: one JSON line per control step (run, episode, step, observation, action, reward,
active faults, the step's latency, whether it missed, its retries, and when probed the hidden
layer's spike count and mean |trace|). ``RunResult`` keeps the arrays the report plots.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import IO, Any

import numpy as np

import robot_env
from deploy.engines import Controller
from deploy.errors import DeployError
from deploy.faults import FaultPlan, link_active
from protocol.errors import BoardResetError, LinkTimeoutError, RemoteError, TransportError

log = logging.getLogger(__name__)

MISS_POLICIES = ("hold", "zero")
# Consecutive missed steps after which the board counts as gone (one second at 50 ms): a lossy
# link misses a few in a row, a board that lost power or its cable misses them all.
SILENT_STEPS_LIMIT = 20
# Requests outside the control period (episode RESET and LEARN, the warm-up STEP, counters) are
# retried for this long: a noisy link needs many tries, and nothing waits on them in real time.
SETUP_SECONDS = 10.0


@dataclass(frozen=True)
class StepAccount:
    """One run's STEPs on the board: ``sent`` and ``delivered`` by the host's count, ``executed``
    and ``ticks`` by the board's counters; a STEP runs at most once, so ``delivered <= executed
    <= sent`` and ``ticks == ticks_per_step * executed``."""

    sent: int
    delivered: int
    executed: int
    ticks: int
    ticks_per_step: int

    @property
    def exactly_once(self) -> bool:
        return (
            self.delivered <= self.executed <= self.sent
            and self.ticks == self.ticks_per_step * self.executed
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exactly_once": self.exactly_once}


@dataclass
class RunResult:
    """Per-step arrays of one run: rewards (episodes, steps), NaN after an episode ended."""

    label: str
    learning: bool
    rewards: np.ndarray
    onsets: list[int | None]
    latency_ms: np.ndarray
    spike_counts: np.ndarray | None = None  # (steps, n_hidden) of the first episode
    trace_abs: np.ndarray | None = None  # (steps,) mean |H| of the first episode
    frames: list[np.ndarray] = field(default_factory=list)
    misses: np.ndarray | None = None  # (episodes, steps) bool: the STEP missed its deadline
    account: StepAccount | None = None  # a board's STEPs, when the run had one

    def summary(self) -> dict[str, Any]:
        totals = np.nansum(self.rewards, axis=1)
        before, after = [], []
        for e, onset in enumerate(self.onsets):
            row = self.rewards[e]
            if onset is not None and 0 < onset < row.size:
                before.append(np.nanmean(row[:onset]))
                after.append(np.nanmean(row[onset:]))
        lat = self.latency_ms[np.isfinite(self.latency_ms)]
        misses = int(self.misses.sum()) if self.misses is not None else 0
        return {
            "label": self.label,
            "learning": self.learning,
            "episodes": int(self.rewards.shape[0]),
            "return_mean": float(totals.mean()),
            "return_std": float(totals.std()),
            "reward_per_step": float(np.nanmean(self.rewards)),
            "reward_before_onset": float(np.mean(before)) if before else None,
            "reward_after_onset": float(np.mean(after)) if after else None,
            "steps_lost": misses,
            "miss_rate": misses / lat.size if lat.size else None,
            "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
            "latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else None,
            "latency_ms_max": float(lat.max()) if lat.size else None,
            "board_steps": self.account.to_dict() if self.account is not None else None,
        }

    def first(self, episodes: int) -> RunResult:
        """The same run cut to its first ``episodes`` episodes (what an interrupted run kept)."""
        return replace(
            self,
            rewards=self.rewards[:episodes],
            onsets=self.onsets[:episodes],
            latency_ms=self.latency_ms[:episodes],
            misses=None if self.misses is None else self.misses[:episodes],
        )


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``result`` holds the episodes that were completed."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(f"interrupted after {result.rewards.shape[0]} episodes")
        self.result = result


def check_episodes(episodes: int) -> None:
    """Refuse a run of no episodes (callers check before they write anything)."""
    if episodes < 1:
        raise DeployError("--episodes must be at least 1.")


def run(
    controller: Controller,
    env_id: str,
    plan: FaultPlan,
    episodes: int,
    seed: int = 0,
    learning: bool = True,
    steps: int | None = None,
    label: str | None = None,
    telemetry: IO[str] | None = None,
    probe: bool = False,
    frames_every: int = 0,
    board_client: Any = None,
    link: Any = None,
    on_episode: Callable[[int, float], None] | None = None,
    step_deadline: float | None = None,
    on_miss: str = "hold",
) -> RunResult:
    """Run ``episodes`` closed-loop episodes; see the module docstring. ``step_deadline`` (s)
    bounds each STEP on ``board_client`` (default: the env's control period). After each episode
    the telemetry is flushed (a crashed run keeps what it measured) and ``on_episode(e, return)``
    is told; Ctrl-C raises :class:`RunInterrupted` with the completed episodes."""
    check_episodes(episodes)
    check_plan(plan, board_client, link)
    check_step_options(step_deadline, on_miss)
    label = label or f"{controller.name}-{'on' if learning else 'off'}"
    env = make_run_env(env_id, plan, steps, frames_every)
    if hasattr(controller, "bind"):  # a controller that reads the env itself (a teacher)
        controller.bind(env)
    limit = env.spec.max_episode_steps if env.spec is not None else None
    deadline = step_deadline or control_period(env)
    exchange = StepExchange(controller, board_client, deadline, on_miss)
    loop = ClosedLoop(exchange, env, plan, link, label, learning, telemetry, probe, frames_every)
    record = Record(episodes, steps or int(limit or 400), probe)
    injected = []
    try:
        if board_client is not None:
            board_client.clear_fault()
            with exchange.setup():
                exchange.warm_up(np.zeros(env.observation_space.shape))
                injected = [board_client.inject_fault(r)["fault_id"] for r in plan.board]
        before = exchange.board_counters()
        for e in range(episodes):
            try:
                loop.episode(e, seed + e, record)
            except KeyboardInterrupt:
                # no board exchange while interrupted: the kept episodes go without a STEP account
                raise RunInterrupted(record.result(label, learning, None).first(e)) from None
            if telemetry is not None:
                telemetry.flush()
            if on_episode is not None:
                on_episode(e, float(np.nansum(record.rewards[e])))
        account = exchange.account(before)
    except (BoardResetError, TransportError) as error:
        raise DeployError(f"{exchange.where}: {error} The run stopped there.") from None
    finally:
        if injected and board_client is not None:
            board_client.clear_fault()
        env.close()
    return record.result(label, learning, account)


def check_step_options(step_deadline: float | None, on_miss: str) -> None:
    """Refuse a deadline that is not a positive number of seconds, or an unknown miss policy."""
    if step_deadline is not None and not step_deadline > 0:
        raise DeployError(
            f"--step-deadline must be a positive number of seconds, not {step_deadline}."
        )
    if on_miss not in MISS_POLICIES:
        raise DeployError(f"--on-miss must be hold or zero, not {on_miss!r}.")


def control_period(env: Any) -> float:
    """Seconds of one control step: the env's ``dt``, else one frame at its ``render_fps``."""
    dt = getattr(env.unwrapped, "dt", None)
    return float(dt) if dt else 1.0 / env.metadata["render_fps"]


def check_plan(plan: FaultPlan, board_client: Any, link: Any) -> None:
    """Board and link faults need something to inject them into."""
    if plan.board and board_client is None:
        raise DeployError("board faults need a board; run them with --port.")
    if plan.link and link is None:
        raise DeployError("link faults need a link to a board; run them with --port.")


def make_run_env(
    env_id: str,
    plan: FaultPlan,
    steps: int | None,
    frames_every: int,
) -> Any:
    """The run's env, built by robot_env's registry with the plan's robot faults attached."""
    kwargs: dict[str, Any] = {"render_mode": "rgb_array"} if frames_every else {}
    if steps is not None:  # --steps beyond the registered limit (Reacher's 50) is honoured
        kwargs["max_episode_steps"] = steps
    return robot_env.make(env_id, plan.robot, **kwargs)


class Record:
    """What a run measures, filled step by step: the arrays of :class:`RunResult`."""

    def __init__(self, episodes: int, horizon: int, probe: bool) -> None:
        self.horizon = horizon
        self.rewards = np.full((episodes, horizon), np.nan)
        self.latency = np.full((episodes, horizon), np.nan)
        self.onsets: list[int | None] = []
        self.misses = np.zeros((episodes, horizon), bool)
        self.counts: np.ndarray | None = None
        self.trace_abs = np.full(horizon, np.nan) if probe else None
        self.frames: list[np.ndarray] = []

    def add_probe(self, t: int, probed: dict[str, np.ndarray], line: dict[str, Any]) -> None:
        """The first episode's hidden layer at step ``t``: mean |trace|, spike counts."""
        self.trace_abs[t] = float(np.mean(np.abs(probed["trace"])))
        line["trace_abs_mean"] = self.trace_abs[t]
        if "counts" in probed:
            if self.counts is None:
                self.counts = np.zeros((self.horizon, probed["counts"].size), np.int64)
            self.counts[t] = probed["counts"]
            line["spikes"] = int(probed["counts"].sum())

    def result(self, label: str, learning: bool, account: StepAccount | None) -> RunResult:
        return RunResult(
            label,
            learning,
            self.rewards,
            self.onsets,
            self.latency,
            self.counts,
            self.trace_abs,
            self.frames,
            self.misses,
            account,
        )


@dataclass(frozen=True)
class Exchange:
    """What one control step's exchange gave: the action applied and how the step went."""

    action: np.ndarray
    latency_ms: float
    miss: bool
    retries: int


class StepExchange:
    """One controller step per control period. On a board (``client`` set) each STEP must be
    answered within ``deadline`` seconds; a miss applies ``on_miss``, and :data:`SILENT_STEPS_LIMIT`
    misses in a row end the run with one sentence (:class:`~deploy.errors.DeployError`). ``where``
    names the step for that sentence and for :func:`run`'s when the board restarts or its port
    breaks."""

    def __init__(self, controller: Controller, client: Any, deadline: float, on_miss: str) -> None:
        self.controller = controller
        self.client = client
        self.deadline = deadline
        self.on_miss = on_miss
        self.silent = 0
        self.period_ends = 0.0
        self.where = "before the first step"  # where the run is, for the sentence that stops it

    def step(self, obs: np.ndarray, held: np.ndarray) -> Exchange:
        retries = self.client.counters.retries if self.client is not None else 0
        started = time.monotonic()
        self.period_ends = started + self.deadline
        try:
            with self.bounded():
                action, miss = self.controller.step(obs), False
        except LinkTimeoutError:
            action, miss = (held if self.on_miss == "hold" else np.zeros_like(held)), True
        latency_ms = (time.monotonic() - started) * 1e3
        self.silent = self.silent + 1 if miss else 0
        if self.silent >= SILENT_STEPS_LIMIT:
            raise DeployError(
                f"{self.where}: the board answered none of the last {self.silent} STEPs; it is "
                "gone (power, cable or port), so the run stopped there."
            )
        after = self.client.counters.retries if self.client is not None else 0
        return Exchange(action, latency_ms, miss, after - retries)

    def warm_up(self, obs: np.ndarray) -> None:
        """One STEP outside the control loop (call it under :meth:`setup`): a board's first STEP
        may compile its kernels (the emulated one takes most of a second), which must not count
        as a miss. The first episode's RESET clears what it did."""
        self.controller.reset()
        self.controller.step(obs)

    def bounded(self) -> Any:
        """Bound the board's requests by this step's deadline."""
        if self.client is None:
            return contextlib.nullcontext()
        return self.client.deadline(self.deadline)

    def best_effort(self) -> Any:
        """One try within what is left of the control period: telemetry never stretches it."""
        if self.client is None:
            return contextlib.nullcontext()
        return self.client.deadline(self.period_ends - time.monotonic(), tries=1)

    def setup(self) -> Any:
        """Requests between control periods: retried for up to :data:`SETUP_SECONDS`."""
        if self.client is None:
            return contextlib.nullcontext()
        return self.client.deadline(SETUP_SECONDS)

    def board_counters(self) -> dict[str, int] | None:
        """The board's STEP and tick counters and the host's STEP ledger, now; None for a board
        that does not report them."""
        if self.client is None:
            return None
        try:
            with self.setup():
                counters = self.client.read("step_counters")
        except RemoteError:
            return None  # a board of before the counters, or one with no image booted
        ledger = self.client.steps
        return {"sent": ledger.sent, "delivered": ledger.delivered, **counters}

    def account(self, before: dict[str, int] | None) -> StepAccount | None:
        """Every STEP of the run accounted for, from the counters before and after it."""
        after = self.board_counters()
        if before is None or after is None:
            return None
        if after["boot"] != before["boot"]:
            raise DeployError("the board restarted during the run; its STEP counters restarted.")
        account = StepAccount(
            **{name: after[name] - before[name] for name in ("sent", "delivered", "executed")},
            ticks=after["ticks"] - before["ticks"],
            ticks_per_step=after["ticks_per_step"],
        )
        if not account.exactly_once:
            log.warning("the board's STEP counters do not add up: %s", account)
        return account


@dataclass
class ClosedLoop:
    """One controller on one env, episode by episode: link faults switched at their onset and
    end, each step through a :class:`StepExchange`, telemetry per step."""

    exchange: StepExchange
    env: Any
    plan: FaultPlan
    link: Any
    label: str
    learning: bool
    telemetry: IO[str] | None
    probe: bool
    frames_every: int

    def episode(self, e: int, seed: int, record: Record) -> None:
        env = self.env
        obs, _ = env.reset(seed=seed)
        record.onsets.append(self.plan.onset(env.onsets))
        controller = self.exchange.controller
        self.exchange.where = f"{self.label}, episode {e}, at its start"
        with self.exchange.setup():
            controller.set_learning(self.learning)
            controller.reset()
        link_state = [False] * len(self.plan.link)
        held = np.zeros(env.action_space.shape, np.float32)
        for t in range(record.horizon):
            self.switch_link_faults(t, link_state)
            seen = obs
            self.exchange.where = f"{self.label}, episode {e}, step {t}"
            step = self.exchange.step(obs, held)
            action = held = step.action
            record.latency[e, t], record.misses[e, t] = step.latency_ms, step.miss
            executed = np.clip(action, env.action_space.low, env.action_space.high)
            obs, reward, terminated, truncated, info = env.step(executed)
            record.rewards[e, t] = reward
            line: dict[str, Any] = {
                "run": self.label,
                "episode": e,
                "step": t,
                "reward": float(reward),
                "action": [round(float(a), 6) for a in action],
                "faults": [f["kind"] for f in info.get("faults", [])],
                "latency_ms": round(step.latency_ms, 4),
                "miss": step.miss,
                "retries": step.retries,
            }
            if self.probe and e == 0:
                self.read_probe(t, record, line)
            if self.frames_every and e == 0 and t % self.frames_every == 0:
                record.frames.append(env.render())
            if self.telemetry is not None:
                line["obs"] = [round(float(o), 6) for o in np.ravel(seen)]
                self.telemetry.write(json.dumps(line) + "\n")
            if terminated or truncated:
                break
        for fault, on in zip(self.plan.link, link_state, strict=True):
            if on:
                self.link.apply_fault(fault, False)

    def switch_link_faults(self, t: int, link_state: list[bool]) -> None:
        for i, fault in enumerate(self.plan.link):
            on = link_active(fault, t)
            if on != link_state[i]:
                self.link.apply_fault(fault, on)
                link_state[i] = on

    def read_probe(self, t: int, record: Record, line: dict[str, Any]) -> None:
        # telemetry must not stretch the control period: the probe gets what the STEP left of it
        try:
            with self.exchange.best_effort():
                probed = self.exchange.controller.probe()
        except LinkTimeoutError:
            line["probe_lost"] = True
            return
        if probed is not None:
            record.add_probe(t, probed, line)
