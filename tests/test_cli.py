"""The front door: verbs compose, errors are one sentence, --json goes to stdout."""

import ast
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from glocal import cli


def test_help_lists_every_package_verb(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    assert "demo" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == cli.EXIT_USAGE
    assert "usage: glocal" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--model", "hp", "--out", "runs/x", "--bogus-flag", "1"],
        ["export-onnx", "model.pt", "--out", "m.onnx", "--bogus-flag", "1"],
        ["board", "--bogus-flag", "1"],
        ["evaluate", "--episodes", "2", "--bogus-flag", "1"],
        ["scenario", "few-shot", "--bogus-flag", "1"],
    ],
)
def test_an_unknown_argument_is_reported_against_its_verb(argv, capsys):
    """The verb's usage lists what it does take; the top-level usage lists only the verbs."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"usage: glocal {argv[0]} ")
    assert f"glocal {argv[0]}: error: unrecognized arguments: --bogus-flag 1" in err
    assert "COMMAND ..." not in err


def test_an_unknown_argument_before_any_verb_is_reported_against_glocal(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--bogus-flag"])
    assert exit_info.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("usage: glocal [-h] [--version] COMMAND ...")
    assert "glocal: error: unrecognized arguments: --bogus-flag" in err


@pytest.mark.parametrize("argv", [["--json", "envs"], ["envs", "--json"]])
def test_json_goes_before_or_after_the_verb(argv, capsys):
    assert cli.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert "glocal/ArmReach-v0" in json.dumps(summary)


def test_every_package_has_a_root_error():
    roots = cli.expected_errors()
    assert len(roots) == len(cli.COMMAND_PACKAGES) + 1
    assert all(issubclass(root, Exception) for root in roots)


def test_console_entry_point_runs_without_traceback():
    done = subprocess.run(
        [sys.executable, "-m", "glocal", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert done.stdout.startswith("glocal ")


@pytest.mark.hil
def test_sigterm_unwinds_and_stops_the_board_process(tmp_path):
    """A killed command must not leave its emulated board running."""
    code = (
        "import sys, time\n"
        "from glocal.cli import interrupt_on_sigterm\n"
        "from firmware_sim.process import BoardProcess\n"
        "interrupt_on_sigterm()\n"
        f"with BoardProcess('small', {str(tmp_path)!r}) as board:\n"
        "    print(board.process.pid, flush=True)\n"
        "    time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    board_pid = int(parent.stdout.readline())
    os.kill(board_pid, 0)  # the board is up
    parent.send_signal(signal.SIGTERM)
    parent.wait(20)
    try:
        with pytest.raises(ProcessLookupError):
            os.kill(board_pid, 0)
    finally:  # never leak a board when the assertion fails
        with contextlib.suppress(ProcessLookupError):
            os.kill(board_pid, signal.SIGKILL)


PRODUCT_PACKAGES = ("protocol", "firmware_sim", "robot_env", "train", "deploy", "glocal")
# glocal/__main__.py is the one entry point; protocol/testing.py is a test board that tests and
# benchmarks start as a process of its own (`python -m protocol.testing --port pty`)
ENTRY_POINTS = {"glocal/__main__.py", "protocol/testing.py"}


def is_main_block(node: ast.stmt) -> bool:
    if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)):
        return False
    sides = [node.test.left, *node.test.comparators]
    names = {side.id for side in sides if isinstance(side, ast.Name)}
    values = {side.value for side in sides if isinstance(side, ast.Constant)}
    return names == {"__name__"} and values == {"__main__"}


def test_every_user_action_is_a_verb_no_product_module_has_a_main_block():
    root = Path(__file__).resolve().parents[1]
    mains = [
        path.relative_to(root).as_posix()
        for package in PRODUCT_PACKAGES
        for path in sorted((root / package).rglob("*.py"))
        if any(is_main_block(node) for node in ast.parse(path.read_text()).body)
    ]
    assert set(mains) - ENTRY_POINTS == set()
    assert is_main_block(ast.parse('if __name__ == "__main__":\n    main()').body[0])


def test_building_the_parser_loads_no_torch():
    """Every start of `glocal` builds every verb's parser, the emulated board's `glocal board`
    too: a verb module that loads torch at import costs each board process about a second."""
    code = (
        "import sys; from glocal.cli import build_parser; build_parser();"
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
