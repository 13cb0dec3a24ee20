"""HIL fixtures: the deploy checkpoint fixture, and a board process on a pty per test."""

from __future__ import annotations

import os

import pytest

from firmware_sim.process import BoardProcess
from tests.deploy.conftest import checkpoint, checkpoint_dir  # noqa: F401 - shared fixtures


@pytest.fixture
def board_url(tmp_path):
    """A board on a pty (``GLOCAL_HIL_PORT`` points the suite at a running board instead)."""
    external = os.environ.get("GLOCAL_HIL_PORT")
    if external:
        yield external
        return
    with BoardProcess("tianjic", tmp_path / "flash") as board:
        yield board.url
