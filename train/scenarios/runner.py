"""Whole scenario runs over seeds: train, evaluate, write the JSON/Markdown/PNG report."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from train.scenarios import report
from train.scenarios.data import load_omniglot, rotate_classes, split_meta
from train.scenarios.fewshot import PROTOTYPE, FewShotConfig, run_fewshot_seed

log = logging.getLogger(__name__)

SPLIT_SEED = 0  # one character split for every model and seed: same data for all
TEST_FRACTION = 0.33  # of the characters, meta-test (never seen in meta-training)
SPLIT_TITLES = {
    "characters": "meta-test characters",
    "alphabets": "meta-test alphabets never seen",
}


def run_fewshot(
    cfg: FewShotConfig,
    seeds: list[int],
    out: Path,
    data_root: str | Path | None = None,
    test_fraction: float = TEST_FRACTION,
    ways: tuple[int, ...] = (5, 20),
    split: str = "characters",
) -> dict[str, Any]:
    """Few-shot Omniglot: HP, GP, LP and the prototype reference over ``seeds``; each HP model
    saved as fewshot-hp-seedN.pt (``glocal fewshot-board`` runs it on the emulated board,
    ``glocal export-nir`` exports it), each GP extractor beside it as fewshot-gp-seedN.pt.
    ``split``: ``characters`` (meta-test characters of seen alphabets) or ``alphabets`` (the
    standard split: meta-test alphabets never seen)."""
    chars = load_omniglot(data_root, cfg.image_size)
    train_chars, test_chars = split_meta(chars, split, test_fraction, SPLIT_SEED)
    train_rot = rotate_classes(train_chars)
    log.info(
        "Omniglot: %d characters; meta-train %d (x4 rotations = %d classes), meta-test %d",
        len(chars),
        len(train_chars),
        len(train_rot),
        len(test_chars),
    )
    runs = []
    for seed in seeds:
        t0 = time.perf_counter()
        run = run_fewshot_seed(train_rot, test_chars, cfg, seed, ways)
        modules = run.pop("_modules")
        saved = {
            "format": "glocal-scenario-checkpoint",
            "scenario": "few-shot",
            "config": asdict(cfg),
            "seed": seed,
            # the split, so that a reader finds the same meta-test characters
            "split": {"kind": split, "seed": SPLIT_SEED, "test_fraction": test_fraction},
        }
        hp = {"extractor": modules["extractor"].state_dict(), "rule": modules["rule"].state_dict()}
        torch.save({**saved, **hp}, out / f"fewshot-hp-seed{seed}.pt")
        # GP beside it, in the same format without a rule: evaluated without retraining
        gp = {"model": "GP", "extractor": modules["gp_extractor"].state_dict()}
        torch.save({**saved, **gp}, out / f"fewshot-gp-seed{seed}.pt")
        run["seconds"] = time.perf_counter() - t0
        log.info("few-shot seed %d: %s", seed, {m: v for m, v in run["models"].items()})
        runs.append(run)
    rows = {}
    for model in ("HP", "GP", "LP", PROTOTYPE):
        rows[model] = report.summarise(
            [{k: v["accuracy"] for k, v in r["models"][model].items()} for r in runs]
        )
    table = report.markdown_table(
        f"Few-shot Omniglot, 1-shot, {SPLIT_TITLES[split]}, mean ± std over {len(seeds)} seeds "
        f"(each seed {cfg.test_episodes} episodes)",
        [f"{n}-way" for n in ways],
        rows,
    )
    record = {
        "scenario": "few-shot",
        "split": split,
        "test_alphabets": sorted({alphabet for alphabet, _ in test_chars.keys}),
        "config": asdict(cfg),
        "seeds": seeds,
        "runs": runs,
        "summary": rows,
    }
    report.write_json(out / "fewshot.json", record)
    (out / "fewshot.md").write_text(table)
    report.plot_bars(
        out / "fewshot.png",
        "Few-shot Omniglot (1-shot), mean ± std over seeds",
        [f"{n}-way" for n in ways],
        {
            m: (
                [rows[m][f"{n}-way"]["mean"] for n in ways],
                [rows[m][f"{n}-way"]["std"] for n in ways],
            )
            for m in rows
        },
    )
    return {"scenario": "few-shot", "summary": rows, "table": table, "out": str(out)}


def set_threads(threads: int) -> None:
    torch.set_num_threads(max(1, threads))


def run_continual(cfg: Any, seeds: list[int], out: Path) -> dict[str, Any]:
    """Permuted digits: accuracy on all tasks seen so far after each task, per model."""
    import numpy as np

    from train.scenarios.continual import CONTINUAL_MODELS, run_continual_seed

    runs = [run_continual_seed(cfg, seed) for seed in seeds]
    curves, rows = {}, {}
    for model in CONTINUAL_MODELS:
        # mean over tasks seen so far, after each task: (seeds, tasks)
        seen = np.array([[np.mean(row) for row in r["acc"][model]] for r in runs])
        first = np.array([[row[0] for row in r["acc"][model]] for r in runs])
        curves[model] = (
            seen.mean(0).tolist(),
            seen.std(0, ddof=1).tolist() if len(runs) > 1 else [0.0] * seen.shape[1],
        )
        rows[model] = report.summarise(
            [
                {
                    "task 1 (after the first)": float(f[0]),
                    "task 1 (after the last)": float(f[-1]),
                    "all tasks (after the last)": float(s[-1]),
                }
                for s, f in zip(seen, first, strict=True)
            ]
        )
    table = report.markdown_table(
        f"Continual permuted digits, {cfg.n_tasks} tasks, mean ± std over {len(seeds)} seeds",
        ["task 1 (after the first)", "task 1 (after the last)", "all tasks (after the last)"],
        rows,
    )
    report.write_json(
        out / "continual.json",
        {"scenario": "continual", "seeds": seeds, "runs": runs, "summary": rows, "curves": curves},
    )
    (out / "continual.md").write_text(table)
    report.plot_curves(
        out / "continual.png",
        "Continual permuted digits: mean accuracy on tasks seen so far",
        "tasks learned",
        list(range(1, cfg.n_tasks + 1)),
        curves,
    )
    return {"scenario": "continual", "summary": rows, "table": table, "out": str(out)}


def run_faults(cfg: Any, seeds: list[int], out: Path) -> dict[str, Any]:
    """Digits trained clean, tested under noise, occlusion and synapse faults, per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from train.scenarios.common import MODELS
    from train.scenarios.faults import run_faults_seed

    runs = [run_faults_seed(cfg, seed) for seed in seeds]
    kinds = list(cfg.levels)
    summary: dict[str, dict[str, dict[str, list[float]]]] = {}
    tables = []
    fig, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.4))
    for ax, kind in zip(axes, kinds, strict=True):
        levels = cfg.levels[kind]
        rows = {}
        for model in MODELS:
            a = np.array([r["acc"][model][kind] for r in runs])
            mean, std = a.mean(0), (a.std(0, ddof=1) if len(runs) > 1 else np.zeros(a.shape[1]))
            summary.setdefault(model, {})[kind] = {"mean": mean.tolist(), "std": std.tolist()}
            rows[model] = {
                str(lv): {"mean": m, "std": s} for lv, m, s in zip(levels, mean, std, strict=True)
            }
            ax.plot(levels, mean, marker="o", ms=3, label=model)
            ax.fill_between(levels, mean - std, mean + std, alpha=0.2)
        tables.append(
            report.markdown_table(
                f"{kind} (level → accuracy), mean ± std over {len(seeds)} seeds",
                [str(lv) for lv in levels],
                rows,
            )
        )
        ax.set_title(kind, fontsize=10)
        ax.set_xlabel("level")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=8)
    fig.suptitle("Fault tolerance on 8x8 digits (trained clean)", fontsize=10)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "faults.png", dpi=120)
    plt.close(fig)
    table = "\n".join(tables)
    report.write_json(
        out / "faults.json",
        {"scenario": "fault-tolerant", "seeds": seeds, "runs": runs, "summary": summary},
    )
    (out / "faults.md").write_text(table)
    return {"scenario": "fault-tolerant", "summary": summary, "table": table, "out": str(out)}
