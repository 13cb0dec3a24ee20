from __future__ import annotations

import argparse
import json

import pytest

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


def test_tiny_few_shot_run_writes_its_report_and_runs_on_the_board(tmp_path, omniglot_dir):
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
        "--board-episodes",
        "2",
    )
    summary = run_scenario(args)
    assert set(summary["summary"]) == {"HP", "GP", "LP", "HP on board", "HP torch-int"}
    record = json.loads((out / "fewshot.json").read_text())
    board = record["runs"][0]["board"]["2-way"]
    assert board["episodes"] == 2
    assert board["board_vs_torch_int_agreement"] == 1.0
    assert (out / "fewshot.png").stat().st_size > 1000
    assert "| HP |" in (out / "fewshot.md").read_text()
    assert (out / "fewshot-hp-seed0.pt").exists()


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
