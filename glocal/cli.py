"""The ``glocal`` command: composes the verbs that each package registers.

Every package owns a ``cli`` module with ``register(subparsers)``; each verb it adds sets a
``handler(args) -> dict | None``. Handlers write human output, progress and logs to stderr and
return a summary, which ``--json`` prints on stdout. Expected failures are raised as the owning
package's root error and become one sentence on stderr and exit code 2, so a traceback always
means a bug. Package ``cli`` modules import their heavy dependencies (torch, gymnasium) inside
the handlers, which keeps ``glocal board`` as light to start as the board it emulates.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from glocal import __version__

# Order decides the order of verbs in --help.
COMMAND_PACKAGES = ("train", "deploy", "protocol", "firmware_sim", "robot_env")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

log = logging.getLogger("glocal")


def expected_errors() -> tuple[type[BaseException], ...]:
    """Root error types of every package: raised on bad input, never on a bug."""
    roots: list[type[BaseException]] = [OSError]
    for package in COMMAND_PACKAGES:
        module = importlib.import_module(f"{package}.errors")
        roots.append(module.ROOT_ERROR)
    return tuple(roots)


class CommandParser(argparse.ArgumentParser):
    """The top parser. argparse hands the arguments a verb does not know up to the top parser,
    which reports them under ``usage: glocal [-h] [--version] COMMAND ...``; this one reports
    them against the verb (``glocal train: error: unrecognized arguments: ...``), so the usage
    printed is the one that lists what the verb does take."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verbs: dict[str, argparse.ArgumentParser] = {}

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            verb = self.verbs.get(getattr(parsed, "command", None) or "", self)
            verb.error(f"unrecognized arguments: {' '.join(unknown)}")  # exits with code 2
        return parsed


def build_parser() -> CommandParser:
    parser = CommandParser(
        prog="glocal",
        description=(
            "Train hybrid-plasticity spiking networks, pack them into core images, flash them onto "
            "a (emulated) neuromorphic board and let on-chip learning adapt them while they drive "
            "robots. Start with `glocal demo`."
        ),
        epilog="Every command takes --json (summary on stdout) and -v (debug logs on stderr), "
        "before or after the command's name.",
    )
    parser.add_argument("--version", action="version", version=f"glocal {__version__}")
    # the same flags before the verb (`glocal --json train ...`), merged in main()
    parser.add_argument("--json", dest="json_before", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "-v", "--verbose", dest="verbose_before", action="count", default=0, help=argparse.SUPPRESS
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", help="print a machine-readable summary on stdout"
    )
    common.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-v: debug, frame dumps)"
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=argparse.ArgumentParser
    )
    for package in COMMAND_PACKAGES:
        module = importlib.import_module(f"{package}.cli")
        module.register(subparsers, parents=[common])
    # `glocal scenario few-shot-runs` scores with the board too, which train (owner of the
    # scenario verb) may not import: deploy adds it to the verb here.
    from deploy.cli import register_fewshot_runs
    from train.scenarios.cli import scenario_commands

    register_fewshot_runs(scenario_commands(subparsers.choices["scenario"]), parents=[common])
    parser.verbs = subparsers.choices
    return parser


def setup_logging(verbosity: int) -> None:
    level = logging.DEBUG if verbosity > 0 else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s")


def interrupt_on_sigterm() -> None:
    """Let SIGTERM (a ``kill``, a CI timeout) unwind like Ctrl-C, so that ``with`` blocks stop
    the board processes they started instead of leaving them running."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.json = args.json or args.json_before
    args.verbose += args.verbose_before
    setup_logging(args.verbose)
    interrupt_on_sigterm()
    try:
        summary = args.handler(args)
    except KeyboardInterrupt:
        print("glocal: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except expected_errors() as error:
        print(f"glocal {args.command}: error: {describe(error)}", file=sys.stderr)
        return EXIT_USAGE
    if args.json and summary is not None:
        json.dump(summary, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    return int(summary.get("exit_code", 0)) if isinstance(summary, dict) else 0


def describe(error: BaseException) -> str:
    """One sentence for the user; OSErrors carry the path they failed on."""
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.strerror or error}: {error.filename}"
    return str(error)
