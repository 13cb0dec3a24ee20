"""glocal evaluate: the checkpoint's task, its held-out bands, --fault rows, one-sentence errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import deploy.evaluate
from deploy.errors import DeployError
from deploy.evaluate import ENV, TaskEnv, robot_spec, task_of
from glocal.cli import EXIT_USAGE, main
from tests.deploy.conftest import train_small
from train.fault_batch import BANDS, REACHER_BANDS


def test_the_task_comes_from_the_checkpoint_or_env_and_never_both_apart() -> None:
    assert task_of("Reacher-v5", None) == "Reacher-v5"
    assert task_of("unknown", "Reacher-v5") == "Reacher-v5"
    assert task_of("unknown", None) == ENV
    assert task_of(ENV, ENV) == ENV
    with pytest.raises(DeployError, match="trained on glocal/ArmReach-v0, not Reacher-v5"):
        task_of(ENV, "Reacher-v5")
    with pytest.raises(DeployError, match="unknown task 'Nope-v0'"):
        TaskEnv("Nope-v0")


def test_armreach_specs_are_drawn_and_written_as_before() -> None:
    """The ArmReach table's episodes must not change: same draws, same strings."""
    for kind, key in (("gain-loss", "gain"), ("bias-torque", "bias"), ("payload", "mass")):
        rng, old = np.random.default_rng(4), np.random.default_rng(4)
        for _ in range(5):
            value = old.uniform(*BANDS[kind][1])
            joint = int(old.integers(0, 2))
            if kind == "bias-torque":
                value *= old.choice([-1.0, 1.0])
            target = "" if kind == "payload" else f"joint={joint},"
            expected = f"robot:{kind}:{target}{key}={value:.4f},onset=100"
            assert robot_spec(kind, rng, 100) == expected


def test_reacher_specs_use_reacher_held_out_bands() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        spec = robot_spec("payload", rng, 100, REACHER_BANDS)
        mass = float(spec.split("mass=")[1].split(",")[0])
        assert REACHER_BANDS["payload"][1][0] <= mass <= REACHER_BANDS["payload"][1][1]


def one_sentence(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("glocal evaluate: error: ")
    return err[0]


def test_bad_input_is_one_sentence(tmp_path: Path, capsys) -> None:
    argv = ["evaluate", "--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "out")]
    assert main(argv) == EXIT_USAGE
    one_sentence(capsys)


@pytest.mark.parametrize(
    "spec,sentence",
    [
        ("robot:reversed-motr:joint=0", "unknown robot fault kind 'reversed-motr'"),
        ("board:dead-neuron:core=0,fraction=0.1", "is for domain 'board', not 'robot'"),
        ("robot:gain-loss:joint=0,gain=0.3,mass=2", "gain-loss does not take mass"),
    ],
)
def test_a_bad_fault_is_refused_before_anything_runs(spec, sentence, monkeypatch, capsys):
    def never(*args, **kwargs):
        raise AssertionError("the checkpoint was packed before --fault was checked")

    monkeypatch.setattr(deploy.evaluate, "pack_checkpoint", never)
    assert main(["evaluate", "--fault", spec, "--episodes", "2"]) == EXIT_USAGE
    assert sentence in one_sentence(capsys)
    good = "robot:reversed-motor:joint=0,gain=-1,onset=100"
    assert main(["evaluate", "--fault", good, "--parts", "board"]) == EXIT_USAGE
    assert "add robot to --parts" in one_sentence(capsys)


@pytest.mark.slow
@pytest.mark.hil
def test_a_fault_row_on_the_shipped_checkpoint_prints_every_controller_and_closure(capsys):
    spec = "robot:reversed-motor:joint=0,gain=-1,onset=100"
    argv = ["evaluate", "--fault", spec, "--episodes", "2", "--steps", "150", "--parts", "robot"]
    assert main([*argv, "--json"]) == 0
    out, err = capsys.readouterr()
    table = json.loads(out)
    assert table["env"] == ENV and table["board"] is None and table["episodes"] == 2
    rows = table["robot"][spec]
    assert set(table["robot"]) == {spec} and set(rows) == set(deploy.evaluate.ROBOT_COLUMNS)
    assert all(np.isfinite(row["reward_after_onset"]) for row in rows.values())
    assert all(np.isfinite(row["closure"]) for row in rows.values())
    assert rows["teacher-blind"]["closure"] == pytest.approx(0.0)
    assert rows["teacher-aware"]["closure"] == pytest.approx(1.0)
    assert "2/2" in err  # progress per episode


@pytest.mark.mujoco
def test_reacher_episodes_outlast_reacher_own_50_steps() -> None:
    pytest.importorskip("mujoco")
    from deploy.evaluate import TeacherController
    from deploy.faults import route_faults

    plan = route_faults([robot_spec("reversed-motor", np.random.default_rng(0), 20, REACHER_BANDS)])
    task = TaskEnv("Reacher-v5")
    returns = {}
    for aware in (False, True):
        result = task.run(TeacherController(aware), plan, seed=3, steps=80, learning=True)
        assert result.rewards.shape == (1, 80) and np.isfinite(result.rewards).all()
        returns[aware] = float(result.rewards[0, 20:].mean())
    assert returns[True] > returns[False] + 0.1


@pytest.mark.slow
@pytest.mark.hil
@pytest.mark.mujoco
def test_reacher_robot_table_runs_on_the_board_over_a_pty(tmp_path: Path) -> None:
    pytest.importorskip("mujoco")
    checkpoint = train_small(
        tmp_path / "reacher", task="Reacher-v5", steps=2, batch=2, window=5, episode_steps=10
    )
    out = tmp_path / "table"
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--episodes", "1", "--steps", "60"]
    assert main([*argv, "--onset", "20", "--parts", "robot", "--out", str(out)]) == 0
    table = json.loads((out / "closing_table.json").read_text())
    assert table["env"] == "Reacher-v5" and table["board"] is None
    assert "| reversed-motor | " in (out / "closing_table.md").read_text()
    for kind in ("reversed-motor", "gain-loss", "bias-torque", "payload"):
        rows = table["robot"][kind]
        assert set(rows) == set(deploy.evaluate.ROBOT_COLUMNS)
        assert all(np.isfinite(row["reward_after_onset"]) for row in rows.values())


def test_chip_faults_choose_the_board_rows(tmp_path: Path, capsys) -> None:
    checkpoint = train_small(tmp_path / "arm", steps=2, batch=2, window=5, episode_steps=10)
    out = tmp_path / "table"
    spec = "board:dead-neuron:core=1,fraction=0.5"
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--episodes", "1", "--steps", "30"]
    argv += ["--onset", "10", "--parts", "board", "--readout-copies", "2", "--out", str(out)]
    argv += ["--chip-faults", spec]
    assert main(argv) == 0
    table = json.loads((out / "closing_table.json").read_text())
    assert table["readout_copies"] == 2 and table["robot"] is None
    for row in table["board"].values():
        assert list(row) == ["fault-free", spec]
        assert np.isfinite(row[spec]["relative_return"])
    assert "readout copies 2" in (out / "closing_table.md").read_text()
    capsys.readouterr()
    for bad in ("board:melted:core=1", f"{spec},onset=5"):
        assert main([*argv[:-1], bad]) == EXIT_USAGE
        one_sentence(capsys)
