"""Command-line pieces for ``glocal train --scenario few-shot|continual|fault-tolerant``.

``train/cli.py`` wires these in: :func:`add_scenario_arguments` adds the options to the
``train`` parser, and ``train``'s handler calls :func:`run_scenario` when ``--scenario`` is
given. Heavy modules are imported inside :func:`run_scenario`. Nothing here touches the board:
``glocal fewshot-board`` (``deploy.fewshot_board``) runs the saved few-shot models on it.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from train.errors import TrainError

SCENARIOS = ("few-shot", "continual", "fault-tolerant")


def add_scenario_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the scenario runs (all optional; defaults fit a few CPU minutes per seed)."""
    g = parser.add_argument_group("learning scenarios (seed paper)")
    g.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default=None,
        help="run one of the seed paper's scenarios instead of robot training",
    )
    g.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: %(default)s)")
    g.add_argument(
        "--scenario-out",
        default=None,
        help="folder for the JSON, Markdown table, PNG and checkpoints "
        "(default: --out where the parser has one, else scenario-results)",
    )
    g.add_argument(
        "--data-root",
        default=None,
        help="Omniglot folder (default: $GLOCAL_DATA/omniglot or ../shared/data/omniglot)",
    )
    g.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="few-shot meta-iterations (default 1200) or continual epochs per task",
    )
    g.add_argument("--test-episodes", type=int, default=1000, help="few-shot test episodes per way")
    g.add_argument("--ways", default="5,20", help="few-shot: N-way tests (default: %(default)s)")
    g.add_argument("--tasks", type=int, default=10, help="continual: number of permuted tasks")
    # where the parser has its own --threads (glocal train's), the scenario uses that one
    with contextlib.suppress(argparse.ArgumentError):
        g.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")


def _ints(option: str, text: str, minimum: int) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise TrainError(f"{option} takes comma-separated integers, not {text!r}.") from None
    if not values or min(values) < minimum:
        raise TrainError(f"{option} needs integers of at least {minimum}, not {text!r}.")
    return values


def output_folder(args: argparse.Namespace) -> Path:
    """``--scenario-out``, else the ``--out`` of the parser it sits in, else scenario-results."""
    return Path(args.scenario_out or getattr(args, "out", None) or "scenario-results")


def run_scenario(args: argparse.Namespace) -> dict:
    """Run ``args.scenario`` over ``args.seeds``; the summary dict (``--json`` prints it)."""
    from dataclasses import replace

    from train.scenarios import runner

    if args.scenario not in SCENARIOS:
        raise TrainError(
            f"unknown scenario {args.scenario!r}; choose one of {', '.join(SCENARIOS)}."
        )
    seeds = _ints("--seeds", args.seeds, 0)
    for name in ("test_episodes", "tasks", "threads"):
        if getattr(args, name) < 0:
            raise TrainError(f"--{name.replace('_', '-')} must not be negative.")
    if args.iterations is not None and args.iterations < 1:
        raise TrainError("--iterations must be at least 1.")
    out = output_folder(args)
    out.mkdir(parents=True, exist_ok=True)
    runner.set_threads(args.threads)
    if args.scenario == "few-shot":
        from train.scenarios.fewshot import FewShotConfig

        cfg = FewShotConfig(test_episodes=max(1, args.test_episodes))
        if args.iterations is not None:
            cfg = replace(cfg, iterations=args.iterations)
        ways = tuple(_ints("--ways", args.ways, 2))
        return runner.run_fewshot(cfg, seeds, out, args.data_root, ways=ways)
    if args.scenario == "continual":
        from train.scenarios.continual import ContinualConfig

        ccfg = ContinualConfig(n_tasks=args.tasks)
        if args.iterations is not None:
            ccfg = replace(ccfg, epochs=args.iterations)
        return runner.run_continual(ccfg, seeds, out)
    from train.scenarios.faults import FaultConfig

    return runner.run_faults(FaultConfig(), seeds, out)
