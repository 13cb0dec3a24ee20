"""The front door: verbs compose, errors are one sentence, --json goes to stdout."""

import subprocess
import sys

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
