"""The closure table: seeded episodes with held-out faults, every controller on the same episodes.

For each fault kind, ``episodes`` episodes (seeded bodies, targets and faults at the held-out
magnitudes of ``train.tasks``) run ``onset + 200`` control steps with the fault from ``onset`` on.
Returns are mean reward per step over three segments: before onset, the first 50 steps after
onset and steps 50-200 after onset. Closure per segment is

    closure = (R_controller - R_blind) / (R_aware - R_blind)

the fraction of the gap between the fault-blind and the fault-aware teacher that the controller
closes (1: as good as knowing the fault, 0: no better than ignoring it). Where the fault-aware
teacher is not better than the blind one by ``MIN_GAP`` per step, closure is not defined
(reported as None): on Reacher-v5 the aware teacher pays more for control than it gains in
distance under a payload, and a fraction of a negative gap means nothing. The task
(``train.tasks.TASKS``) gives the episodes and the bands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from train.loop import run_episodes
from train.models import Policy
from train.tasks import TASK_ID, FaultBatch, get_task

ONSET = 100
AFTER = 200
MIN_GAP = 1e-3
SEGMENTS = ("before", "first_50", "steps_50_200")


def segment_returns(rewards: np.ndarray, onset: int = ONSET) -> dict[str, float]:
    return {
        "before": float(rewards[:onset].mean()),
        "first_50": float(rewards[onset : onset + 50].mean()),
        "steps_50_200": float(rewards[onset + 50 : onset + 200].mean()),
    }


def closure(value: float, blind: float, aware: float) -> float | None:
    gap = aware - blind
    return None if gap < MIN_GAP else (value - blind) / gap


def evaluate(
    controllers: dict[str, Policy],
    episodes: int = 100,
    seed: int = 2024,
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
            env = task.new_batch(faults, seed + 100 + k, False, ONSET + AFTER)
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
