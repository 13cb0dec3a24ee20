"""Fault routing, the closed-loop runner's telemetry and the report's plots."""

from __future__ import annotations

import io
import json
import tempfile

import numpy as np
import pytest

from deploy.engines import BoardController, in_process_board
from deploy.errors import DeployError
from deploy.faults import route_faults
from deploy.pack import pack_checkpoint
from deploy.report import aligned, markdown, write_gif, write_plots
from deploy.runner import RunResult, run
from firmware_sim.errors import FaultError
from protocol.errors import LinkFaultError
from robot_env import FaultSpecError

ENV = "glocal/ArmReach-v0"


def test_each_spec_goes_to_its_domain() -> None:
    plan = route_faults(
        [
            "robot:gain-loss:joint=1,gain=0.3,onset=100",
            "board:dead-neuron:core=0,fraction=0.05,onset=20",
            "link:drop:rate=0.01,onset=5,duration=10",
        ]
    )
    assert plan.robot[0].kind == "gain-loss" and plan.robot[0].magnitude == 0.3
    assert plan.board[0]["kind"] == "dead-neuron" and plan.board[0]["target"] == {"core": 0}
    assert plan.link[0] == {
        "domain": "link",
        "kind": "drop",
        "target": "all",
        "magnitude": 0.01,
        "onset": 5,
        "duration": 10,
        "seed": 0,
    }
    assert [r["domain"] for r in plan.records] == ["robot", "board", "link"]
    assert plan.onset([100]) == 5


@pytest.mark.parametrize(
    ("spec", "error", "words"),
    [
        ("space:laser:x=1", DeployError, "use robot, board or link"),
        ("link:drop:onset=3", LinkFaultError, "takes rate=VALUE"),
        ("link:corrupt:rate=2", LinkFaultError, "between 0.0 and 1.0"),
        ("robot:gain-loss:gain=7", FaultSpecError, "outside"),
        ("board:dead-neuron:fraction=3", FaultError, "fraction"),
    ],
)
def test_bad_specs_are_refused_by_their_domain(spec: str, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        route_faults([spec])


@pytest.fixture(scope="module")
def board(checkpoint):
    packed = pack_checkpoint(checkpoint, "tianjic")
    client = in_process_board(packed.data, tempfile.mkdtemp(), "tianjic")
    return BoardController(client, packed.image.meta["trace_unit"])


def test_board_fault_silences_the_hidden_layer_from_its_onset(board) -> None:
    plan = route_faults(["board:dead-neuron:core=0,fraction=1,onset=30"])
    log = io.StringIO()
    result = run(
        board, ENV, plan, 2, steps=60, telemetry=log, probe=True, board_client=board.client
    )
    counts = result.spike_counts.sum(axis=1)
    assert counts[:30].sum() > 0 and counts[30:].sum() == 0
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert len(lines) == 120 and {"obs", "action", "reward", "latency_ms"} <= set(lines[0])
    assert lines[0]["spikes"] >= 0 and result.onsets == [30, 30]
    # the fault is cleared when the run ends
    assert board.client.status()["faults"] == []


def test_link_and_board_faults_need_a_board(board) -> None:
    with pytest.raises(DeployError, match="need a link"):
        run(board, ENV, route_faults(["link:delay:seconds=0.01"]), 1, steps=5)
    with pytest.raises(DeployError, match="need a board"):
        run(board, ENV, route_faults(["board:core-down:core=0"]), 1, steps=5)


def test_aligned_rewards_put_each_onset_at_zero() -> None:
    rewards = np.arange(12, dtype=float).reshape(2, 6)
    result = RunResult("x", True, rewards, [2, 4], np.zeros((2, 6)))
    x, rows = aligned(result)
    assert rows[0, list(x).index(0)] == 2.0 and rows[1, list(x).index(0)] == 10.0


def test_plots_gif_and_markdown(board, tmp_path) -> None:
    plan = route_faults(["robot:bias-torque:joint=1,bias=0.35,onset=20"])
    results = [
        run(board, ENV, plan, 2, steps=40, learning=on, probe=True, frames_every=10 if on else 0)
        for on in (True, False)
    ]
    paths = write_plots(results, tmp_path)
    assert {p.name for p in paths} == {
        "return_aligned.png",
        "on_vs_off.png",
        "spike_raster.png",
        "trace_drift.png",
    }
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    gif = write_gif(results[0].frames, tmp_path / "e.gif")
    assert gif.read_bytes()[:6] == b"GIF89a" and len(results[0].frames) == 4
    text = markdown("t", "intro", results, paths)
    assert "| learning on" not in text and "![trace_drift](trace_drift.png)" in text
    assert text.count("| board-") == 2


@pytest.mark.mujoco
def test_steps_beyond_the_registered_limit_are_run() -> None:
    """Reacher-v5 is registered with 50 steps; --steps 80 runs 80, so a late fault is seen."""
    pytest.importorskip("mujoco")
    from deploy.evaluate import TeacherController

    plan = route_faults(["robot:reversed-motor:joint=0,onset=60"])
    result = run(TeacherController(False), "Reacher-v5", plan, 1, seed=1, steps=80)
    assert np.isfinite(result.rewards).all() and result.rewards.shape == (1, 80)
    assert result.rewards[0, 60:].mean() < result.rewards[0, 40:60].mean()  # the fault bites
