"""Quantise, map, pack: scales, error report, splitting over cores, design rules, signing."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deploy.errors import MappingError
from deploy.mapping import map_network, plan, resources, spread
from deploy.pack import pack_checkpoint
from deploy.quantise import decoder_fixed_point, quantise
from firmware_sim.engine import Engine
from firmware_sim.faults import Fault
from firmware_sim.profiles import Profile, get_profile
from glocal.cli import main
from protocol.image import open_image


def test_quantisation_report_and_nothing_clips(checkpoint) -> None:
    q = quantise(checkpoint)
    hidden = q.report["layers"]["hidden"]
    assert hidden["weights"]["clipped"] == 0 and hidden["theta"]["clipped"] == 0
    assert 0 < hidden["weights"]["rms_lsb"] <= 0.5  # rounding moves each weight < 1/2 LSB
    assert hidden["acc_bits"] <= 32 and q.report["warnings"] == []
    assert q.hidden["weights"].dtype == np.int8 and q.plastic
    assert np.abs(q.hidden["weights"]).max() == 127  # the scale uses the full int8 range


def test_decoder_fixed_point_keeps_weight_and_bias_in_range() -> None:
    gain = np.array([3.7e-6, -2.0e-3])
    w, shift, bias = decoder_fixed_point(gain, np.array([0.25, -1.0]))
    np.testing.assert_allclose(w * 2.0 ** -shift.astype(float), gain, rtol=2**-14)
    assert np.all(np.abs(w) <= 32767) and bias[1] == -(2 ** int(shift[1]))
    # a large bias limits the shift: the int32 bias must still fit
    _, shift, bias = decoder_fixed_point(np.array([1e-9]), np.array([1000.0]))
    assert abs(int(bias[0])) <= 2**31 - 1 and shift[0] <= 21


def test_a_layer_split_over_cores_runs_like_one_core(checkpoint) -> None:
    q = quantise(checkpoint)
    whole = Engine(map_network(q, get_profile("tianjic")))
    narrow = Profile("narrow", 2, 4, 64, 6, 128)  # 6 neurons per core: 16 hidden -> 3 cores
    split_image = map_network(q, narrow)
    split = Engine(split_image, narrow)
    assert [s.layer for s in plan(q, narrow)] == [0, 0, 0, 1]  # hidden on 3 cores, readout
    assert resources(split_image, narrow)["cores"] == 4
    rng = np.random.default_rng(0)
    for engine in (whole, split):
        engine.learning = True
    for obs in rng.uniform(-1, 1, (30, q.n_obs)):
        np.testing.assert_array_equal(whole.step(obs), split.step(obs))


@pytest.mark.parametrize("copies", [1, 2, 3, 5])
def test_spread_weights_sum_exactly_and_share_evenly(copies: int) -> None:
    weights = np.random.default_rng(copies).integers(-128, 128, (10, 16)).astype(np.int8)
    parts = spread(weights, copies).reshape(copies, 10, 16)
    assert parts.dtype == np.int8
    np.testing.assert_array_equal(parts.astype(np.int64).sum(0), weights)
    assert np.all(np.abs(parts - weights / copies) < 1)


def test_encoder_copies_run_like_one_copy_and_only_the_first_learns(checkpoint) -> None:
    q = quantise(checkpoint)
    narrow = Profile("narrow", 2, 4, 64, 6, 128)  # copies and a split layer together
    one = Engine(map_network(q, get_profile("tianjic")))
    copied_image = map_network(q, narrow, encoder_copies=3)
    copied = Engine(copied_image, narrow)
    hidden = copied_image.cores[0]
    assert hidden["n_axons"] == 3 * q.n_obs + q.n_hidden
    assert list(hidden["enc_src"][: 3 * q.n_obs]) == list(range(q.n_obs)) * 3
    assert not hidden["eta"][q.n_obs : 3 * q.n_obs].any()
    for engine in (one, copied):
        engine.learning = True
    for obs in np.random.default_rng(0).uniform(-1, 1, (40, q.n_obs)):
        np.testing.assert_array_equal(one.step(obs), copied.step(obs))
    h_one = one.read_traces()[0]
    h_copied = np.concatenate([copied.read_traces()[c] for c in range(3)], axis=1)
    assert np.abs(h_one).sum() > 0  # learning happened, and on the same synapses
    np.testing.assert_array_equal(np.delete(h_copied, np.s_[q.n_obs : 3 * q.n_obs], 0), h_one)
    assert not h_copied[q.n_obs : 3 * q.n_obs].any()


def test_readout_copies_decode_the_same_actions_and_a_dead_copy_costs_a_share(checkpoint) -> None:
    q = quantise(checkpoint)
    narrow = Profile("narrow", 4, 4, 64, 6, 128)  # 4 copies x 2 actions: two readout cores
    plain = Engine(map_network(q, get_profile("tianjic")))
    copied_image = map_network(q, narrow, readout_copies=4)
    hidden_cores = copied_image.meta["hidden_cores"]
    readout = [c for c in copied_image.cores if c["core_id"] not in hidden_cores]
    assert [int(c["n_neurons"]) for c in readout] == [6, 2]
    dst = np.concatenate([c["dec_dst"] for c in readout])
    dec_w = np.concatenate([c["dec_w"] for c in readout]).astype(np.int64)
    assert dst.tolist() == [0, 1] * 4
    assert [dec_w[dst == a].sum() for a in range(q.n_act)] == q.dec_w.astype(np.int64).tolist()
    copied = Engine(copied_image, narrow)
    for engine in (plain, copied):
        engine.learning = True
    observations = np.random.default_rng(0).uniform(-1, 1, (40, q.n_obs))
    healthy = np.array([plain.step(obs) for obs in observations])
    np.testing.assert_array_equal(healthy, [copied.step(obs) for obs in observations])

    def dead_readout(image, profile, core: int, neuron: int) -> np.ndarray:
        engine = Engine(image, profile)
        engine.learning = True
        engine.inject(Fault("dead-neuron", target=core, neuron=neuron))
        return np.array([engine.step(obs) for obs in observations])[:, 0]

    bias = float(q.dec_bias[0]) * 2.0 ** -int(q.dec_shift[0])
    drive = np.abs(healthy[:, 0] - bias)  # what action 0 owes to its readout membrane
    readout_core = plain.core_ids[-1]
    whole = np.abs(dead_readout(plain.image, get_profile("tianjic"), readout_core, 0) - bias)
    share = np.abs(dead_readout(copied_image, narrow, readout[0]["core_id"], 0) - healthy[:, 0])
    assert whole.max() < 1e-6 < drive.max()  # one dead neuron: the action is its bias alone
    np.testing.assert_allclose(share, drive * np.abs(dec_w[0]) / abs(int(q.dec_w[0])), atol=1e-4)


def test_mapping_errors_say_what_to_change(checkpoint) -> None:
    q = quantise(checkpoint)
    with pytest.raises(MappingError, match="at most 6 hidden neurons"):
        map_network(q, Profile("tiny", 2, 4, q.n_obs + 6, 32, 128))
    with pytest.raises(MappingError, match="fewer encoder copies"):
        map_network(q, get_profile("tianjic"), encoder_copies=30)
    with pytest.raises(MappingError, match="at least 1"):
        map_network(q, get_profile("tianjic"), encoder_copies=0)
    with pytest.raises(MappingError, match="needs 3 cores"):
        map_network(q, Profile("two", 1, 2, 64, 8, 128))
    with pytest.raises(MappingError, match="readout copies must be at least 1"):
        map_network(q, get_profile("tianjic"), readout_copies=0)
    with pytest.raises(MappingError, match="needs 4 cores .* use fewer readout copies"):
        map_network(q, Profile("three", 1, 3, 64, 16, 128), readout_copies=17)
    broken = replace(q, ticks=300)
    with pytest.raises(MappingError, match="design rules"):
        map_network(broken, get_profile("tianjic"))


def test_resource_report_counts_memory(checkpoint) -> None:
    packed = pack_checkpoint(checkpoint, "tianjic")
    report = packed.resources
    n_pre = packed.network.n_obs + packed.network.n_hidden
    assert report["cores"] == 2
    assert report["weight_bytes"] == n_pre * 16 + 16 * 2
    assert report["trace_bytes"] == n_pre * 16 * 2  # only the plastic hidden core
    assert report["per_core"][0]["neuron_use"] == pytest.approx(16 / 256)


def test_pack_cli_writes_a_signed_image_that_verifies(checkpoint_dir, tmp_path, capsys) -> None:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "key.raw").write_bytes(key.private_bytes_raw())
    out = tmp_path / "model.glc"
    code = main(
        ["pack", str(checkpoint_dir), "--out", str(out), "--sign", str(tmp_path / "key.raw")]
        + ["--json"]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["signed"] and summary["resources"]["cores"] == 2
    opened = open_image(out.read_bytes(), key.public_key())
    assert opened.signature == "verified"
    assert opened.image.meta["hidden_cores"] == [0]
    assert opened.image.scales["hidden.weight_lsb"] > 0


def test_pack_cli_refuses_bad_copies_in_one_sentence(checkpoint_dir, tmp_path, capsys) -> None:
    out = tmp_path / "model.glc"
    for flag in ("--encoder-copies", "--readout-copies"):
        assert main(["pack", str(checkpoint_dir), "--out", str(out), flag, "0"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "copies must be at least 1" in err[0]
        assert not out.exists()


def test_cli_bad_input_is_one_sentence(tmp_path, capsys) -> None:
    assert main(["pack", str(tmp_path / "none"), "--out", str(tmp_path / "x.glc")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("glocal pack: error: no checkpoint at")
    assert main(["pack", str(tmp_path / "none"), "--out", "x", "--profile", "nope"]) == 2
