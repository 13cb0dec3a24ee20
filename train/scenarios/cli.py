"""``glocal scenario few-shot|continual|fault-tolerant``: the seed paper's learning scenarios.

``train/cli.py`` registers the verb with :func:`register_scenario`; its handler,
:func:`run_scenario`, imports the heavy modules. Nothing here touches the board:
``glocal fewshot-board`` (``deploy.fewshot_board``) runs the saved few-shot models on it, and
``glocal scenario few-shot-runs``, which scores given one-shot runs on it too, is a SCENARIO
that ``glocal.cli`` adds from ``deploy.cli`` through :func:`scenario_commands`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train.errors import TrainError

SCENARIOS = {
    "few-shot": "few-shot Omniglot: HP, GP, LP and the prototype reference",
    "continual": "continual learning on permuted digits",
    "fault-tolerant": "digits under noise, occlusion and synapse faults",
}


def register_scenario(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """Add ``glocal scenario SCENARIO`` (every option is optional; defaults fit a few CPU
    minutes per seed); :func:`scenario_commands` lets another package add a SCENARIO."""
    p = subparsers.add_parser(
        "scenario",
        help="run one of the seed paper's learning scenarios (HP against GP and LP)",
        description=(
            "Run one of the seed paper's scenarios on real data, hybrid plasticity (HP) against "
            "global-only (GP) and local-only (LP) learning on the same data and budget: few-shot "
            "Omniglot, continual learning on permuted tasks, or fault tolerance. Writes the "
            "JSON, a Markdown table, a PNG and the checkpoints into --out."
        ),
    )
    commands = p.add_subparsers(dest="scenario", metavar="SCENARIO", required=True)
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--seeds", default="0,1,2", help="comma-separated seeds (default: %(default)s)"
    )
    options.add_argument(
        "--out",
        type=Path,
        default=Path("scenario-results"),
        help="folder for the JSON, Markdown table, PNG and checkpoints (default: %(default)s)",
    )
    options.add_argument(
        "--data-root",
        default=None,
        help="Omniglot folder (default: $GLOCAL_DATA/omniglot or ../shared/data/omniglot)",
    )
    options.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="few-shot meta-iterations (default 1200) or continual epochs per task",
    )
    options.add_argument(
        "--test-episodes", type=int, default=1000, help="few-shot test episodes per way"
    )
    options.add_argument(
        "--ways", default="5,20", help="few-shot: N-way tests (default: %(default)s)"
    )
    options.add_argument(
        "--split",
        default="characters",
        help="few-shot meta-test: 'characters' (unseen characters of seen alphabets) or "
        "'alphabets' (alphabets never seen: the standard split, Lake et al.'s evaluation "
        "alphabets where present) (default: %(default)s)",
    )
    options.add_argument(
        "--tasks", type=int, default=10, help="continual: number of permuted tasks"
    )
    options.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    for name, what in SCENARIOS.items():
        command = commands.add_parser(name, parents=[*parents, options], help=what)
        command.set_defaults(handler=run_scenario)


def scenario_commands(verb: argparse.ArgumentParser) -> argparse._SubParsersAction:
    """The SCENARIO subcommands of the ``glocal scenario`` parser ``verb``."""
    return next(a for a in verb._actions if isinstance(a, argparse._SubParsersAction))


def _ints(option: str, text: str, minimum: int) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise TrainError(f"{option} takes comma-separated integers, not {text!r}.") from None
    if not values or min(values) < minimum:
        raise TrainError(f"{option} needs integers of at least {minimum}, not {text!r}.")
    return values


def run_scenario(args: argparse.Namespace) -> dict:
    """Run ``args.scenario`` over ``args.seeds``; the summary dict (``--json`` prints it), with
    the MKL branch the run's products used (``mkl_cbwr``)."""
    from train.scenarios.common import reproducible_blas

    blas = reproducible_blas()  # before the first product: MKL reads it once
    summary = _run(args)
    summary["mkl_cbwr"] = blas
    return summary


def _run(args: argparse.Namespace) -> dict:
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
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runner.set_threads(args.threads)
    if args.scenario == "few-shot":
        from train.scenarios.fewshot import FewShotConfig

        cfg = FewShotConfig(test_episodes=max(1, args.test_episodes))
        if args.iterations is not None:
            cfg = replace(cfg, iterations=args.iterations)
        ways = tuple(_ints("--ways", args.ways, 2))
        return runner.run_fewshot(cfg, seeds, out, args.data_root, ways=ways, split=args.split)
    if args.scenario == "continual":
        from train.scenarios.continual import ContinualConfig

        ccfg = ContinualConfig(n_tasks=args.tasks)
        if args.iterations is not None:
            ccfg = replace(ccfg, epochs=args.iterations)
        return runner.run_continual(ccfg, seeds, out)
    from train.scenarios.faults import FaultConfig

    return runner.run_faults(FaultConfig(), seeds, out)
