"""The teacher table: return with and without fault knowledge under each robot fault kind.

    python -m studies.teacher_table [--episodes 50] [--env glocal/ArmReach-v0 ...] [--out DIR]

prints a markdown table per task on stderr (mean and standard error over seeded episodes 0..N-1;
with ``--out``, also teacher_table.md and the rows as teacher_table.json) and marks the kinds
that are no test of adaptation: where the gap between the fault-aware and the fault-blind
teacher is within noise (twice the standard error of the paired per-episode gap) or too small to
matter (under 5 % of the healthy return), or where even the fault-aware teacher recovers less
than half of what the fault costs the blind one. Sensor noise and dropout are marked "partly":
the aware teacher reads the clean state, which no controller can recover from the observations
alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import robot_env

# One fault per kind, mid-episode: ArmReach episodes are 400 steps, Reacher's 50.
TABLE_ONSETS: dict[str, int] = {robot_env.ARM_REACH: 100, "Reacher-v5": 10}
KIND_SPECS = [
    "gain-loss:joint=1,gain=0.3",
    "reversed-motor:joint=1,gain=-1",
    "dead-motor:joint=1",
    "bias-torque:joint=1,bias=0.3",
    "saturation:limit=0.2",
    "delay:steps=3",
    "sensor-noise:joint=1,std=0.1",
    "sensor-bias:joint=1,bias=0.3",
    "sensor-stuck:joint=1",
    "sensor-dropout:joint=1,p=0.5",
    "payload:mass=1",
    "mass-change:scale=2",
    "friction:scale=5",
]
PRIVILEGED_SENSING = ("sensor-noise", "sensor-dropout")
MATTERS = 0.05  # a gap smaller than this fraction of the healthy return is no test either


def episode_return(env: robot_env.FaultWrapper, aware: bool, seed: int) -> float:
    teacher = robot_env.make_teacher(env, fault_aware=aware)
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(teacher(obs))
        total += float(reward)
        done = terminated or truncated
    return total


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))


def fault_row(env_id: str, spec: str | None, episodes: int) -> dict[str, Any]:
    env = robot_env.make(env_id, [spec] if spec else [])
    row: dict[str, Any] = {"fault": spec or "none"}
    returns = {}
    for aware in (False, True):
        returns[aware] = [episode_return(env, aware, seed) for seed in range(episodes)]
        mean, se = mean_se(returns[aware])
        row["aware" if aware else "blind"] = {"mean": mean, "se": se}
    # Both teachers meet the same seeded episodes, so the gap's error is the paired one.
    mean, se = mean_se(np.subtract(returns[True], returns[False]))
    row["gap"] = {"mean": mean, "se": se}
    env.close()
    return row


def verdict(row: dict[str, Any], healthy: float) -> str:
    gap, noise = row["gap"]["mean"], 2.0 * row["gap"]["se"]
    cost = healthy - row["blind"]["mean"]
    if abs(gap) <= noise:
        return "no test: gap within noise"
    if gap < MATTERS * abs(healthy):
        return f"no test: gap under {MATTERS:.0%} of the healthy return"
    if gap < 0.5 * cost:
        return "no test: fault-aware teacher recovers under half the cost"
    if any(kind in row["fault"] for kind in PRIVILEGED_SENSING):
        return "partly: aware reads the clean state"
    return "adaptation test"


def teacher_table(
    env_id: str, episodes: int = 50, kinds: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    onset = TABLE_ONSETS.get(env_id, 0)
    rows = [fault_row(env_id, None, episodes)]
    healthy = rows[0]["aware"]["mean"]
    for spec in KIND_SPECS:
        if kinds and spec.split(":")[0] not in kinds:
            continue
        row = fault_row(env_id, f"robot:{spec},onset={onset}", episodes)
        row["verdict"] = verdict(row, healthy)
        rows.append(row)
        print(f"{env_id} {row['fault']} done", file=sys.stderr)
    return rows


def markdown(env_id: str, rows: list[dict[str, Any]], episodes: int) -> str:
    lines = [
        f"{env_id}, {episodes} seeded episodes, return mean +- s.e.",
        "",
        "| fault | fault-blind | fault-aware | gap (paired) | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        blind, aware = row["blind"], row["aware"]
        lines.append(
            f"| {row['fault']} | {blind['mean']:.2f} +- {blind['se']:.2f} | "
            f"{aware['mean']:.2f} +- {aware['se']:.2f} | "
            f"{row['gap']['mean']:+.2f} +- {row['gap']['se']:.2f} | "
            f"{row.get('verdict', 'healthy')} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="studies.teacher_table", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--env", action="append", default=None, help="task id (repeatable)")
    parser.add_argument("--kind", action="append", help="only these fault kinds (repeatable)")
    parser.add_argument(
        "--out", type=Path, help="folder for teacher_table.md and teacher_table.json (the rows)"
    )
    args = parser.parse_args(argv)
    tables, texts = {}, []
    for env_id in args.env or list(TABLE_ONSETS):
        tables[env_id] = teacher_table(env_id, args.episodes, args.kind)
        texts.append(markdown(env_id, tables[env_id], args.episodes) + "\n")
        print(texts[-1], file=sys.stderr)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "teacher_table.md").write_text("\n".join(texts))
        (args.out / "teacher_table.json").write_text(json.dumps(tables, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
