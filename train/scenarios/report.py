"""Scenario reports: a JSON record, a Markdown table and a PNG per scenario in ``out``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from train.scenarios.common import mean_std


def summarise(per_seed: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{metric: {mean, std, n}} over seeds, for every metric the seeds share."""
    keys = [k for k in per_seed[0] if all(k in s for s in per_seed)]
    out = {}
    for key in keys:
        mean, std = mean_std([s[key] for s in per_seed])
        out[key] = {"mean": mean, "std": std, "n": len(per_seed)}
    return out


def markdown_table(title: str, columns: Sequence[str], rows: dict[str, dict[str, Any]]) -> str:
    """``rows``: model -> column -> {mean, std} (shown as percent, mean +- std over seeds)."""
    lines = [f"### {title}", "", "| model | " + " | ".join(columns) + " |"]
    lines.append("| --- |" + " --- |" * len(columns))
    for model, cells in rows.items():
        shown = []
        for col in columns:
            cell = cells.get(col)
            shown.append(
                "—" if cell is None else f"{100 * cell['mean']:.1f} ± {100 * cell['std']:.1f}"
            )
        lines.append(f"| {model} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def write_json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True, default=float) + "\n")


def plot_curves(
    path: Path,
    title: str,
    xlabel: str,
    x: Sequence[float],
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    ylabel: str = "accuracy",
) -> None:
    """Mean curves with a +-std band per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, (mean, std) in curves.items():
        m, s = np.asarray(mean), np.asarray(std)
        ax.plot(x, m, marker="o", ms=3, label=name)
        ax.fill_between(x, m - s, m + s, alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_bars(
    path: Path, title: str, groups: Sequence[str], bars: dict[str, tuple[list, list]]
) -> None:
    """Grouped bars (mean, std) per model over ``groups``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    width = 0.8 / max(1, len(bars))
    pos = np.arange(len(groups))
    for k, (name, (mean, std)) in enumerate(bars.items()):
        ax.bar(pos + k * width, mean, width, yerr=std, capsize=3, label=name)
    ax.set_xticks(pos + width * (len(bars) - 1) / 2, groups)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
