from __future__ import annotations

import argparse
import json
import os

import pytest
import torch

from glocal import cli
from train.errors import TrainError
from train.scenarios.cli import register_scenario, run_scenario
from train.scenarios.fewshot import PROTOTYPE, FeatureExtractor


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register_scenario(parser.add_subparsers(), parents=[])
    return parser.parse_args(["scenario", *argv])


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
    args = _args("few-shot", "--out", str(tmp_path), *argv)
    with pytest.raises(TrainError, match=message):
        run_scenario(args)


def test_missing_omniglot_is_a_clear_error(tmp_path):
    args = _args(
        "few-shot",
        "--out",
        str(tmp_path / "o"),
        "--data-root",
        str(tmp_path / "none"),
    )
    with pytest.raises(TrainError, match="no Omniglot folder"):
        run_scenario(args)


def test_tiny_few_shot_run_writes_its_report_and_the_hp_checkpoint(tmp_path, omniglot_dir):
    out = tmp_path / "out"
    args = _args(
        "few-shot",
        "--seeds",
        "0",
        "--out",
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
    assert set(summary["summary"]) == {"HP", "GP", "LP", PROTOTYPE}
    assert summary["mkl_cbwr"] == os.environ["MKL_CBWR"]  # reproducible products, recorded
    record = json.loads((out / "fewshot.json").read_text())
    assert "board" not in record["runs"][0]  # train never runs the board
    assert (out / "fewshot.png").stat().st_size > 1000
    assert "| HP |" in (out / "fewshot.md").read_text()
    checkpoint = torch.load(out / "fewshot-hp-seed0.pt", weights_only=False)
    assert checkpoint["scenario"] == "few-shot" and checkpoint["seed"] == 0
    assert checkpoint["split"] == {"kind": "characters", "seed": 0, "test_fraction": 0.33}
    assert checkpoint["extractor"] and checkpoint["rule"]
    gp = torch.load(out / "fewshot-gp-seed0.pt", weights_only=False)  # GP beside it, no rule
    assert gp["model"] == "GP" and gp["split"] == checkpoint["split"] and "rule" not in gp
    FeatureExtractor(gp["config"]["n_features"], gp["config"]["image_size"]).load_state_dict(
        gp["extractor"]
    )


def test_alphabet_split_meta_tests_on_an_unseen_alphabet(tmp_path, omniglot_dir):
    out = tmp_path / "out"
    tiny = ["--seeds", "0", "--data-root", str(omniglot_dir), "--iterations", "1"]
    args = _args("few-shot", "--out", str(out), "--split", "alphabets", *tiny, "--ways", "2")
    run_scenario(args)
    record = json.loads((out / "fewshot.json").read_text())
    assert record["split"] == "alphabets" and len(record["test_alphabets"]) == 1
    assert "alphabets never seen" in (out / "fewshot.md").read_text()
    checkpoint = torch.load(out / "fewshot-hp-seed0.pt", weights_only=False)
    assert checkpoint["split"]["kind"] == "alphabets"
    with pytest.raises(TrainError, match="unknown split"):
        run_scenario(_args("few-shot", "--out", str(out), "--split", "x", *tiny))


def test_reproducible_blas_leaves_a_branch_the_user_chose(monkeypatch):
    from train.scenarios.common import MKL_BRANCH, reproducible_blas

    monkeypatch.setenv("MKL_CBWR", "AVX2")
    assert reproducible_blas() == "AVX2"
    monkeypatch.delenv("MKL_CBWR")
    assert reproducible_blas() == MKL_BRANCH == os.environ["MKL_CBWR"]


def test_board_episodes_is_no_scenario_option():
    with pytest.raises(SystemExit):
        _args("few-shot", "--board-episodes", "2")


def test_glocal_scenario_runs_into_out(tmp_path, omniglot_dir, capsys):
    tiny = ["--seeds", "0", "--data-root", str(omniglot_dir), "--iterations", "1"]
    tiny += ["--test-episodes", "1", "--ways", "2", "--threads", "1"]
    out = tmp_path / "out"
    assert cli.main(["scenario", "few-shot", "--out", str(out), "--json", *tiny]) == 0
    assert (out / "fewshot.json").exists() and (out / "fewshot-hp-seed0.pt").exists()
    assert set(json.loads(capsys.readouterr().out)["summary"]) == {"HP", "GP", "LP", PROTOTYPE}


def test_glocal_scenario_help_names_the_scenarios(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["scenario", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: glocal scenario ")
    for name in ("few-shot", "continual", "fault-tolerant", "few-shot-runs"):
        assert f"\n    {name}" in out
    with pytest.raises(SystemExit):
        cli.main(["scenario", "few-shot", "--help"])
    assert "--seeds" in capsys.readouterr().out


def test_train_no_longer_runs_scenarios_or_tables(tmp_path, capsys):
    for option in (["--scenario", "few-shot"], ["--evaluate", str(tmp_path)]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["train", "--out", str(tmp_path), *option])
        assert exit_info.value.code == cli.EXIT_USAGE
        assert "unrecognized arguments" in capsys.readouterr().err
