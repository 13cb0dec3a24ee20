"""glocal run, demo and flash as a user meets them: arguments refused before the port opens,
progress and telemetry per episode, Ctrl-C keeps what was measured, the report's words, the
flash bar and the GIF's labels (issue 17)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import robot_env
from deploy.engines import in_process_board
from deploy.errors import DeployError
from deploy.flash import flash_and_boot
from deploy.pack import pack_checkpoint
from deploy.report import GIF_SIZE, LABEL_HEIGHT, frame_labels, learning_findings, write_gif
from deploy.runner import RunResult
from deploy.session import board_session, default_steps
from firmware_sim.server import Board
from glocal.cli import main
from protocol.client import Client
from protocol.transport import InProcessTransport

ENV = "glocal/ArmReach-v0"


@pytest.mark.parametrize(
    "bad, words",
    [
        (["--fault", "robot:gain-loss:joint=7,gain=0.3"], "joint 7 does not exist"),
        (["--fault", "robot:gain-loss:joint=x"], "'robot:gain-loss:joint=x': joint 'x'"),
        (
            ["--fault", "board:dead-neuron:core=0,fraction=abc"],
            "'board:dead-neuron:core=0,fraction=abc': fraction must be a number, not 'abc'.",
        ),
        (["--fault", "robot:nosuch"], "'robot:nosuch'"),
        (["--env", "glocal/NoSuchEnv-v0"], "cannot make 'glocal/NoSuchEnv-v0'"),
        (["--steps", "0"], "--steps must be at least 1."),
        (["--episodes", "0"], "--episodes must be at least 1."),
    ],
)
def test_run_refuses_bad_arguments_before_the_port_or_out(tmp_path, capsys, bad, words) -> None:
    """The port does not exist: an argument error must come first, and --out stays untouched."""
    out = tmp_path / "run"
    assert main(["run", "--port", str(tmp_path / "no-port"), "--out", str(out), *bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("glocal run: error: ") and words in err
    assert err.count("\n") == 1 and "cannot open" not in err
    assert not out.exists()


def test_a_port_that_does_not_open_is_one_sentence(tmp_path, capsys) -> None:
    port = tmp_path / "no-port"
    assert main(["run", "--port", str(port), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err == f"glocal run: error: cannot open {port}: no such file or directory.\n"


def test_run_help_says_fault_repeats(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "repeat" in " ".join(capsys.readouterr().out.split())


@pytest.fixture
def board_client(checkpoint_dir) -> Any:
    """An in-process board running the small checkpoint, as a protocol client."""
    packed = pack_checkpoint(checkpoint_dir, "tianjic")
    return in_process_board(packed.data, tempfile.mkdtemp(), "tianjic")


class Interrupting:
    """A client that lets ``steps`` STEPs through and then raises Ctrl-C; it also records how
    many telemetry lines were on disk when each STEP was sent."""

    def __init__(self, client: Any, steps: int, telemetry: Path) -> None:
        # not `steps`: that name is the client's STEP ledger, which the runner reads through
        self.client, self.allowed, self.telemetry = client, steps, telemetry
        self.on_disk: list[int] = []

    def step(self, obs: Any) -> Any:
        if len(self.on_disk) == self.allowed:
            raise KeyboardInterrupt
        self.on_disk.append(len(self.telemetry.read_text().splitlines()))
        return self.client.step(obs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_an_interrupted_run_keeps_its_telemetry_and_summary(board_client, tmp_path, capsys):
    out = tmp_path / "run"
    # the runner's first STEP is an untimed warm-up (kernel compilation), never in telemetry
    client = Interrupting(board_client, 1 + 2 * 30 + 7, out / "telemetry.jsonl")
    with pytest.raises(KeyboardInterrupt):
        board_session(client, ENV, 4, [], out, steps=30, learning="on")
    # flushed per episode: each episode's first STEP saw the previous episodes on disk
    assert client.on_disk[1::30] == [0, 30, 60]
    assert len((out / "telemetry.jsonl").read_text().splitlines()) == 2 * 30 + 7
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["runs"][0]["episodes"] == 2
    assert (out / "report.md").exists()
    err = capsys.readouterr().err
    assert "episodes completed: learning on 2" in err
    assert "return " in err and "mean " in err  # the per-episode progress


def test_verbose_runs_flush_telemetry_every_step(board_client, tmp_path) -> None:
    out = tmp_path / "run"
    client = Interrupting(board_client, 100, out / "telemetry.jsonl")
    board_session(client, ENV, 1, [], out, steps=6, learning="off", flush_every_step=True)
    assert client.on_disk[1:] == [0, 1, 2, 3, 4, 5]  # after the untimed warm-up STEP


def test_steps_default_to_the_checkpoints_evaluation_and_are_printed(
    board_client, tmp_path, capsys
) -> None:
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "board_table.json").write_text(json.dumps({"steps": 25}))
    assert default_steps({"checkpoint": str(folder / "model.pt")})[0] == 25
    assert default_steps({})[0] is None
    meta = {**board_client.read("image")["meta"], "checkpoint": str(folder / "model.pt")}
    summary = board_session(board_client, ENV, 1, [], tmp_path / "run", image_meta=meta)
    assert summary["steps"] == 25 and summary["runs"][0]["episodes"] == 1
    assert "25 control steps per episode" in capsys.readouterr().err


def test_the_report_names_image_port_fault_and_units_from_the_board(board_client, tmp_path):
    fault = "robot:bias-torque:joint=1,bias=0.35,onset=10"
    board_session(board_client, ENV, 1, [fault], tmp_path, steps=20, port="/dev/ttyX")
    report = (tmp_path / "report.md").read_text()
    sha = board_client.read("image")["sha256"].hex()
    for words in (sha[:16], "/dev/ttyX", fault, "float units", "20 control steps"):
        assert words in report


def test_a_board_fault_on_a_core_the_image_lacks_is_refused_before_out(board_client, tmp_path):
    from deploy.errors import DeployError

    with pytest.raises(DeployError, match="core=9, but the booted image uses cores 0, 1"):
        board_session(board_client, ENV, 1, ["board:dead-neuron:core=9"], tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_flash_bar_draws_its_last_line_once(checkpoint_dir, capsys) -> None:
    board = Board(tempfile.mkdtemp(), "tianjic")
    link = InProcessTransport(board.responder.feed)
    link.open()
    flash_and_boot(Client(link), pack_checkpoint(checkpoint_dir, "tianjic").data)
    assert capsys.readouterr().err.count("100%") == 1


def result(rewards: list[list[float]], label: str, onset: int) -> RunResult:
    rows = np.array(rewards, float)
    return RunResult(label, True, rows, [onset] * len(rows), np.zeros_like(rows))


def test_findings_give_the_gain_with_a_ci_and_the_teachers() -> None:
    on = result([[0, 0, -1, -1], [0, 0, -1, -2]], "learning on", 2)
    off = result([[0, 0, -2, -2], [0, 0, -2, -3]], "learning off", 2)
    blind = result([[0, 0, -3, -3], [0, 0, -3, -3]], "teacher-blind", 2)
    aware = result([[0, 0, 0, 0], [0, 0, 0, 0]], "teacher-aware", 2)
    text = learning_findings([on, off], [blind, aware])
    assert "+1.000 per step, 95 % CI +1.000 to +1.000" in text
    assert "learning helps" in text and "-3.000" in text and "closes 58%" in text


def test_the_gif_is_cropped_to_the_arm_and_labelled(tmp_path) -> None:
    env = robot_env.make(ENV, render_mode="rgb_array")
    env.reset(seed=0)
    frames = [env.render() for _ in range(3)]
    env.close()
    episode = result([[0.0] * 12], "learning on", 8)
    labels = frame_labels(episode, 4, 12, len(frames))
    path = write_gif(frames, tmp_path / "e.gif", labels=labels)
    raw = frames[0].astype(int)
    raw_drawn = (np.abs(raw - raw[0, 0]).sum(axis=2) > 30).mean()
    gif = Image.open(path)
    assert gif.size == (GIF_SIZE, GIF_SIZE + LABEL_HEIGHT) and gif.n_frames == 3
    for k, (*_, alarm) in enumerate(labels):
        gif.seek(k)
        frame = np.asarray(gif.convert("RGB")).astype(int)
        strip, scene = frame[:LABEL_HEIGHT], frame[LABEL_HEIGHT:]
        assert (strip.sum(axis=2) < 300).any()  # text was drawn in the label strip
        assert (np.abs(strip[..., 0] - strip[..., 1]) > 100).any() == alarm  # red once acting
        drawn = (np.abs(scene - scene[0, 0]).sum(axis=2) > 30).mean()
        assert drawn > 2.5 * raw_drawn  # the arm, not the empty canvas, fills the frame
    assert labels[0][0].startswith("step 0/12   learning on   red disc: target")
    assert labels[2] == (
        "step 8/12   learning on   red disc: target",
        "fault from step 8: acting",
        True,
    )


def test_an_image_that_is_not_the_booted_one_is_refused_before_out(checkpoint_dir, tmp_path):
    import hashlib

    packed = pack_checkpoint(checkpoint_dir, "tianjic")
    client = in_process_board(packed.data, tempfile.mkdtemp(), "tianjic")
    meta = dict(packed.image.meta)
    other = hashlib.sha256(packed.data + b"another image").hexdigest()
    with pytest.raises(DeployError, match="--image has sha256 .* but the board runs"):
        board_session(client, ENV, 1, [], tmp_path / "run", image_meta=meta, image_sha256=other)
    assert not (tmp_path / "run").exists()
    same = hashlib.sha256(packed.data).hexdigest()
    summary = board_session(
        client, ENV, 1, [], tmp_path / "run", steps=5, image_meta=meta, image_sha256=same
    )
    assert summary["image"]["sha256"] == same
