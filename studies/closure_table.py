"""The torch-only closure table: checkpoints against both teachers on seeded held-out faults.

    python -m studies.closure_table CHECKPOINT [CHECKPOINT ...] --out DIR [--episodes 100]
        [--seed 0] [--validation]

For each fault kind, ``episodes`` episodes (seeded bodies, targets and faults at the held-out
magnitudes of ``train.tasks``) run ``onset + 200`` control steps with the fault from ``onset`` on.
Returns are mean reward per step over three segments: before onset, the first 50 steps after
onset and steps 50-200 after onset, each scored by ``train.evaluate.closure``. The task
(``train.tasks.TASKS``) gives the episodes and the bands; every checkpoint must share one.
``--validation`` scores at training magnitudes of the trained kinds instead (for choosing a
recipe without ever looking at the evaluation faults). Writes closure.json and closure.md into
``--out``; the table also goes to stderr. The board's table is ``glocal evaluate``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from train.checkpoint import load_policy, write_json
from train.errors import TrainError
from train.evaluate import closure
from train.fault_batch import FaultBatch
from train.loop import run_episodes
from train.models import Policy
from train.tasks import TASK_ID, get_task

ONSET = 100
AFTER = 200
SEGMENTS = ("before", "first_50", "steps_50_200")
# Seeds of the table's episodes (fault draws seed + k, envs seed + ENV_SEED_OFFSET + k per kind
# k): the held-out table and validation use different ones, so a recipe chosen on validation
# never saw a table episode, and both stay apart from training's (train.loop.ROLLOUT_SEED_STRIDE).
TABLE_SEED = 2024
VALIDATION_SEED = 77
ENV_SEED_OFFSET = 100  # env seeds apart from the fault-draw seeds of the same kinds


def segment_returns(rewards: np.ndarray, onset: int = ONSET) -> dict[str, float]:
    return {
        "before": float(rewards[:onset].mean()),
        "first_50": float(rewards[onset : onset + 50].mean()),
        "steps_50_200": float(rewards[onset + 50 : onset + 200].mean()),
    }


def evaluate(
    controllers: dict[str, Policy],
    episodes: int = 100,
    seed: int = TABLE_SEED,
    kinds: Sequence[str] | None = None,
    held_out: bool = True,
    task_id: str = TASK_ID,
) -> dict[str, Any]:
    """Returns and closures of every controller and both teachers, per fault kind (default:
    the task's trained and held-out kinds).

    ``held_out=False`` draws training magnitudes instead (validation: for choosing a recipe
    without ever looking at the evaluation faults; use another ``seed`` than the table's).
    """
    task = get_task(task_id)
    if kinds is None:
        kinds = task.trained_kinds + task.held_out_kinds
    table: dict[str, Any] = {}
    everyone: dict[str, Any] = {
        "teacher_blind": lambda env: env.teacher(False),
        "teacher_aware": lambda env: env.teacher(True),
        **controllers,
    }
    for k, kind in enumerate(kinds):
        faults = FaultBatch.sample(
            np.random.default_rng(seed + k), episodes, (kind,), held_out, ONSET, bands=task.bands
        )
        rows = {}
        for name, controller in everyone.items():
            env = task.new_batch(faults, seed + ENV_SEED_OFFSET + k, False, ONSET + AFTER)
            rewards = run_episodes(controller, env, ONSET + AFTER, torch.device("cpu"))
            rows[name] = segment_returns(rewards)
        blind, aware = rows["teacher_blind"], rows["teacher_aware"]
        for row in rows.values():
            for seg in SEGMENTS[1:]:
                row[f"closure_{seg}"] = closure(row[seg], blind[seg], aware[seg])
        table[kind] = rows
    return table


def format_table(table: dict[str, Any]) -> str:
    """A markdown table: per kind and controller, segment returns and closures."""
    lines = [
        "| fault | controller | before | first 50 | 50-200 | closure first 50 | closure 50-200 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    for kind, rows in table.items():
        for name, row in rows.items():
            lines.append(
                f"| {kind} | {name} | {row['before']:.3f} | {row['first_50']:.3f} | "
                f"{row['steps_50_200']:.3f} | {fmt(row['closure_first_50'])} | "
                f"{fmt(row['closure_steps_50_200'])} |"
            )
    return "\n".join(lines)


def load_controllers(paths: Sequence[str]) -> tuple[str, dict[str, Policy]]:
    """The checkpoints' shared task and their policies, a row each: named by kind, or by kind
    and folder where kinds repeat."""
    loaded, tasks = [], set()
    for path in paths:
        policy, record = load_policy(path)
        policy.eval()
        loaded.append((Path(path), record["config"]["kind"], policy))
        tasks.add(record["train"].get("task", TASK_ID))
    kinds = [kind for _, kind, _ in loaded]
    controllers = {
        kind if kinds.count(kind) == 1 else f"{kind} ({path.resolve().name})": policy
        for path, kind, policy in loaded
    }
    if len(controllers) < len(loaded):
        raise TrainError("the table names one checkpoint folder twice; name each once.")
    if len(tasks) > 1:
        raise TrainError(
            f"the checkpoints were trained on different tasks ({', '.join(sorted(tasks))}); "
            "evaluate one task at a time."
        )
    return tasks.pop(), controllers


def closure_table(
    paths: Sequence[str], out: Path, episodes: int, seed: int, validation: bool
) -> dict[str, Any]:
    """The table of ``paths`` into ``out`` (closure.json, closure.md)."""
    task_id, controllers = load_controllers(paths)
    if validation:
        kinds = get_task(task_id).trained_kinds
        table = evaluate(controllers, episodes, seed + VALIDATION_SEED, kinds, False, task_id)
    else:
        table = evaluate(controllers, episodes, seed + TABLE_SEED, task_id=task_id)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "closure.json", table)
    text = format_table(table)
    (out / "closure.md").write_text(text + "\n")
    print(text, file=sys.stderr)
    return {"task": task_id, "closure": table}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="studies.closure_table", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="checkpoint folders")
    parser.add_argument("--out", type=Path, required=True, help="folder for closure.json and .md")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per fault kind")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the episodes")
    parser.add_argument(
        "--validation",
        action="store_true",
        help="training magnitudes of the trained kinds (for choosing a recipe)",
    )
    args = parser.parse_args(argv)
    try:
        closure_table(args.checkpoints, args.out, args.episodes, args.seed, args.validation)
    except (TrainError, OSError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
