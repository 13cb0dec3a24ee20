"""The integral readout end to end: a slow readout neuron per action packs (per-neuron decay
shifts, one decoder weight per neuron), maps with copies and split cores, runs on the board as
train's board numerics run it, and exports to ONNX with parity."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from deploy.mapping import map_network
from deploy.onnx_export import export_onnx, parity
from deploy.quantise import decoder_fixed_point, load_checkpoint, quantise
from firmware_sim.engine import Engine
from firmware_sim.profiles import Profile, get_profile
from tests.deploy.conftest import board_against_twin, observations, run_engine, train_small

SHIFT = 8


@pytest.fixture(scope="module")
def integral(tmp_path_factory):
    out = tmp_path_factory.mktemp("integral")
    checkpoint = load_checkpoint(train_small(out, integral_shift=SHIFT))
    with torch.no_grad():  # 8 updates barely move the slow weights from zero; make them act
        w = checkpoint.policy.w_readout
        w[:, 2:] = w[:, :2].flip(0)
    return checkpoint


def test_tables_hold_fast_then_slow_neurons(integral) -> None:
    q = quantise(integral)
    assert q.readout["decay_shift"].tolist() == [2, 2, SHIFT, SHIFT]
    assert q.readout["weights"].shape == (q.n_hidden, 4) and q.dec_w.shape == (4,)
    # a slow neuron decodes at integral_gain * 2**(2 - SHIFT) of its fast twin (4/64)
    np.testing.assert_allclose(q.dec_w[2:], q.dec_w[:2] / 16, atol=1)


def test_decoder_shift_fits_every_neuron_of_an_action() -> None:
    w, shift, bias = decoder_fixed_point(np.array([0.5, 3.0, 4.0, 0.1]), np.array([0.0, 1.0]))
    assert shift.tolist() == [12, 13]  # 4.0 * 2**12 fits int16, 4.0 * 2**13 would not
    assert w.tolist() == [2048, 24576, 16384, 819]
    assert bias.tolist() == [0, 8192]


def test_board_runs_the_integral_readout_as_train_does(integral) -> None:
    assert board_against_twin(integral, observations(integral.policy.config.n_obs, 80)) < 1e-4


def test_copies_over_split_cores_decode_the_same_actions(integral) -> None:
    q = quantise(integral)
    narrow = Profile("narrow", 3, 4, 64, 3, 128)  # 8 readout neurons in cores of 3
    split = map_network(q, narrow, readout_copies=2)
    readout_cores = [c for c in split.cores if c["core_id"] not in split.meta["hidden_cores"]]
    assert [c["dec_dst"].tolist() for c in readout_cores] == [[0, 1, 0], [1, 0, 1], [0, 1]]
    assert [c["decay_shift"].tolist() for c in readout_cores] == [
        [2, 2, SHIFT],
        [SHIFT, 2, 2],
        [SHIFT, SHIFT],
    ]
    obs = observations(q.n_obs, 80)
    whole = run_engine(Engine(map_network(q, get_profile("tianjic"))), obs)
    np.testing.assert_array_equal(whole, run_engine(Engine(split, narrow), obs))
    # and the slow neurons are not a no-op: without their decoder weights the actions differ
    fast_only = replace(q, dec_w=np.concatenate([q.dec_w[:2], np.zeros(2, np.int16)]))
    assert (
        np.abs(
            whole - run_engine(Engine(map_network(fast_only, get_profile("tianjic"))), obs)
        ).max()
        > 0
    )


def test_onnx_export_carries_the_integral_readout(integral, tmp_path) -> None:
    path = export_onnx(integral.policy, tmp_path / "model.onnx")
    result = parity(integral.policy, path, "glocal/ArmReach-v0", steps=100, seed=3)
    assert result["max_action_diff"] <= 1e-5 and result["max_state_diff"] <= 1e-5
