"""deploy against a board in its own process, over a pty, as a user would run it.

``GLOCAL_HIL_PORT=/dev/ttyX`` points the suite at a board that is already running.
"""

from __future__ import annotations

import json
import time

import pytest

from deploy.demo import DEMO_FAULT
from deploy.flash import connect
from deploy.hil import CHECKS, run_suite
from glocal.cli import main

pytestmark = pytest.mark.hil


def test_conformance_suite_passes_on_the_emulated_board(board_url) -> None:
    client, transport = connect(board_url)
    try:
        result = run_suite(client)
    finally:
        transport.close()
    failed = [c for c in result["checks"] if not c["passed"]]
    assert failed == [] and result["passed"] == len(CHECKS) and result["exit_code"] == 0


def test_hil_command_reports_each_check(board_url, capsys) -> None:
    assert main(["hil", "--port", board_url, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [c["check"] for c in summary["checks"]] == [name for name, _ in CHECKS]


def test_hil_against_no_board_fails_cleanly(tmp_path, capsys) -> None:
    assert main(["hil", "--port", str(tmp_path / "no-such-port")]) == 2
    assert capsys.readouterr().err.startswith("glocal hil: error: cannot open")


@pytest.mark.parametrize(
    "bad, message",
    [
        (["--env", "glocal/NoSuchEnv-v0"], "cannot make 'glocal/NoSuchEnv-v0'"),
        (["--episodes", "0"], "--episodes must be at least 1."),
    ],
)
def test_a_run_that_cannot_start_leaves_the_out_folder_alone(
    board_url, tmp_path, capsys, bad, message
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    earlier = out / "telemetry.jsonl"
    earlier.write_text('{"step": 0}\n')
    assert main(["run", "--port", board_url, "--out", str(out), *bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glocal run: error: ") and message in err
    assert "episodes of" not in err  # refused before any progress
    assert earlier.read_text() == '{"step": 0}\n' and sorted(out.iterdir()) == [earlier]


def test_pack_flash_run_over_the_pty_with_faults_in_every_domain(
    checkpoint_dir, board_url, tmp_path, capsys
) -> None:
    image = tmp_path / "model.glc"
    assert main(["pack", str(checkpoint_dir), "--out", str(image)]) == 0
    assert main(["flash", "--port", board_url, str(image), "--json"]) == 0
    flashed = json.loads(capsys.readouterr().out)
    assert flashed["bytes"] == image.stat().st_size
    out = tmp_path / "run"
    code = main(
        ["run", "--port", board_url, "--episodes", "2", "--steps", "40", "--out", str(out)]
        + ["--image", str(image), "--json"]
        + ["--fault", "robot:gain-loss:joint=0,gain=0.4,onset=10"]
        + ["--fault", "board:stuck-zero:core=0,fraction=0.1,onset=20"]
        + ["--fault", "link:corrupt:rate=0.0005,onset=5,duration=20"]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in summary["runs"]] == ["learning on", "learning off"]
    assert [f["domain"] for f in summary["faults"]] == ["robot", "board", "link"]
    for name in ("telemetry.jsonl", "summary.json", "report.md", "return_aligned.png"):
        assert (out / name).stat().st_size > 0
    lines = (out / "telemetry.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 2 * 40
    faults = [json.loads(line)["faults"] for line in lines[:40]]
    assert faults[9] == [] and faults[10] == ["gain-loss"]


@pytest.mark.slow
def test_demo_end_to_end_under_three_minutes(checkpoint_dir, tmp_path, capsys) -> None:
    started = time.monotonic()
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--checkpoint", str(checkpoint_dir), "--json"]) == 0
    elapsed = time.monotonic() - started
    summary = json.loads(capsys.readouterr().out)
    assert elapsed < 180
    assert summary["flash"]["bytes"] == (out / "model.glc").stat().st_size
    for name in (
        "report.md",
        "episode.gif",
        "spike_raster.png",
        "trace_drift.png",
        "on_vs_off.png",
    ):
        assert (out / name).stat().st_size > 0
    report = (out / "report.md").read_text()
    assert DEMO_FAULT.split(":")[1] in report and "learning off" in report
