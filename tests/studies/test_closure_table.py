"""The torch-only closure table: both teachers score 1 and 0, a row per checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studies.closure_table import evaluate, format_table, main
from train.loop import TrainConfig, train
from train.models import ModelConfig, build_policy
from train.tasks import ArmReachBatch

TINY = dict(batch=4, window=5, episode_steps=10, n_hidden=8, ticks=2, validate_every=2)


def test_closure_table_scores_the_teachers_at_one_and_zero() -> None:
    policy = build_policy(ModelConfig("mlp", ArmReachBatch.n_obs, ArmReachBatch.n_act, 16))
    table = evaluate({"mlp": policy}, episodes=3, kinds=("bias-torque",))
    rows = table["bias-torque"]
    assert rows["teacher_aware"]["closure_steps_50_200"] == pytest.approx(1.0)
    assert rows["teacher_blind"]["closure_first_50"] == pytest.approx(0.0)
    assert rows["mlp"]["steps_50_200"] < rows["teacher_aware"]["steps_50_200"]  # untrained
    assert "| bias-torque | mlp |" in format_table(table)
    trained = evaluate({"mlp": policy}, episodes=3, kinds=("bias-torque",), held_out=False)
    blind = trained["bias-torque"]["teacher_blind"]["steps_50_200"]
    assert blind != pytest.approx(rows["teacher_blind"]["steps_50_200"])  # other magnitudes


@pytest.mark.mujoco
def test_closure_table_on_reacher_scores_the_teachers_at_one_and_zero() -> None:
    pytest.importorskip("mujoco")
    policy = build_policy(ModelConfig("mlp", 10, 2, 16))
    table = evaluate({"mlp": policy}, episodes=2, kinds=("reversed-motor",), task_id="Reacher-v5")
    rows = table["reversed-motor"]
    assert rows["teacher_aware"]["closure_steps_50_200"] == pytest.approx(1.0)
    assert rows["teacher_blind"]["closure_first_50"] == pytest.approx(0.0)
    assert rows["mlp"]["steps_50_200"] < rows["teacher_aware"]["steps_50_200"]  # untrained


def test_each_checkpoint_gets_its_row_when_kinds_repeat(tmp_path: Path, capsys) -> None:
    for name, seed in (("first", 0), ("second", 1)):
        train(TrainConfig(model="mlp", steps=1, seed=seed, **TINY), tmp_path / name)
    paths = [str(tmp_path / "first"), str(tmp_path / "second")]
    assert main([*paths, "--episodes", "2", "--out", str(tmp_path / "table")]) == 0
    table = json.loads((tmp_path / "table" / "closure.json").read_text())
    assert {"mlp (first)", "mlp (second)"} <= set(table["bias-torque"])
    capsys.readouterr()
    assert main([paths[0], paths[0], "--out", str(tmp_path / "table")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "studies.closure_table: error: the table names one checkpoint folder twice; name each once."
    ]
