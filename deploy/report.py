"""Plots and a Markdown report of closed-loop runs (matplotlib's Agg backend, pillow for GIFs).

``write_plots`` draws, for a list of :class:`deploy.runner.RunResult`:

* ``return_aligned.png``: reward per control step aligned to the fault onset, mean and the
  10-90 % band over episodes, one line per run, with a tick under each step where a STEP missed
  its deadline in any episode;
* ``on_vs_off.png``: mean reward per step before and after onset, per run (learning on vs off
  on the same image);
* ``spike_raster.png``: hidden spike counts per step of the first probed episode;
* ``trace_drift.png``: mean |H| of the plastic trace per step, per probed run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deploy.runner import RunResult


def aligned(result: RunResult, values: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rewards (or ``values`` of the same shape) shifted so column ``k`` is step
    ``onset + k - pre``; x axis in steps."""
    values = result.rewards if values is None else values
    onsets = [o if o is not None else 0 for o in result.onsets]
    steps = values.shape[1]
    pre = max(onsets)
    width = pre + steps - min(onsets)
    out = np.full((len(onsets), width), np.nan)
    for e, onset in enumerate(onsets):
        out[e, pre - onset : pre - onset + steps] = values[e]
    return np.arange(width) - pre, out


def write_plots(results: Sequence[RunResult], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for result in results:
        x, rows = aligned(result)
        with np.errstate(all="ignore"):
            counted = np.sum(np.isfinite(rows), axis=0) > 0
            mean = np.nanmean(rows[:, counted], axis=0)
            low = np.nanpercentile(rows[:, counted], 10, axis=0)
            high = np.nanpercentile(rows[:, counted], 90, axis=0)
        (line,) = ax.plot(x[counted], mean, label=result.label)
        ax.fill_between(x[counted], low, high, alpha=0.2)
        if result.misses is not None and result.misses.any():
            missed = np.nan_to_num(aligned(result, result.misses.astype(float))[1]).any(axis=0)
            ax.plot(
                x[missed],
                np.zeros(missed.sum()),
                "|",
                color=line.get_color(),
                ms=8,
                transform=ax.get_xaxis_transform(),
                label=f"{result.label}: missed STEP",
            )
    ax.axvline(0, color="k", lw=0.8, ls="--")
    ax.set(xlabel="control steps since fault onset", ylabel="reward per step")
    ax.set_title("Reward aligned to fault onset (mean, 10-90 % band)")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "return_aligned.png"))

    fig, ax = plt.subplots(figsize=(5, 3.5))
    labels = [r.label for r in results]
    summaries = [r.summary() for r in results]
    before = [s["reward_before_onset"] or np.nan for s in summaries]
    after = [s["reward_after_onset"] or np.nan for s in summaries]
    index = np.arange(len(results))
    ax.bar(index - 0.2, before, 0.4, label="before onset")
    ax.bar(index + 0.2, after, 0.4, label="after onset")
    ax.set_xticks(index, labels, fontsize=8)
    ax.set(ylabel="mean reward per step")
    ax.set_title("Learning on vs off, same image")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "on_vs_off.png"))

    probed = [r for r in results if r.spike_counts is not None]
    if probed:
        first = probed[0]
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.imshow(
            first.spike_counts.T,
            aspect="auto",
            cmap="Greys",
            interpolation="nearest",
            origin="lower",
        )
        if first.onsets and first.onsets[0] is not None:
            ax.axvline(first.onsets[0], color="r", lw=0.8, ls="--")
        ax.set(xlabel="control step", ylabel="hidden neuron")
        ax.set_title(f"Spike counts per step ({first.label}, episode 0)")
        paths.append(_save(fig, out / "spike_raster.png"))

    traced = [r for r in results if r.trace_abs is not None]
    if traced:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for result in traced:
            ax.plot(result.trace_abs, label=result.label)
        if traced[0].onsets and traced[0].onsets[0] is not None:
            ax.axvline(traced[0].onsets[0], color="k", lw=0.8, ls="--")
        ax.set(xlabel="control step", ylabel="mean |H| (float units)")
        ax.set_title("Drift of the plastic trace (episode 0)")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out / "trace_drift.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_gif(frames: Sequence[np.ndarray], path: Path, fps: int = 20) -> Path | None:
    """An animated GIF of rendered frames (None when there are none)."""
    from PIL import Image

    if not frames:
        return None
    images = [Image.fromarray(np.asarray(frame, np.uint8)) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def markdown(title: str, intro: str, results: Sequence[RunResult], images: Sequence[Path]) -> str:
    """A short report: what ran, a table of the runs, the plots."""
    lines = [f"# {title}", "", intro, "", _table([r.summary() for r in results]), ""]
    lines += [*_link_lines(results), ""]
    lines += [f"![{p.stem}]({p.name})" for p in images]
    return "\n".join(lines) + "\n"


def _link_lines(results: Sequence[RunResult]) -> list[str]:
    """One line per run on the board link: missed STEPs and the step latency's spread."""
    lines = []
    for result in results:
        s = result.summary()
        if s["miss_rate"] is None:
            continue
        lines.append(
            f"- {s['label']}: {s['steps_lost']} of {int(np.isfinite(result.latency_ms).sum())} "
            f"STEPs missed their deadline (miss rate "
            f"{s['miss_rate']:.4f}); step latency p50 {s['latency_ms_p50']:.2f} ms, p99 "
            f"{s['latency_ms_p99']:.2f} ms, max {s['latency_ms_max']:.2f} ms"
        )
    return lines


def _table(summaries: Sequence[dict[str, Any]]) -> str:
    def fmt(value: Any) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    rows = [
        "| run | episodes | return (mean +- std) | reward/step before onset | after onset "
        "| step p50 ms | step p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in summaries:
        rows.append(
            f"| {s['label']} | {s['episodes']} | {s['return_mean']:.2f} +- {s['return_std']:.2f} "
            f"| {fmt(s['reward_before_onset'])} | {fmt(s['reward_after_onset'])} "
            f"| {fmt(s['latency_ms_p50'])} | {fmt(s['latency_ms_p99'])} |"
        )
    return "\n".join(rows)
