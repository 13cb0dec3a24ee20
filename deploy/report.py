"""Plots and a Markdown report of closed-loop runs (matplotlib's Agg backend, pillow for GIFs).

``write_plots`` draws, for a list of :class:`deploy.runner.RunResult`:

* ``return_aligned.png``: reward per control step aligned to the fault onset, mean and the
  10-90 % band over episodes, one line per run, with a tick under each step where a STEP missed
  its deadline in any episode;
* ``on_vs_off.png``: mean reward per step before and after onset, per run (learning on vs off
  on the same image), with 95 % CIs over episodes;
* ``spike_raster.png``: hidden spike counts per step of the first probed episode;
* ``trace_drift.png``: mean |H| of the plastic trace per step, per probed run (float units when
  the image gives its trace unit, board integers otherwise).

``markdown`` puts one sentence under each plot (``CAPTIONS``) and, given them, the findings of
``learning_findings`` (the learning-attributable gain with its CI, the teachers for scale);
``write_gif`` crops the frames to the arm and labels them (``frame_labels``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

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


def write_plots(
    results: Sequence[RunResult], out: Path, trace_units: str = "float units"
) -> list[Path]:
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

    paths.append(plot_on_vs_off(results, out / "on_vs_off.png"))

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
        ax.set(xlabel="control step", ylabel=f"mean |H| ({trace_units})")
        ax.set_title("Drift of the plastic trace (episode 0)")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out / "trace_drift.png"))
    return paths


def episode_means(result: RunResult) -> tuple[np.ndarray, np.ndarray]:
    """Each episode's mean reward per step before and after its onset (episodes with one)."""
    before, after = [], []
    for row, onset in zip(result.rewards, result.onsets, strict=True):
        if onset is not None and 0 < onset < row.size:
            before.append(np.nanmean(row[:onset]))
            after.append(np.nanmean(row[onset:]))
    return np.array(before), np.array(after)


def ci95(values: np.ndarray) -> float:
    """Half-width of the normal 95 % confidence interval of the mean (0 for fewer than 2)."""
    return float(1.96 * np.std(values, ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.0


def plot_on_vs_off(results: Sequence[RunResult], path: Path) -> Path:
    """Bars of the mean reward per step before and after onset, per run, with 95 % CIs."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    means = [episode_means(r) for r in results]
    index = np.arange(len(results))
    for shift, part, name in ((-0.2, 0, "before onset"), (0.2, 1, "after onset")):
        values = [m[part] for m in means]
        heights = [v.mean() if v.size else np.nan for v in values]
        ax.bar(index + shift, heights, 0.4, yerr=[ci95(v) for v in values], capsize=4, label=name)
    ax.set_xticks(index, [r.label for r in results], fontsize=8)
    ax.set(ylabel="mean reward per step")
    ax.set_title("Learning on vs off, same image (95 % CI)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_gif(
    frames: Sequence[np.ndarray],
    path: Path,
    fps: int = 20,
    labels: Sequence[tuple[str, str, bool]] = (),
) -> Path | None:
    """An animated GIF of rendered frames, cropped to what moves in them and, with ``labels``
    (two lines and whether the fault acts, per frame), captioned (None when there are none)."""
    if not frames:
        return None
    cropped = crop_to_content(frames)
    images = [
        caption(image, *labels[i]) if labels else Image.fromarray(image)
        for i, image in enumerate(cropped)
    ]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def crop_to_content(frames: Sequence[np.ndarray], margin: int = 12) -> list[np.ndarray]:
    """The frames cut to the square around every pixel that is not background (the colour of
    the first frame's corner) in any frame: a reaching arm fills a quarter of its canvas."""
    stack = np.asarray(frames, np.uint8)
    drawn = np.any(stack != stack[0, 0, 0], axis=(0, 3))
    rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    if rows.size == 0:
        return list(stack)
    height, width = drawn.shape
    side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 + 2 * margin
    side = min(side, height, width)
    top = int(np.clip((rows[0] + rows[-1] - side) // 2, 0, height - side))
    left = int(np.clip((cols[0] + cols[-1] - side) // 2, 0, width - side))
    return list(stack[:, top : top + side, left : left + side])


GIF_SIZE = 320
LABEL_HEIGHT = 40


def caption(frame: np.ndarray, first: str, second: str, alarm: bool) -> Image.Image:
    """``frame`` scaled to ``GIF_SIZE`` under a white strip with two lines of text; the second
    line in red while ``alarm``."""
    body = Image.fromarray(frame).resize((GIF_SIZE, GIF_SIZE), Image.Resampling.BILINEAR)
    image = Image.new("RGB", (GIF_SIZE, GIF_SIZE + LABEL_HEIGHT), (255, 255, 255))
    image.paste(body, (0, LABEL_HEIGHT))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    draw.text((6, 3), first, fill=(0, 0, 0), font=font)
    draw.text((6, 21), second, fill=(200, 30, 30) if alarm else (70, 70, 70), font=font)
    return image


def frame_labels(
    result: RunResult, every: int, steps: int, frames: int
) -> list[tuple[str, str, bool]]:
    """Per frame of the first episode (one frame per ``every`` steps): step, run, fault onset
    and whether the fault acts yet; the target is the red disc."""
    onset = result.onsets[0] if result.onsets else None
    labels = []
    for i in range(frames):
        t = i * every
        first = f"step {t}/{steps}   {result.label}   red disc: target"
        if onset is None:
            labels.append((first, "no fault", False))
        else:
            state = "acting" if t >= onset else "not yet"
            labels.append((first, f"fault from step {onset}: {state}", t >= onset))
    return labels


def learning_findings(results: Sequence[RunResult], teachers: Sequence[RunResult]) -> str:
    """What a learning on/off pair on the same seeded episodes says, in words: the gain that
    on-chip learning is responsible for (paired by episode, with a 95 % CI), and where both runs
    stand between the fault-blind and the fault-aware teacher."""
    on, off = results
    after_on, after_off = episode_means(on)[1], episode_means(off)[1]
    gain = after_on - after_off
    returns = np.nansum(on.rewards, axis=1) - np.nansum(off.rewards, axis=1)
    low, high = gain.mean() - ci95(gain), gain.mean() + ci95(gain)
    if low > 0:
        verdict = "learning helps by more than the episode-to-episode spread"
    elif high < 0:
        verdict = "learning costs reward here, by more than the episode-to-episode spread"
    else:
        verdict = (
            "the interval includes zero, so at this sample size the gain cannot be told apart "
            "from chance"
        )
    blind, aware = (float(episode_means(t)[1].mean()) for t in teachers)
    closure = [(float(a.mean()) - blind) / (aware - blind) for a in (after_on, after_off)]
    return (
        f"**What happened.** After the fault, learning on earned {after_on.mean():.3f} reward per "
        f"step and learning off {after_off.mean():.3f}, on the same {gain.size} seeded episodes. "
        "The gain attributable to on-chip learning (their difference, episode by episode) is "
        f"{gain.mean():+.3f} per step, 95 % CI {low:+.3f} to {high:+.3f}, or "
        f"{returns.mean():+.1f} return per episode (95 % CI +- {ci95(returns):.1f}): {verdict}. "
        "For scale, on the same episodes the fault-blind teacher (computed torque for the "
        f"healthy arm) earns {blind:.3f} per step after the onset and the fault-aware teacher "
        f"(it knows the fault) {aware:.3f}; learning on closes {closure[0]:.0%} of the gap "
        f"between them, learning off {closure[1]:.0%}."
    )


CAPTIONS = {
    "return_aligned": "Reward per control step with every episode shifted so that its fault "
    "starts at 0: the drop at 0 is the fault, the slope after it is how far each run recovers.",
    "on_vs_off": "Mean reward per step before and after the onset, per run, with 95 % confidence "
    "intervals over episodes: the after-onset bars are what on-chip learning changes.",
    "spike_raster": "Hidden-layer spike counts per control step of the first episode (red line: "
    "fault onset): the activity the board's local rule learns from.",
    "trace_drift": "Mean |H| of the plastic trace per step of the first episode: learning on "
    "moves it, learning off keeps it at zero.",
}


def markdown(
    title: str,
    intro: str,
    results: Sequence[RunResult],
    images: Sequence[Path],
    findings: str = "",
) -> str:
    """A short report: what ran, a table of the runs, what it means, the plots with a sentence
    each."""
    lines = [f"# {title}", "", intro, "", _table([r.summary() for r in results]), ""]
    lines += [*_link_lines(results), ""]
    lines += [findings, ""] if findings else []
    for path in images:
        lines += [f"![{path.stem}]({path.name})", "", CAPTIONS.get(path.stem, ""), ""]
    return "\n".join(lines).rstrip() + "\n"


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
