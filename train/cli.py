"""``glocal`` verbs owned by ``train``: ``glocal train`` (and its ``--evaluate`` table)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """Add ``glocal train``."""
    p = subparsers.add_parser(
        "train",
        parents=parents,
        help="meta-train an HP spiking policy (or a baseline) on a robot task",
        description=(
            "Meta-train a policy by DAgger-style imitation of the fault-aware teacher, BPTT "
            "through truncated windows. Writes model.pt, config.json, metrics.json, loss.png and "
            "val_return.png into --out, and resume.pt every --checkpoint-every updates (a rerun "
            "with the same arguments resumes). Runs data-parallel under torchrun."
        ),
    )
    p.add_argument(
        "--task",
        default="glocal/ArmReach-v0",
        help="task id: glocal/ArmReach-v0 or Reacher-v5 (MuJoCo; train.tasks.TASKS)",
    )
    p.add_argument("--model", default="hp", choices=["hp", "gp", "lp", "lstm", "mlp"])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=400, help="optimiser updates (BPTT windows)")
    p.add_argument("--batch", type=int, default=32, help="episodes stepped together per process")
    p.add_argument("--window", type=int, default=20, help="control steps per BPTT window")
    p.add_argument("--hidden", dest="n_hidden", type=int, default=64, help="hidden LIF neurons")
    p.add_argument("--ticks", type=int, default=8, help="board ticks per control step")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--episode-steps", type=int, default=300, help="control steps per episode")
    p.add_argument(
        "--onset",
        type=int,
        nargs=2,
        default=(20, 150),
        metavar=("FIRST", "LAST"),
        help="fault onset step, uniform in [FIRST, LAST]",
    )
    p.add_argument(
        "--kinds",
        nargs="+",
        default=["gain-loss", "bias-torque", "payload", "reversed-motor"],
        help="fault kinds to train on (a subset of the default)",
    )
    p.add_argument("--p-none", type=float, default=0.15, help="fraction of fault-free episodes")
    p.add_argument(
        "--clean-steps", type=int, default=0, help="first updates on fault-free episodes only"
    )
    p.add_argument(
        "--trace-penalty",
        type=float,
        default=0.0,
        help="weight of the trace's squared contribution while no fault acts (hp, lp)",
    )
    p.add_argument(
        "--stuck-synapses",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="on-chip faults in training (hp, gp, lp): half the episodes get up to this fraction "
        "of synapses stuck at zero",
    )
    p.add_argument(
        "--dead-neurons",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="... and up to this fraction of dead hidden neurons",
    )
    p.add_argument(
        "--lam-logit",
        type=float,
        default=3.0,
        help="initial logit of the trace decay lambda per tick (3: 0.95, 5: 0.993)",
    )
    p.add_argument(
        "--modulator",
        action="store_true",
        help="three-factor rule (hp, lp): the last hidden neuron's spike switches the learning "
        "rate between two learned levels (the board's mod_src / mod_levels)",
    )
    p.add_argument(
        "--integral-readout",
        dest="integral_shift",
        type=int,
        default=0,
        metavar="SHIFT",
        help="hp, gp, lp: give every action a second, slow readout neuron with this decay shift "
        "(8: a time constant of 256 ticks, 32 control steps), decoded at 4 times a fast "
        "neuron's DC gain, so the network can learn integral action (default 0: none)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--quantized", action="store_true", help="train through the board's integers")
    p.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start from this checkpoint's weights (a second stage, e.g. --quantized fine-tuning)",
    )
    p.add_argument(
        "--beta-start",
        type=float,
        default=0.5,
        help="DAgger: share of teacher actions executed at the start (annealed to 0 by half-way)",
    )
    p.add_argument("--checkpoint-every", type=int, default=50, help="updates between resume.pt")
    p.add_argument("--no-resume", action="store_true", help="start over even if resume.pt exists")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument(
        "--evaluate",
        nargs="*",
        metavar="CHECKPOINT",
        help="instead of training: the closure table of these checkpoints on held-out faults",
    )
    p.add_argument("--episodes", type=int, default=100, help="episodes per fault (--evaluate)")
    p.add_argument(
        "--validation",
        action="store_true",
        help="--evaluate at training magnitudes of the trained kinds (for choosing a recipe)",
    )
    from train.scenarios.cli import add_scenario_arguments

    add_scenario_arguments(p)
    p.set_defaults(handler=train_command)


def train_command(args: argparse.Namespace) -> dict[str, Any]:
    if args.scenario:
        from train.scenarios.cli import run_scenario

        return run_scenario(args)

    from pathlib import Path

    if args.evaluate is not None:
        return evaluate_command(args)

    from dataclasses import fields

    from tqdm import tqdm

    from train.loop import TrainConfig, read_init_from, resolve_device, train

    # every option named like a TrainConfig field is that field
    known = {f.name for f in fields(TrainConfig)}
    options = {k: v for k, v in vars(args).items() if k in known}
    options["onset"] = tuple(options["onset"])
    options["kinds"] = tuple(options["kinds"])
    cfg = TrainConfig(**options)
    # refuse a missing CUDA or a bad --init-from before the progress bar appears
    resolve_device(cfg.device)
    read_init_from(cfg)
    bar = tqdm(total=cfg.steps, file=sys.stderr, desc=f"train {cfg.model}", unit="upd")

    def progress(step: int, total: int, metrics: dict[str, float]) -> None:
        bar.n = step
        bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)
        bar.refresh()

    try:
        summary = train(cfg, Path(args.out), resume=not args.no_resume, progress=progress)
    finally:
        bar.close()
    print(f"wrote {args.out}/model.pt ({summary['seconds']} s)", file=sys.stderr)
    return summary


def evaluate_command(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    from train.checkpoint import load_policy, write_json
    from train.errors import TrainError
    from train.evaluate import evaluate, format_table
    from train.tasks import TASK_ID, get_task

    if not args.evaluate:
        raise TrainError("--evaluate needs at least one checkpoint folder.")
    loaded, tasks = [], set()
    for path in args.evaluate:
        policy, record = load_policy(path)
        policy.eval()
        loaded.append((Path(path), record["config"]["kind"], policy))
        tasks.add(record["train"].get("task", TASK_ID))
    # a row per checkpoint: named by its kind, or by kind and folder where kinds repeat
    kinds = [kind for _, kind, _ in loaded]
    controllers = {
        kind if kinds.count(kind) == 1 else f"{kind} ({path.resolve().name})": policy
        for path, kind, policy in loaded
    }
    if len(controllers) < len(loaded):
        raise TrainError("--evaluate names one checkpoint folder twice; name each once.")
    if len(tasks) > 1:
        raise TrainError(
            f"the checkpoints were trained on different tasks ({', '.join(sorted(tasks))}); "
            "evaluate one task at a time."
        )
    task_id = tasks.pop()
    if args.validation:
        kinds = get_task(task_id).trained_kinds
        table = evaluate(controllers, args.episodes, args.seed + 77, kinds, False, task_id)
    else:
        table = evaluate(
            controllers, episodes=args.episodes, seed=args.seed + 2024, task_id=task_id
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "closure.json", table)
    text = format_table(table)
    (out / "closure.md").write_text(text + "\n")
    print(text, file=sys.stderr)
    return {"task": task_id, "closure": table}
