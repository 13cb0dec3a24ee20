from __future__ import annotations

import argparse
import json

import pytest
import torch

from train.errors import TrainError
from train.scenarios.cli import add_scenario_arguments, output_folder, run_scenario


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_scenario_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--seeds", "a,b"], "comma-separated integers"),
        (["--seeds", ""], "at least 0"),
        (["--ways", "1"], "at least 2"),
        (["--test-episodes", "-1"], "must not be negative"),
        (["--iterations", "0"], "at least 1"),
    ],
)
def test_bad_options_are_one_sentence(tmp_path, argv, message):
    args = _args("--scenario", "few-shot", "--scenario-out", str(tmp_path), *argv)
    with pytest.raises(TrainError, match=message):
        run_scenario(args)


def test_missing_omniglot_is_a_clear_error(tmp_path):
    args = _args(
        "--scenario",
        "few-shot",
        "--scenario-out",
        str(tmp_path / "o"),
        "--data-root",
        str(tmp_path / "none"),
    )
    with pytest.raises(TrainError, match="no Omniglot folder"):
        run_scenario(args)


def test_tiny_few_shot_run_writes_its_report_and_the_hp_checkpoint(tmp_path, omniglot_dir):
    out = tmp_path / "out"
    args = _args(
        "--scenario",
        "few-shot",
        "--seeds",
        "0",
        "--scenario-out",
        str(out),
        "--data-root",
        str(omniglot_dir),
        "--iterations",
        "2",
        "--test-episodes",
        "2",
        "--ways",
        "2",
    )
    summary = run_scenario(args)
    assert set(summary["summary"]) == {"HP", "GP", "LP"}
    record = json.loads((out / "fewshot.json").read_text())
    assert "board" not in record["runs"][0]  # train never runs the board
    assert (out / "fewshot.png").stat().st_size > 1000
    assert "| HP |" in (out / "fewshot.md").read_text()
    checkpoint = torch.load(out / "fewshot-hp-seed0.pt", weights_only=False)
    assert checkpoint["scenario"] == "few-shot" and checkpoint["seed"] == 0
    assert checkpoint["split"] == {"seed": 0, "test_fraction": 0.33}
    assert checkpoint["extractor"] and checkpoint["rule"]


def test_board_episodes_is_no_longer_a_train_option():
    with pytest.raises(SystemExit):
        _args("--scenario", "few-shot", "--board-episodes", "2")


def test_scenario_options_fit_beside_the_robot_training_options(tmp_path):
    """train's parser has --out (required), --seed and --episodes: no clash, --out is used."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=100)
    add_scenario_arguments(parser)
    args = parser.parse_args(
        ["--out", str(tmp_path / "o"), "--scenario", "few-shot", "--seed", "3", "--seeds", "x"]
    )
    assert args.seed == 3 and args.episodes == 100 and args.scenario_out is None
    assert output_folder(args) == tmp_path / "o"
    with pytest.raises(TrainError, match="--seeds"):
        run_scenario(args)


def test_glocal_train_runs_a_scenario_into_out_or_scenario_out(tmp_path, omniglot_dir):
    """Wired into ``glocal train``: its --out is the folder unless --scenario-out is given."""
    from glocal import cli

    tiny = ["--seeds", "0", "--data-root", str(omniglot_dir), "--iterations", "1"]
    tiny += ["--test-episodes", "1", "--ways", "2", "--threads", "1"]
    out = tmp_path / "out"
    assert cli.main(["train", "--scenario", "few-shot", "--out", str(out), *tiny]) == 0
    assert (out / "fewshot.json").exists() and (out / "fewshot-hp-seed0.pt").exists()
    other = tmp_path / "other"
    argv = ["train", "--scenario", "few-shot", "--out", str(out / "x"), "--scenario-out"]
    assert cli.main([*argv, str(other), *tiny]) == 0
    assert (other / "fewshot.json").exists() and not (out / "x").exists()
