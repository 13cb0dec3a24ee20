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
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

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
) -> RunResult:
    """Run ``episodes`` closed-loop episodes; see the module docstring."""
    import robot_env

    check_episodes(episodes)
    if plan.board and board_client is None:
        raise DeployError("board faults need a board; run them with --port.")
    if plan.link and link is None:
        raise DeployError("link faults need a link to a board; run them with --port.")
    label = label or f"{controller.name}-{'on' if learning else 'off'}"
    kwargs: dict[str, Any] = {"render_mode": "rgb_array"} if frames_every else {}
    if steps is not None:  # --steps beyond the registered limit (Reacher's 50) is honoured
        kwargs["max_episode_steps"] = steps
    env = robot_env.make(env_id, plan.robot, **kwargs)
    if hasattr(controller, "bind"):  # a controller that reads the env itself (a teacher)
        controller.bind(env)
    limit = env.spec.max_episode_steps if env.spec is not None else None
    horizon = steps or int(limit or 400)
    rewards = np.full((episodes, horizon), np.nan)
    latency = np.full((episodes, horizon), np.nan)
    onsets: list[int | None] = []
    lost = np.zeros(episodes, np.int64)
    counts: np.ndarray | None = None
    trace_abs = np.full(horizon, np.nan) if probe else None
    frames: list[np.ndarray] = []
    injected = []
    try:
        if board_client is not None:
            board_client.clear_fault()
            injected = [board_client.inject_fault(r)["fault_id"] for r in plan.board]
        for e in range(episodes):
            obs, _ = env.reset(seed=seed + e)
            onsets.append(plan.onset(env.onsets))
            controller.set_learning(learning)
            controller.reset()
            link_state = [False] * len(plan.link)
            held = np.zeros(env.action_space.shape, np.float32)
            for t in range(horizon):
                for i, record in enumerate(plan.link):
                    on = link_active(record, t)
                    if on != link_state[i]:
                        link.apply_fault(record, on)
                        link_state[i] = on
                seen = obs
                started = time.perf_counter()
                try:
                    action = controller.step(obs)
                    latency[e, t] = (time.perf_counter() - started) * 1e3
                except LinkTimeoutError:
                    # the link lost this STEP after every retry: hold the last command, as
                    # a motor driver does when its controller goes quiet (a NAK is no loss:
                    # the board refused the request, and that ends the run with its sentence)
                    lost[e] += 1
                    action = held
                held = action
                executed = np.clip(action, env.action_space.low, env.action_space.high)
                obs, reward, terminated, truncated, info = env.step(executed)
                rewards[e, t] = reward
                line: dict[str, Any] = {
                    "run": label,
                    "episode": e,
                    "step": t,
                    "reward": float(reward),
                    "action": [round(float(a), 6) for a in action],
                    "faults": [f["kind"] for f in info.get("faults", [])],
                    "latency_ms": round(float(latency[e, t]), 4),
                }
                probed = None
                if probe and e == 0:
                    try:
                        probed = controller.probe()
                    except LinkTimeoutError:
                        line["probe_lost"] = True
                if probed is not None:
                    trace_abs[t] = float(np.mean(np.abs(probed["trace"])))
                    line["trace_abs_mean"] = trace_abs[t]
                    if "counts" in probed:
                        if counts is None:
                            counts = np.zeros((horizon, probed["counts"].size), np.int64)
                        counts[t] = probed["counts"]
                        line["spikes"] = int(probed["counts"].sum())
                if frames_every and e == 0 and t % frames_every == 0:
                    frames.append(env.render())
                if telemetry is not None:
                    line["obs"] = [round(float(o), 6) for o in np.ravel(seen)]
                    telemetry.write(json.dumps(line) + "\n")
                if terminated or truncated:
                    break
            for i, record in enumerate(plan.link):
                if link_state[i]:
                    link.apply_fault(record, False)
    finally:
        if injected and board_client is not None:
            board_client.clear_fault()
        env.close()
    return RunResult(
        label, learning, rewards, onsets, latency, counts, trace_abs, frames, int(lost.sum())
    )
