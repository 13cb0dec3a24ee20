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
from tests.train.scenarios.conftest import (  # noqa: F401
    TINY,
    drawing,
    features,
    omniglot_dir,
    png_bytes,
    write_omniglot,
)
from train.scenarios.fewshot import PROTOTYPE, BindingRule, FewShotConfig


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


def _write_runs(folder: Path, classes: list[list[bytes]], n_runs: int, n_way: int) -> None:
    """One-shot runs in Lake et al.'s all-runs layout: run r shows classes r*n_way.., the
    first drawing of each as its training image and the second as a test item, the items in a
    shuffled order; run01 names its files with the run folder in front, as the release does."""
    rng = np.random.default_rng(0)
    for r in range(n_runs):
        run = folder / f"run{r + 1:02d}"
        (run / "training").mkdir(parents=True)
        (run / "test").mkdir()
        lines = []
        for item, c in enumerate(rng.permutation(n_way)):
            drawings = classes[r * n_way + c]
            (run / "training" / f"class{c + 1:02d}.png").write_bytes(drawings[0])
            (run / "test" / f"item{item + 1:02d}.png").write_bytes(drawings[1])
            prefix = f"{run.name}/" if r == 0 else ""
            lines.append(
                f"{prefix}test/item{item + 1:02d}.png {prefix}training/class{c + 1:02d}.png"
            )
        (run / "class_labels.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny scenario run's folder (HP and GP of seed 0), trained once for these tests."""
    folder = tmp_path_factory.mktemp("trained")
    _scenario_run(folder, write_omniglot(folder / "omniglot"), [0])
    return folder


def _tiny_checkpoint(tmp_path: Path, trained: Path) -> Path:
    """A copy of the trained run's HP and GP checkpoints (a test may remove one)."""
    import shutil

    for model in ("hp", "gp"):
        shutil.copy(trained / f"fewshot-{model}-seed0.pt", tmp_path)
    return tmp_path / "fewshot-hp-seed0.pt"


def _score(argv: list[str], capsys) -> dict:
    assert cli.main(["scenario", "few-shot-runs", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_few_shot_runs_scores_every_readout_per_run(tmp_path, trained, capsys):
    checkpoint = _tiny_checkpoint(tmp_path, trained)
    classes = [[png_bytes(drawing(c, d)) for d in range(2)] for c in range(6)]
    # the test items are the training images themselves: the prototype readout must name them
    for drawings in classes:
        drawings[1] = drawings[0]
    _write_runs(tmp_path / "runs", classes, n_runs=2, n_way=3)
    summary = _score([str(checkpoint), "--runs", str(tmp_path / "runs")], capsys)
    assert set(summary["mean"]) == {"HP", "HP on board", "GP", PROTOTYPE}
    assert [r["run"] for r in summary["runs"]] == ["run01", "run02"]
    assert all(r["n_way"] == 3 for r in summary["runs"])
    assert summary["mean"][PROTOTYPE] == 1.0
    for name, mean in summary["mean"].items():
        assert mean == pytest.approx(np.mean([r["accuracy"][name] for r in summary["runs"]]))
    assert "| mean |" in summary["table"]
    # without GP beside the checkpoint, the other rows remain
    checkpoint.with_name("fewshot-gp-seed0.pt").unlink()
    assert "GP" not in _score([str(checkpoint), "--runs", str(tmp_path / "runs")], capsys)["mean"]


def test_few_shot_runs_on_runs_built_from_the_shared_subset(tmp_path, trained, capsys):
    """20-way runs of one alphabet of the shared Omniglot subset, drawer 1 against drawer 2."""
    import zipfile

    from train.scenarios.data import default_data_root

    archive = default_data_root() / "omniglot" / "images_background_small2.zip"
    if not archive.is_file():
        pytest.skip(f"the shared Omniglot data is absent ({archive})")
    drawings: dict[str, list[bytes]] = {}
    with zipfile.ZipFile(archive) as zf:
        for name in sorted(zf.namelist()):
            if "/Sanskrit/" in name and name.endswith(("_01.png", "_02.png")):
                drawings.setdefault(name.rsplit("/", 2)[1], []).append(zf.read(name))
    _write_runs(tmp_path / "runs", list(drawings.values()), n_runs=2, n_way=20)
    summary = _score([str(_tiny_checkpoint(tmp_path, trained)), "--runs",
                      str(tmp_path / "runs")], capsys)  # fmt: skip
    assert [r["n_way"] for r in summary["runs"]] == [20, 20]
    for name in ("HP", "HP on board", "GP", PROTOTYPE):
        assert 0.0 <= summary["mean"][name] <= 1.0


def test_few_shot_runs_bad_input_is_one_sentence(tmp_path, trained, capsys):
    checkpoint = _tiny_checkpoint(tmp_path, trained)
    runs = tmp_path / "runs"
    _write_runs(runs, [[png_bytes(drawing(c, d)) for d in range(2)] for c in range(2)], 1, 2)
    labels = runs / "run01" / "class_labels.txt"
    good = labels.read_text()
    (tmp_path / "junk.pt").write_bytes(b"junk")
    cases = [
        ([str(checkpoint), "--runs", str(tmp_path / "none")], "no one-shot runs folder"),
        ([str(checkpoint), "--runs", str(tmp_path)], "holds no runNN/class_labels.txt"),
        ([str(tmp_path / "junk.pt"), "--runs", str(runs)], "not a readable"),
        ([str(tmp_path / "nothing.pt"), "--runs", str(runs)], "no few-shot checkpoint"),
        ([str(checkpoint.with_name("fewshot-gp-seed0.pt")), "--runs", str(runs)], "GP's"),
    ]
    for argv, message in cases:
        assert cli.main(["scenario", "few-shot-runs", *argv]) == cli.EXIT_USAGE
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    for text, message in (("one two three\n", "line 1 is not"), ("test/x.png training/y.png\n",
                          "not a file")):  # fmt: skip
        labels.write_text(text)
        assert cli.main(["scenario", "few-shot-runs", str(checkpoint), "--runs", str(runs)]) == 2
        assert message in capsys.readouterr().err
    labels.write_text(good)
