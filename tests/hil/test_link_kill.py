"""A board killed mid-run and restarted: the runner notices within one control period, stops
with one sentence, and a HELLO to the restarted board shows a new boot id (a fresh state)."""

from __future__ import annotations

import threading
import time

import pytest

from deploy.engines import BoardController
from deploy.errors import DeployError
from deploy.faults import route_faults
from deploy.flash import connect, flash_and_boot, wait_for_board
from deploy.pack import pack_checkpoint
from deploy.runner import run
from firmware_sim.process import BoardProcess

pytestmark = pytest.mark.hil

ENV = "glocal/ArmReach-v0"
PERIOD = 0.05  # ArmReach's control period: the run's deadline per STEP


def test_a_killed_board_stops_the_run_within_one_control_period(checkpoint, tmp_path) -> None:
    flash_dir = tmp_path / "flash"
    board = BoardProcess("tianjic", flash_dir)
    client, transport = connect(board.url)
    try:
        flash_and_boot(client, pack_checkpoint(checkpoint, "tianjic").data, progress=False)
        booted = client.hello()["boot"]
        killed: list[float] = []

        def kill() -> None:
            killed.append(time.monotonic())
            board.kill()  # SIGKILL

        threading.Timer(0.5, kill).start()
        with pytest.raises(DeployError, match="The run stopped there") as stopped:
            run(BoardController(client), ENV, route_faults([]), 20, board_client=client)
        noticed = time.monotonic() - killed[0]
        assert noticed < PERIOD, f"noticed {noticed * 1e3:.1f} ms after the kill"
        assert "step" in str(stopped.value), str(stopped.value)
    finally:
        transport.close()
        board.stop()
    with BoardProcess("tianjic", flash_dir) as restarted:
        again, transport = connect(restarted.url)
        try:
            hello = wait_for_board(again)
            assert hello["boot"] != booted  # a fresh boot: the host must not carry on
            assert again.status()["state"] == "ready"  # the flashed image booted from flash
        finally:
            transport.close()
