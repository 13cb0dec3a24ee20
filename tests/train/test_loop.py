"""Meta-training at tiny sizes: outputs, resume, bad input, the fault mix and both teachers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from glocal.cli import main
from train.arm_batch import ArmReachBatch
from train.checkpoint import load_policy, read_checkpoint
from train.errors import TrainError
from train.fault_batch import BANDS, TRAINED_KINDS, FaultBatch
from train.loop import TrainConfig, train

TINY = dict(batch=4, window=5, episode_steps=10, n_hidden=8, ticks=2, validate_every=2)


def test_train_writes_checkpoint_metrics_and_plots_and_resumes(tmp_path: Path) -> None:
    cfg = TrainConfig(model="hp", steps=3, checkpoint_every=2, **TINY)
    summary = train(cfg, tmp_path)
    for name in ("model.pt", "resume.pt", "config.json", "metrics.json", "loss.png"):
        assert (tmp_path / name).stat().st_size > 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["history"]["loss"]) == 3 and np.isfinite(summary["final_loss"])
    record = read_checkpoint(tmp_path)
    assert record["network"]["plastic"] and 0 < record["network"]["lam"] < 1
    assert record["network"]["w_hidden"].shape == (10 + 8, 8)

    longer = train(TrainConfig(model="hp", steps=5, checkpoint_every=2, **TINY), tmp_path)
    assert longer["steps"] == 5
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["history"]["step"] == [1, 2, 3, 4, 5]
    policy, _ = load_policy(tmp_path)
    assert policy.config.kind == "hp"


def test_a_save_killed_mid_write_leaves_the_previous_model(tmp_path: Path, monkeypatch) -> None:
    import torch

    from train import checkpoint

    train(TrainConfig(model="mlp", steps=2, **TINY), tmp_path)
    before = (tmp_path / "model.pt").read_bytes()
    policy, record = load_policy(tmp_path)

    def killed(obj, path) -> None:
        Path(path).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_model(tmp_path / "model.pt", policy, record["train"], 3)
    assert (tmp_path / "model.pt").read_bytes() == before


def test_resume_refuses_a_different_configuration(tmp_path: Path) -> None:
    train(TrainConfig(model="mlp", steps=2, checkpoint_every=1, **TINY), tmp_path)
    with pytest.raises(TrainError, match="different configuration"):
        train(TrainConfig(model="mlp", steps=2, lr=0.1, **TINY), tmp_path)


def test_cli_turns_bad_input_into_one_sentence(tmp_path: Path, capsys) -> None:
    code = main(["train", "--model", "hp", "--out", str(tmp_path), "--steps", "0"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "glocal train: error: steps, batch and window must be positive."
    assert main(["train", "--out", str(tmp_path), "--model", "snn"]) == 2
    assert "model must be one of hp, gp, lp, lstm, mlp, not 'snn'." in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path), "--p-none", "1.5"]) == 2
    assert "p_none must lie in [0, 1]" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path), "--kinds", "friction"]) == 2
    assert "kinds must be a subset of" in capsys.readouterr().err


def test_train_options_are_the_config_fields_with_their_defaults() -> None:
    from glocal.cli import build_parser
    from train.cli import config_from

    parser = build_parser()
    assert config_from(parser.parse_args(["train", "--out", "x"])) == TrainConfig()
    argv = ["train", "--out", "x", "--hidden", "16", "--integral-readout", "8", "--onset", "5"]
    argv += ["40", "--kinds", "payload", "gain-loss", "--quantized", "--init-from", "a/b"]
    cfg = config_from(parser.parse_args(argv))
    assert (cfg.n_hidden, cfg.integral_shift, cfg.onset) == (16, 8, (5, 40))
    assert (cfg.kinds, cfg.quantized, cfg.init_from) == (("payload", "gain-loss"), True, "a/b")


def test_curriculum_starts_fault_free_and_the_trace_penalty_counts_only_calm_episodes() -> None:
    import torch

    from train.loop import Rollout, model_config
    from train.models import build_policy

    def window(**overrides) -> tuple[Rollout, float]:
        cfg = TrainConfig(model="hp", steps=4, **{**TINY, **overrides})
        policy = build_policy(model_config(cfg), seed=0)
        rollout = Rollout(cfg, policy, seed=5, device=torch.device("cpu"))
        return rollout, float(rollout.window_loss(beta=0.0).detach())

    clean, plain = window(clean_steps=2, p_none=0.0)
    assert (clean.env.faults.kind == "none").all()
    penalised = window(clean_steps=2, p_none=0.0, trace_penalty=10.0)[1]
    assert penalised > plain * 1.001  # fault-free: the trace's drift is charged
    # every fault acting from step 0: nothing is calm, so the penalty adds nothing
    faulted = window(p_none=0.0, onset=(0, 0))[1]
    assert window(p_none=0.0, onset=(0, 0), trace_penalty=10.0)[1] == pytest.approx(faulted)


def test_chip_fault_training_masks_only_training_windows() -> None:
    from dataclasses import replace

    import torch

    from train.loop import Rollout, model_config
    from train.models import build_policy

    def rollout(cfg: TrainConfig) -> Rollout:
        return Rollout(cfg, build_policy(model_config(cfg), seed=0), 5, torch.device("cpu"))

    cfg = TrainConfig(model="hp", steps=4, stuck_synapses=0.5, dead_neurons=0.5, **TINY)
    faulty, healthy = rollout(cfg), rollout(replace(cfg, stuck_synapses=0.0, dead_neurons=0.0))
    faults = faulty.chip_faults
    assert faults is not None and faults.hidden_keep.shape == (4, 10 + 8, 8)
    stuck = 1 - faults.hidden_keep.mean(dim=(1, 2))
    dead = 1 - faults.hidden_alive.mean(dim=1)
    assert faults.faulty.tolist() == ((stuck > 0) | (dead > 0)).tolist()
    assert faults.faulty.any() and float(stuck.max()) < 0.5 + 0.15
    assert healthy.chip_faults is None
    loss = float(faulty.window_loss(0.0).detach())
    assert loss != pytest.approx(float(healthy.window_loss(0.0).detach()))
    assert faulty.policy.chip_faults is None  # evaluation and checkpoints see a healthy chip
    with pytest.raises(TrainError, match="spiking models"):
        TrainConfig(model="lstm", stuck_synapses=0.1, **TINY)
    with pytest.raises(TrainError, match="fractions"):
        TrainConfig(model="hp", dead_neurons=1.5, **TINY)
    with pytest.raises(TrainError, match="only hp and lp"):
        TrainConfig(model="gp", modulator=True, **TINY)
    with pytest.raises(TrainError, match="only hp, gp and lp"):
        TrainConfig(model="mlp", integral_shift=8, **TINY)
    with pytest.raises(TrainError, match="must lie in 3-23 .* not 2"):
        TrainConfig(model="gp", integral_shift=2, **TINY)


def test_a_second_stage_starts_from_the_first_stages_weights(tmp_path: Path) -> None:
    import torch

    first, second = tmp_path / "float", tmp_path / "quantized"
    train(TrainConfig(model="hp", steps=2, **TINY), first)
    # lr 0: the second stage changes nothing, so it must hold exactly the first stage's tensors
    train(
        TrainConfig(
            model="hp", steps=1, lr=0.0, quantized=True, init_from=str(first), seed=3, **TINY
        ),
        second,
    )
    a, b = read_checkpoint(first)["state_dict"], read_checkpoint(second)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_checkpoint(second)["config"]["quantized"]
    with pytest.raises(TrainError, match="must match"):
        train(TrainConfig(model="gp", steps=1, init_from=str(first), **TINY), tmp_path / "gp")
    assert main(["train", "--out", str(tmp_path / "x"), "--beta-start", "2"]) == 2


def test_a_bad_init_from_fails_before_progress_or_output(tmp_path: Path, capsys) -> None:
    first = tmp_path / "float"
    train(TrainConfig(model="hp", steps=1, **TINY), first)
    capsys.readouterr()
    tiny = ["--steps", "1", "--batch", "4", "--window", "5", "--episode-steps", "10"]
    tiny += ["--ticks", "2", "--hidden", "8"]
    for init_from, flags, sentence in (
        (first, ["--hidden", "16"], "must match this run's hp policy with 16"),
        (first, ["--model", "gp"], "must match this run's gp policy with 8"),
        (first, ["--modulator"], "this run's hp policy with 8 hidden units and a modulator"),
        (
            first,
            ["--integral-readout", "8"],
            "this run's hp policy with 8 hidden units and an integral readout (shift 8)",
        ),
        (tmp_path / "missing", [], "no checkpoint at"),
    ):
        out = tmp_path / "second"
        argv = ["train", "--out", str(out), *tiny, *flags, "--init-from", str(init_from)]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert sentence in err and len(err.strip().splitlines()) == 1
        assert "upd/s" not in err and "train hp" not in err and "train gp" not in err
        assert not out.exists()  # not even an empty folder
    with pytest.raises(TrainError, match="must match"):
        train(
            TrainConfig(model="hp", steps=1, init_from=str(first), **TINY | {"n_hidden": 16}), out
        )
    assert not out.exists()


def test_trace_decay_starts_from_the_configured_logit() -> None:
    import torch

    from train.loop import model_config
    from train.models import build_policy

    for logit, lam in ((3.0, 0.9526), (5.0, 0.9933)):
        policy = build_policy(model_config(TrainConfig(model="hp", lam_logit=logit, **TINY)))
        assert float(torch.sigmoid(policy.lam_logit.detach())) == pytest.approx(lam, abs=1e-4)


def test_evaluation_magnitudes_are_never_trained_on() -> None:
    rng = np.random.default_rng(0)
    for kind in TRAINED_KINDS:
        train_mix = FaultBatch.sample(rng, 500, (kind,), held_out=False, onset=10)
        low, high = BANDS[kind][1]
        inside = (np.abs(train_mix.magnitude) >= abs(low)) & (
            np.abs(train_mix.magnitude) <= abs(high)
        )
        assert not inside.any(), kind
        held = FaultBatch.sample(rng, 100, (kind,), held_out=True, onset=10)
        lo, hi = sorted((abs(low), abs(high)))
        assert ((np.abs(held.magnitude) >= lo) & (np.abs(held.magnitude) <= hi)).all()


def test_fault_aware_teacher_beats_the_blind_one_on_a_reversed_motor() -> None:
    faults = FaultBatch.sample(np.random.default_rng(1), 16, ("reversed-motor",), True, 5)
    returns = {}
    for aware in (False, True):
        env = ArmReachBatch(faults, seed=3)
        total = 0.0
        for _ in range(60):
            _, r = env.step(env.teacher(aware))
            total += r.mean()
        returns[aware] = total
    assert returns[True] > returns[False] + 5.0


@pytest.mark.slow
def test_torchrun_two_processes_train_data_parallel(tmp_path: Path) -> None:
    args = ["--model", "gp", "--steps", "6", "--batch", "4", "--window", "5", "--hidden", "8"]
    args += ["--ticks", "2", "--json", "--no-resume"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"n{n}"
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}"]
        command += ["--master_port", str(29500 + n), "-m", "glocal", "train", "--out", str(out)]
        done = subprocess.run(
            command + args, capture_output=True, text=True, timeout=240, env=env, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
        runs[n] = json.loads((out / "metrics.json").read_text())["summary"]
    assert runs[1]["processes"] == 1 and runs[2]["processes"] == 2
    assert 0.3 < runs[2]["final_loss"] / runs[1]["final_loss"] < 3.0
