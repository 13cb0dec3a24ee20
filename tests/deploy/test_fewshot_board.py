"""The few-shot binding layer on the emulated board: bit-exact with torch's integer model, and
``glocal fewshot-board`` on what ``glocal train --scenario few-shot`` saves."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from deploy.errors import DeployError
from deploy.fewshot_board import (
    EPISODE_SEED_OFFSET,
    BoardEpisodes,
    fewshot_board,
    quantise_binding,
    torch_board_scores,
)
from glocal import cli
from tests.train.scenarios.conftest import TINY, features, omniglot_dir  # noqa: F401
from train.scenarios.fewshot import BindingRule, FewShotConfig


@pytest.mark.parametrize("n_way", [3, 20])
def test_board_binding_is_bit_exact_with_torch_integer_numerics(n_way):
    """The on-chip trace after the support set equals train's integer model, entry for entry."""
    dim = 12
    cfg = FewShotConfig(n_features=dim)
    rule = BindingRule(dim, cfg)
    with torch.no_grad():
        rule.eta.copy_(torch.linspace(-0.02, 0.06, dim))
        rule.w_feat.copy_(torch.linspace(-0.1, 0.1, dim))
        rule.beta.fill_(0.3)
    binding = quantise_binding(rule, n_way, input_scale=8)
    f_s, f_q = features(n_way, dim, 2).unsqueeze(0), features(n_way, dim, 3).unsqueeze(0)
    trace, scores = torch_board_scores(binding, f_s, f_q, cfg.ticks)
    board = BoardEpisodes(binding, cfg.ticks)
    board_trace = board.bind(f_s[0].double().numpy())
    assert np.count_nonzero(board_trace) > 0
    np.testing.assert_array_equal(board_trace, trace[0].numpy().astype(np.int16))
    board_scores = board.scores(f_q[0].double().numpy())
    # spike counts agree exactly; the membrane part only differs by the 1-unit rest residue
    np.testing.assert_array_equal(np.floor(board_scores + 1), np.floor(scores[0].numpy() + 1))
    np.testing.assert_allclose(board_scores, scores[0].numpy(), atol=2 / binding.tables["theta"][0])


def _scenario_run(out: Path, data_root: Path, seeds: list[int]) -> None:
    """What ``glocal train --scenario few-shot`` writes, at a tiny size."""
    from train.scenarios.runner import run_fewshot

    run_fewshot(TINY, seeds, out, data_root, ways=(2,))


def test_verb_runs_the_scenarios_checkpoints_on_the_board(tmp_path, omniglot_dir, capsys):  # noqa: F811
    run = tmp_path / "run"
    run.mkdir()
    _scenario_run(run, omniglot_dir, [0, 1])
    report = tmp_path / "report"
    code = cli.main(
        ["fewshot-board", str(run), "--ways", "2", "--episodes", "3", "--data-root",
         str(omniglot_dir), "--out", str(report), "--json"]
    )  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert [r["seed"] for r in summary["runs"]] == [0, 1]
    for r in summary["runs"]:
        assert r["episode_seed"] == EPISODE_SEED_OFFSET + r["seed"]
        two = r["ways"]["2-way"]
        assert two["episodes"] == 3
        # on-chip learning decides every query exactly as torch's integer model does
        assert two["board_vs_torch_int_agreement"] == 1.0
        assert two["board_accuracy"] == two["torch_int_accuracy"]
        for name in ("board", "torch_int", "torch_float"):
            assert 0.0 <= two[f"{name}_accuracy"] <= 1.0
            assert two[f"{name}_ci95"] >= 0.0
    written = json.loads((report / "fewshot-board.json").read_text())
    assert written["runs"] == summary["runs"]
    table = (report / "fewshot-board.md").read_text()
    assert table.count("| 2-way |") == 2 and "torch float" in table

    # one checkpoint file and an explicit episode seed
    one = fewshot_board(
        run / "fewshot-hp-seed1.pt", [2], episodes=2, seed=5, data_root=omniglot_dir
    )
    assert len(one["runs"]) == 1 and one["runs"][0]["episode_seed"] == 5 and "out" not in one


def test_bad_input_is_one_sentence(tmp_path, omniglot_dir, capsys):  # noqa: F811
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DeployError, match="holds no fewshot-hp-seed"):
        fewshot_board(empty, [2], 1, data_root=omniglot_dir)
    with pytest.raises(DeployError, match="no few-shot checkpoint or run folder"):
        fewshot_board(tmp_path / "missing", [2], 1)
    torch.save({"format": "glocal-scenario-checkpoint", "scenario": "continual"}, empty / "c.pt")
    with pytest.raises(DeployError, match="not few-shot"):
        fewshot_board(empty / "c.pt", [2], 1)
    (empty / "junk.pt").write_bytes(b"junk")
    with pytest.raises(DeployError, match="not a readable"):
        fewshot_board(empty / "junk.pt", [2], 1)
    with pytest.raises(DeployError, match="at least 2"):
        fewshot_board(empty / "c.pt", [1], 1)
    with pytest.raises(DeployError, match="--episodes"):
        fewshot_board(empty / "c.pt", [2], 0)
    with pytest.raises(DeployError, match="neurons"):
        fewshot_board(empty / "c.pt", [300], 1)
    torch.save(
        {
            "format": "glocal-scenario-checkpoint",
            "scenario": "few-shot",
            "config": asdict(TINY),
            "seed": 0,
            "rule": BindingRule(TINY.n_features, TINY).state_dict(),
            "extractor": {},
        },
        empty / "rule-only.pt",
    )
    with pytest.raises(DeployError, match="no feature extractor"):
        fewshot_board(empty / "rule-only.pt", [2], 1)
    assert cli.main(["fewshot-board", str(empty), "--ways", "2"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("glocal fewshot-board: error:") and "Traceback" not in err
