"""``glocal`` verbs owned by ``train``: ``glocal train`` and ``glocal scenario``.

``glocal train``'s options are :class:`train.config.TrainConfig`'s fields (their help and
spelling sit in the field metadata, so every default is written once). Handlers import torch
and the training loop inside, so that building the parser (every ``glocal`` start, the board's
too) stays light.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from train.config import TrainConfig
from train.scenarios.cli import register_scenario


def register(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """Add ``glocal train`` and ``glocal scenario``."""
    register_train(subparsers, parents)
    register_scenario(subparsers, parents)


def register_train(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
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
    p.add_argument("--out", required=True, help="output folder")
    add_config_options(p)
    p.add_argument("--no-resume", action="store_true", help="start over even if resume.pt exists")
    p.set_defaults(handler=train_command)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`TrainConfig` field that carries help: a False default is a
    switch, a tuple default takes several values of its items' type."""
    for config_field in fields(TrainConfig):
        if "help" not in config_field.metadata:
            continue
        options = dict(config_field.metadata)
        flag = options.pop("flag", "--" + config_field.name.replace("_", "-"))
        default = config_field.default
        if default is False:
            options["action"] = "store_true"
        else:
            options["default"] = default
            item = default[0] if isinstance(default, tuple) else default
            if item is not None:
                options.setdefault("type", type(item))
            if isinstance(default, tuple):
                options.setdefault("nargs", "+")
        parser.add_argument(flag, dest=config_field.name, **options)


def train_command(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    from train.loop import read_init_from, resolve_device, train

    cfg = config_from(args)
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


def config_from(args: argparse.Namespace) -> TrainConfig:
    """The config the options name (argparse gives lists where the fields hold tuples)."""
    options = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    return TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})
