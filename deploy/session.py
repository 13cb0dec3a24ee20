"""One closed-loop session on a board: runs with learning on and/or off, telemetry, plots, report.

``glocal run`` and ``glocal demo`` both end here. The out folder receives ``telemetry.jsonl``
(one line per control step of every run, flushed after every episode, or every step when asked),
``summary.json``, the PNGs of :mod:`deploy.report`, ``report.md`` and, when asked for,
``episode.gif`` (the first episode of the first run). Everything that can be checked is checked
before the out folder is touched: :func:`check_run` needs no board, :func:`board_session` then
reads the booted image from the board and checks the board faults against its cores. Ctrl-C
during a run still writes the summary and report of the episodes completed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import robot_env
from deploy.engines import BoardController
from deploy.errors import DeployError
from deploy.faults import FaultPlan, route_faults
from deploy.progress import ReturnBar
from deploy.report import frame_labels, markdown, write_gif, write_plots
from deploy.runner import RunInterrupted, RunResult, check_episodes, check_step_options, run
from firmware_sim.errors import BoardError
from protocol.errors import ProtocolError

LEARNING_MODES = {"on": (True,), "off": (False,), "both": (True, False)}
# where `glocal evaluate --out` and the checkpoint's own tables record the steps it was scored at
EVALUATION_TABLES = ("board_table.json", "closing_table.json")
GIF_EVERY = 4  # control steps per GIF frame


def check_run(
    env_id: str,
    episodes: int,
    fault_specs: Sequence[str],
    learning: str = "both",
    steps: int | None = None,
    step_deadline: float | None = None,
    on_miss: str = "hold",
) -> FaultPlan:
    """Every argument that needs no board, checked against the env's real ranges: the plan."""
    if learning not in LEARNING_MODES:
        raise DeployError(f"--learning must be on, off or both, not {learning!r}.")
    check_episodes(episodes)
    check_step_options(step_deadline, on_miss)
    if steps is not None and steps < 1:
        raise DeployError("--steps must be at least 1.")
    robot_env.make(env_id).close()
    for spec in fault_specs:
        try:
            robot_env.make(env_id, route_faults([spec]).robot).close()
        except (DeployError, robot_env.EnvError, BoardError, ProtocolError) as error:
            sentence = str(error)
            raise DeployError(
                sentence if spec in sentence else f"fault spec {spec!r}: {sentence}"
            ) from None
    return route_faults(fault_specs)


def booted_image(
    client: Any, image_meta: dict[str, Any] | None, image_sha256: str | None = None
) -> dict[str, Any]:
    """What the board runs (slot, sha256, profile, cores) with the image's ``meta``: the board's
    own record, or ``image_meta`` where the caller holds the image file (``--image``), whose
    ``image_sha256`` must then be the booted one's."""
    booted = dict(client.read("image"))
    sha = booted.get("sha256") or b""
    booted["sha256"] = sha.hex() if isinstance(sha, bytes) else str(sha)
    if image_sha256 is not None and image_sha256 != booted["sha256"]:
        running = booted["sha256"][:16] or "no image"
        raise DeployError(
            f"--image has sha256 {image_sha256[:16]}..., but the board runs {running}...; "
            "flash that image first, or leave --image out to use the board's own record."
        )
    booted["meta"] = dict(image_meta if image_meta is not None else booted.get("meta") or {})
    return booted


def check_board_faults(plan: FaultPlan, cores: Sequence[int]) -> None:
    """A board fault aimed at a core the booted image does not use is refused before the run."""
    for record in plan.board:
        core = record["target"].get("core", "all")
        if core != "all" and int(core) not in cores:
            raise DeployError(
                f"board fault {record['kind']} names core={core}, but the booted image uses "
                f"cores {', '.join(map(str, cores))}."
            )


def default_steps(meta: dict[str, Any]) -> tuple[int | None, str]:
    """The control steps per episode the image's checkpoint was evaluated at, and where that was
    read; ``None`` (the env's own limit) when the checkpoint left no table beside it."""
    if not meta.get("checkpoint"):
        return None, "the env's limit"
    checkpoint = Path(str(meta["checkpoint"]))
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    for name in EVALUATION_TABLES:
        table = folder / name
        if table.is_file():
            steps = json.loads(table.read_text()).get("steps")
            if isinstance(steps, int) and steps > 0:
                return steps, f"as the checkpoint was evaluated, {table}"
    return None, "the env's limit"


def describe_setup(
    booted: dict[str, Any],
    port: str,
    env_id: str,
    fault_specs: Sequence[str],
    episodes: int,
    steps: int,
    learning: str,
) -> str:
    """One paragraph for the report: image, port, task, faults and units, always all of them."""
    meta = booted["meta"]
    faults = ", ".join(f"`{spec}`" for spec in fault_specs) or "none"
    units = (
        "the plastic trace is shown in float units (the image's trace_unit)"
        if "trace_unit" in meta
        else "the image carries no trace_unit, so the plastic trace is shown in board integers"
    )
    modes = {"both": "learning on, then off", "on": "learning on", "off": "learning off"}
    return (
        f"Image sha256 {booted['sha256'][:16]}... (checkpoint "
        f"`{meta.get('checkpoint', 'unknown')}`, profile {booted.get('profile', 'unknown')}, "
        f"slot {booted.get('slot')}) on `{port}`; "
        f"{episodes} seeded episodes of `{env_id}`, {steps} control steps each, "
        f"{modes[learning]} on the same image; faults: {faults}; {units}."
    )


def board_session(
    client: Any,
    env_id: str,
    episodes: int,
    fault_specs: Sequence[str],
    out: Path,
    learning: str = "both",
    steps: int | None = None,
    seed: int = 0,
    image_meta: dict[str, Any] | None = None,
    image_sha256: str | None = None,
    link: Any = None,
    gif: bool = False,
    title: str = "glocal run",
    intro: str = "",
    port: str = "",
    flush_every_step: bool = False,
    findings: Callable[[Sequence[RunResult]], str] | None = None,
    step_deadline: float | None = None,
    on_miss: str = "hold",
) -> dict[str, Any]:
    """Run the closed loop on the board behind ``client`` and write the out folder."""
    plan = check_run(env_id, episodes, fault_specs, learning, steps, step_deadline, on_miss)
    booted = booted_image(client, image_meta, image_sha256)
    check_board_faults(plan, booted.get("cores") or [])
    if steps is None:
        steps, source = default_steps(booted["meta"])
        with robot_env.make(env_id) as env:
            steps = steps or int(env.spec.max_episode_steps or 400)
        print(f"{steps} control steps per episode ({source}; --steps to change)", file=sys.stderr)
    setup = describe_setup(booted, port, env_id, fault_specs, episodes, steps, learning)
    controller = BoardController.for_image(client, booted["meta"])
    out.mkdir(parents=True, exist_ok=True)
    results: list[RunResult] = []
    interrupted = False
    # line-buffered telemetry flushes every step (-v); otherwise the runner flushes per episode
    with open(out / "telemetry.jsonl", "w", buffering=1 if flush_every_step else -1) as telemetry:
        for k, on in enumerate(LEARNING_MODES[learning]):
            label = f"learning {'on' if on else 'off'}"
            print(f"{label}: {episodes} episodes of {env_id}", file=sys.stderr)
            with ReturnBar(label, episodes) as progress:
                try:
                    results.append(
                        run(
                            controller,
                            env_id,
                            plan,
                            episodes,
                            seed=seed,
                            learning=on,
                            steps=steps,
                            label=label,
                            telemetry=telemetry,
                            probe=True,
                            frames_every=GIF_EVERY if gif and k == 0 else 0,
                            board_client=client,
                            link=link,
                            on_episode=progress.episode,
                            step_deadline=step_deadline,
                            on_miss=on_miss,
                        )
                    )
                except RunInterrupted as stop:
                    interrupted = True
                    results += [stop.result] if stop.result.rewards.shape[0] else []
            if interrupted:
                break
    report = Report(title, f"{intro}\n\n{setup}".strip(), trace_units(booted["meta"]), findings)
    summary = write_session(out, results, env_id, episodes, seed, plan, steps if gif else 0, report)
    summary.update(image=booted, steps=steps, **({"interrupted": True} if interrupted else {}))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if interrupted:
        done = ", ".join(f"{r.label} {r.rewards.shape[0]}" for r in results) or "none"
        print(f"interrupted; episodes completed: {done}; wrote {out}", file=sys.stderr)
        raise KeyboardInterrupt
    return summary


def write_session(
    out: Path,
    results: list[RunResult],
    env_id: str,
    episodes: int,
    seed: int,
    plan: FaultPlan,
    gif_steps: int,
    report: Report,
) -> dict[str, Any]:
    """Plots, GIF (of ``gif_steps`` steps, 0 for none), report.md and the summary of
    ``results`` (of the episodes completed)."""
    summary: dict[str, Any] = {
        "env": env_id,
        "episodes": episodes,
        "seed": seed,
        "faults": list(plan.records),
        "runs": [r.summary() for r in results],
    }
    if results:
        images = write_plots(results, out, trace_units=report.trace_units)
        frames = results[0].frames
        labels = frame_labels(results[0], GIF_EVERY, gif_steps, len(frames))
        gif_path = write_gif(frames, out / "episode.gif", labels=labels) if gif_steps else None
        intro = report.intro
        if gif_path is not None:
            intro += f"\n\n![one episode]({gif_path.name})"
        findings = report.findings(results) if report.findings else ""
        (out / "report.md").write_text(markdown(report.title, intro, results, images, findings))
    summary["files"] = sorted({p.name for p in out.iterdir()} | {"summary.json"})
    return summary


def trace_units(meta: dict[str, Any]) -> str:
    """The unit of the trace-drift plot: float units only when the image says how to get there."""
    return "float units" if "trace_unit" in meta else "board integers"


@dataclass(frozen=True)
class Report:
    """What report.md says besides the numbers: title, setup paragraph, units, findings."""

    title: str
    intro: str
    trace_units: str
    findings: Callable[[Sequence[RunResult]], str] | None = None
