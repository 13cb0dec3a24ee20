"""The three-factor rule end to end: a modulated checkpoint packs, maps (split or not) and runs on
the board as train's board numerics run it, and exports to ONNX with parity."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from deploy.mapping import map_network
from deploy.onnx_export import export_onnx, parity
from deploy.quantise import load_checkpoint, quantise
from firmware_sim.engine import Engine
from firmware_sim.profiles import Profile, get_profile
from tests.deploy.conftest import board_against_twin, observations, run_engine, train_small

LEVELS = (-0.5, 2.25)  # far from the unmodulated (1, 1), so the modulator visibly matters


@pytest.fixture(scope="module")
def modulated(tmp_path_factory):
    checkpoint = load_checkpoint(train_small(tmp_path_factory.mktemp("mod"), modulator=True))
    with torch.no_grad():
        checkpoint.policy.mod_levels.copy_(torch.tensor(LEVELS))
        checkpoint.policy.eta_pre.mul_(10.0)  # 8 updates leave a weak rule; make it act
    return checkpoint


def test_tables_name_the_last_hidden_neuron_with_q78_levels(modulated) -> None:
    q = quantise(modulated)
    assert q.hidden["mod_src"].tolist() == [0, q.n_hidden - 1]
    assert q.hidden["mod_levels"].tolist() == [-128, 576]
    assert q.readout["mod_src"].tolist() == [-1, -1]


def test_board_runs_the_modulated_rule_as_train_does(modulated) -> None:
    assert board_against_twin(modulated, observations(modulated.policy.config.n_obs)) < 1e-4


def test_split_layer_readdresses_the_modulator(modulated) -> None:
    q = quantise(modulated)
    narrow = Profile("narrow", 2, 4, 64, 6, 128)  # 16 hidden neurons in chunks of 6
    image = map_network(q, narrow)
    hidden_cores = image.meta["hidden_cores"]
    assert hidden_cores == [0, 1, 2]
    for core in image.cores[:3]:  # neuron 15 is neuron 3 of core 2, for every hidden core
        assert core["mod_src"].tolist() == [2, 3]
    obs = observations(q.n_obs)
    whole = run_engine(Engine(map_network(q, get_profile("tianjic"))), obs)
    np.testing.assert_array_equal(whole, run_engine(Engine(image, narrow), obs))
    # and the modulator is not a no-op: without it the same network acts differently
    plain = replace(q, hidden={**q.hidden, "mod_src": np.array([-1, -1], np.int16)})
    assert (
        np.abs(whole - run_engine(Engine(map_network(plain, get_profile("tianjic"))), obs)).max()
        > 0
    )


def test_onnx_export_carries_the_modulator(modulated, tmp_path) -> None:
    path = export_onnx(modulated.policy, tmp_path / "model.onnx")
    result = parity(modulated.policy, path, "glocal/ArmReach-v0", steps=100, seed=3)
    assert result["max_action_diff"] <= 1e-5 and result["max_state_diff"] <= 1e-5
