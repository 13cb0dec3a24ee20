"""The closed loop: env observation -> controller step -> action -> env, with telemetry.

One *run* is ``episodes`` seeded episodes of one controller with learning on or off. Episode
``e`` uses env seed ``seed + e``, so runs that differ only in learning see the same bodies,
targets and fault draws. Faults come as a :class:`deploy.faults.FaultPlan`: robot faults go to
the env's ``FaultWrapper``; board faults are injected once through the FAULT message (their
onset counts steps since RESET, and every episode starts with RESET); link faults switch the
``LinkEmulator`` at their onset and end.

Telemetry: one JSON line per control step (run, episode, step, observation, action, reward,
active faults, the controller's latency, and when probed the hidden layer's spike count and mean
|trace|). ``RunResult`` keeps the arrays the report plots.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import IO, Any

import numpy as np

import robot_env
from deploy.engines import Controller
from deploy.errors import DeployError
from deploy.faults import FaultPlan, link_active
from protocol.errors import LinkTimeoutError


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
    steps_lost: int = 0  # STEPs the link lost after every retry (the last action was held)

    def summary(self) -> dict[str, Any]:
        totals = np.nansum(self.rewards, axis=1)
        before, after = [], []
        for e, onset in enumerate(self.onsets):
            row = self.rewards[e]
            if onset is not None and 0 < onset < row.size:
                before.append(np.nanmean(row[:onset]))
                after.append(np.nanmean(row[onset:]))
        lat = self.latency_ms[np.isfinite(self.latency_ms)]
        return {
            "label": self.label,
            "learning": self.learning,
            "episodes": int(self.rewards.shape[0]),
            "return_mean": float(totals.mean()),
            "return_std": float(totals.std()),
            "reward_per_step": float(np.nanmean(self.rewards)),
            "reward_before_onset": float(np.mean(before)) if before else None,
            "reward_after_onset": float(np.mean(after)) if after else None,
            "steps_lost": self.steps_lost,
            "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
            "latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else None,
        }

    def first(self, episodes: int) -> RunResult:
        """The same run cut to its first ``episodes`` episodes (what an interrupted run kept)."""
        return replace(
            self,
            rewards=self.rewards[:episodes],
            onsets=self.onsets[:episodes],
            latency_ms=self.latency_ms[:episodes],
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
) -> RunResult:
    """Run ``episodes`` closed-loop episodes; see the module docstring. After each episode the
    telemetry is flushed (a crashed run keeps what it measured) and ``on_episode(e, return)``
    is told; Ctrl-C raises :class:`RunInterrupted` with the completed episodes."""
    check_episodes(episodes)
    check_plan(plan, board_client, link)
    label = label or f"{controller.name}-{'on' if learning else 'off'}"
    env = make_run_env(env_id, plan, steps, frames_every)
    if hasattr(controller, "bind"):  # a controller that reads the env itself (a teacher)
        controller.bind(env)
    limit = env.spec.max_episode_steps if env.spec is not None else None
    loop = ClosedLoop(controller, env, plan, link, label, learning, telemetry, probe, frames_every)
    record = Record(episodes, steps or int(limit or 400), probe)
    injected = []
    try:
        if board_client is not None:
            board_client.clear_fault()
            injected = [board_client.inject_fault(r)["fault_id"] for r in plan.board]
        for e in range(episodes):
            try:
                loop.episode(e, seed + e, record)
            except KeyboardInterrupt:
                raise RunInterrupted(record.result(label, learning).first(e)) from None
            if telemetry is not None:
                telemetry.flush()
            if on_episode is not None:
                on_episode(e, float(np.nansum(record.rewards[e])))
    finally:
        if injected and board_client is not None:
            board_client.clear_fault()
        env.close()
    return record.result(label, learning)


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
        self.lost = np.zeros(episodes, np.int64)
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

    def result(self, label: str, learning: bool) -> RunResult:
        return RunResult(
            label,
            learning,
            self.rewards,
            self.onsets,
            self.latency,
            self.counts,
            self.trace_abs,
            self.frames,
            int(self.lost.sum()),
        )


@dataclass
class ClosedLoop:
    """One controller on one env, episode by episode: link faults switched at their onset and
    end, a lost STEP answered by holding the last action, telemetry per step."""

    controller: Controller
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
        self.controller.set_learning(self.learning)
        self.controller.reset()
        link_state = [False] * len(self.plan.link)
        held = np.zeros(env.action_space.shape, np.float32)
        for t in range(record.horizon):
            self.switch_link_faults(t, link_state)
            seen = obs
            action = self.act(obs, held, e, t, record)
            held = action
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
                "latency_ms": round(float(record.latency[e, t]), 4),
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

    def act(self, obs: np.ndarray, held: np.ndarray, e: int, t: int, record: Record) -> Any:
        started = time.perf_counter()
        try:
            action = self.controller.step(obs)
        except LinkTimeoutError:
            # the link lost this STEP after every retry: hold the last command, as a motor
            # driver does when its controller goes quiet (a NAK is no loss: the board refused
            # the request, and that ends the run with its sentence)
            record.lost[e] += 1
            return held
        record.latency[e, t] = (time.perf_counter() - started) * 1e3
        return action

    def read_probe(self, t: int, record: Record, line: dict[str, Any]) -> None:
        try:
            probed = self.controller.probe()
        except LinkTimeoutError:
            line["probe_lost"] = True
            return
        if probed is not None:
            record.add_probe(t, probed, line)
