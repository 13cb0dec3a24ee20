"""``glocal`` verbs owned by ``deploy``."""

from __future__ import annotations

import argparse

from deploy.errors import DeployError


def register(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    demo = subparsers.add_parser(
        "demo",
        parents=parents,
        help="run the end-to-end demo: board on a pty, flash, closed loop with a fault",
        description=(
            "Start an emulated board on a pty, pack and flash the shipped checkpoint, run ArmReach "
            "with a mid-episode actuator fault, learning on and off, and write a report."
        ),
    )
    demo.add_argument("--out", default="glocal-demo", help="output folder (default: %(default)s)")
    demo.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> dict:
    raise DeployError(
        "the demo pipeline is not built yet: it needs deploy's pack, flash and run (issue 6)"
    )
