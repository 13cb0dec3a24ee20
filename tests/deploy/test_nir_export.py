"""export_nir: the static graph in NIR, read back with nir, run in snnTorch with plasticity off."""

from __future__ import annotations

import contextlib
import io
from dataclasses import asdict

import numpy as np
import pytest
import torch

from deploy.errors import DeployError
from deploy.nir_export import binding_graph, export_nir
from train.scenarios.fewshot import BindingRule, FewShotConfig
from train.snn import LayerParams, init_layer_state, layer_step

nir = pytest.importorskip("nir")


@pytest.fixture
def scenario_checkpoint(tmp_path):
    cfg = FewShotConfig(n_features=6)
    torch.manual_seed(0)
    rule = BindingRule(6, cfg)
    with torch.no_grad():
        rule.w_feat.normal_()
        rule.eta.normal_(0.0, 0.05)
    path = tmp_path / "fewshot.pt"
    torch.save(
        {
            "format": "glocal-scenario-checkpoint",
            "scenario": "few-shot",
            "config": asdict(cfg),
            "seed": 0,
            "rule": rule.state_dict(),
            "extractor": {},
        },
        path,
    )
    return path, rule


def test_scenario_checkpoint_reads_back_with_weights_and_rule(scenario_checkpoint, tmp_path):
    path, rule = scenario_checkpoint
    summary = export_nir(path, tmp_path / "out.nir", n_way=3)
    graph = nir.read(str(tmp_path / "out.nir"))
    assert summary["nodes"] == {
        "input": "Input",
        "synapses": "Affine",
        "lif": "LIF",
        "output": "Output",
    }
    layer = rule.layer(3)
    np.testing.assert_allclose(
        graph.nodes["synapses"].weight, layer.w.detach().numpy().T, rtol=1e-6
    )
    meta = graph.nodes["lif"].metadata
    assert meta["reset"] == "soft"
    np.testing.assert_allclose(
        meta["plasticity"]["eta_pre"][:6], rule.eta.detach().numpy(), rtol=1e-6
    )
    assert meta["plasticity"]["eta_pre"][6:].tolist() == [0.0, 0.0, 0.0]  # label axons
    assert meta["quantisation"]["weights_q"].shape == (9, 3)
    assert abs(meta["quantisation"]["weights_q"]).max() == 127


@pytest.mark.parametrize("modulated, integral", [(False, False), (True, False), (False, True)])
def test_train_checkpoint_recurrent_graph(tmp_path, modulated, integral):
    g = torch.Generator().manual_seed(1)
    n_obs, n_hidden, n_act = 3, 5, 2
    network = {
        "w_hidden": torch.randn(n_obs + n_hidden, n_hidden, generator=g),
        "theta_hidden": torch.ones(n_hidden),
        "w_readout": torch.randn(n_hidden, n_act, generator=g),
        "n_obs": n_obs,
        "n_hidden": n_hidden,
        "n_act": n_act,
        "decay_shift": 2,
        "readout_decay_shift": 3,
        "reset": "soft",
        "ticks": 4,
        "input_scale": 16,
        "h_max": 1.0,
        "plastic": True,
        "alpha": 0.5,
        "lam": 0.9,
        "eta_pre": torch.full((n_obs + n_hidden,), 0.1),
        "beta_post": torch.full((n_hidden,), 0.2),
        "enc_gain": torch.ones(n_obs),
        "enc_bias": torch.zeros(n_obs),
        "dec_gain": torch.ones(n_act),
        "dec_bias": torch.zeros(n_act),
    }
    if modulated:  # the third factor: neuron 4 switches m between 0.5 and -1
        network.update(mod_neuron=4, mod_levels=torch.tensor([0.5, -1.0]))
    if integral:  # a slow readout neuron per action (shift 8), its gain one per neuron
        network.update(
            integral_shift=8,
            w_readout=torch.randn(n_hidden, 2 * n_act, generator=g),
            dec_gain=torch.tensor([1.0, 2.0, 0.25, 0.5]),
        )
    torch.save(
        {"format": "glocal-train-checkpoint", "version": 1, "network": network},
        tmp_path / "model.pt",
    )
    summary = export_nir(tmp_path, tmp_path / "policy.nir")
    graph = nir.read(str(tmp_path / "policy.nir"))
    assert ("w_rec", "hidden") in [tuple(e) for e in graph.edges]
    assert summary["nodes"]["readout"] == "LI"
    np.testing.assert_allclose(
        graph.nodes["w_rec"].weight, network["w_hidden"][n_obs:].numpy().T, rtol=1e-6
    )
    meta = graph.nodes["hidden"].metadata
    assert meta["plasticity"]["lam"] == pytest.approx(0.9)
    np.testing.assert_allclose(graph.nodes["hidden"].tau, 4 * 1e-4)
    levels_q = [128, -256] if modulated else [256, 256]
    assert meta["quantisation"]["mod_levels_q"].tolist() == levels_q
    assert ("mod_neuron" in meta["plasticity"]) == modulated
    readout, decoder = graph.nodes["readout"], graph.nodes["decoder"].weight
    if integral:  # neuron j feeds action j mod n_act
        np.testing.assert_allclose(readout.tau, np.array([8, 8, 256, 256]) * 1e-4)
        np.testing.assert_allclose(decoder, [[1.0, 0.0, 0.25, 0.0], [0.0, 2.0, 0.0, 0.5]])
    else:
        np.testing.assert_allclose(readout.tau, np.array([8, 8]) * 1e-4)
        np.testing.assert_allclose(decoder, np.eye(2))


def test_bad_checkpoints_are_one_clear_error(tmp_path):
    with pytest.raises(DeployError, match="no checkpoint"):
        export_nir(tmp_path / "missing.pt", tmp_path / "x.nir")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DeployError, match="not a readable"):
        export_nir(tmp_path / "junk.pt", tmp_path / "x.nir")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(DeployError, match="neither"):
        export_nir(tmp_path / "other.pt", tmp_path / "x.nir")


def test_snntorch_runs_the_graph_like_train_snn_with_plasticity_off(tmp_path):
    """Hard reset (NIR's LIF resets to v_reset): snnTorch's spikes equal layer_step's."""
    snn_import = pytest.importorskip("snntorch.import_nir")
    pytest.importorskip("nirtorch")
    g = torch.Generator().manual_seed(3)
    n_pre, n_post, ticks = 7, 4, 20
    layer = LayerParams(
        w=torch.randn(n_pre, n_post, generator=g, dtype=torch.float64) * 0.6,
        theta=torch.full((n_post,), 1.0, dtype=torch.float64),
        decay_shift=2,
        reset="hard",
    )
    x = torch.rand(5, n_pre, generator=g, dtype=torch.float64)
    state, ours = init_layer_state(layer, 5), []
    for _ in range(ticks):
        state = layer_step(x, state, layer)
        ours.append(state.spikes)
    ours_t = torch.stack(ours)
    graph = binding_graph(layer, 8, {"test": 1})
    nir.write(str(tmp_path / "g.nir"), graph)
    with contextlib.redirect_stdout(io.StringIO()):  # snnTorch prints its weight-scaling notes
        net = snn_import.import_from_nir(nir.read(str(tmp_path / "g.nir")))
    theirs, st = [], None
    with torch.no_grad():
        for _ in range(ticks):
            out, st = net(x.float(), st)
            theirs.append(out)
    theirs_t = torch.stack(theirs).double()
    assert ours_t.sum() > 10  # the comparison is about spikes that happen
    assert torch.equal(ours_t, theirs_t)
