from __future__ import annotations

import numpy as np
import pytest
import torch

from train.scenarios.continual import (
    CONTINUAL_MODELS,
    ContinualConfig,
    run_continual_seed,
    task_masks,
)
from train.scenarios.faults import FaultConfig, perturb, run_faults_seed, synapse_faults
from train.scenarios.mlp import HebbianReadout, MLPConfig, SpikingMLP

SMALL = MLPConfig(n_hidden=16, ticks=4)


def test_continual_reports_every_seen_task_after_each_task():
    cfg = ContinualConfig(n_tasks=3, epochs=1, batch=32, fisher_batches=1, train_limit=96)
    models = ("HP", "EWC", "LP")  # masks + trace, the Fisher penalty, the local readout
    out = run_continual_seed(cfg, seed=0, mlp=SMALL, models=models)
    assert set(out["acc"]) == set(models) and set(models) <= set(CONTINUAL_MODELS)
    for acc in out["acc"].values():
        assert [len(row) for row in acc] == [1, 2, 3]
        assert all(0.0 <= a <= 1.0 for row in acc for a in row)


def test_task_masks_keep_the_asked_fraction_and_differ():
    masks = task_masks(4, 20, 0.5, seed=0)
    assert masks.shape == (4, 20) and torch.all(masks.sum(1) == 10)
    assert not torch.equal(masks[0], masks[1])


@pytest.mark.parametrize("kind,level", [("gaussian", 0.3), ("salt-pepper", 0.3), ("occlusion", 3)])
def test_perturbations_change_images_at_a_level_and_not_at_zero(kind, level):
    x = np.random.default_rng(0).random((5, 64)).astype(np.float32)
    rng = np.random.default_rng(1)
    zero = 0 if kind == "occlusion" else 0.0
    np.testing.assert_array_equal(perturb(x, kind, zero, rng), x)
    y = perturb(x, kind, level, rng)
    assert y.shape == x.shape and y.min() >= 0.0 and y.max() <= 1.0
    assert not np.array_equal(x, y)
    if kind == "occlusion":
        assert all((img.reshape(8, 8) == 0).sum() >= 9 for img in y)


def test_stuck_synapses_carry_neither_weight_nor_trace():
    net = SpikingMLP(SMALL, plastic=True, generator=torch.Generator().manual_seed(0))
    x = torch.rand(3, 64, generator=torch.Generator().manual_seed(1))
    all_stuck = torch.zeros(64, SMALL.n_hidden)
    with torch.no_grad():
        assert torch.count_nonzero(net.hidden_counts(x, all_stuck)) == 0
        assert torch.count_nonzero(net(x, w_fault=all_stuck)) == 0
    fault = synapse_faults((64, 16), 0.25, np.random.default_rng(0))
    assert 0.15 < 1 - float(fault.mean()) < 0.35


def test_faults_run_covers_every_model_kind_and_level():
    levels = {"gaussian": (0.0, 0.5), "synapse": (0.0, 0.9)}
    out = run_faults_seed(
        FaultConfig(epochs=2, batch=32, train_limit=320, levels=levels), seed=0, mlp=SMALL
    )
    for model in ("HP", "GP", "LP"):
        assert {k: len(v) for k, v in out["acc"][model].items()} == {"gaussian": 2, "synapse": 2}
    # heavy synapse loss hurts the clean-trained network
    assert out["acc"]["GP"]["synapse"][1] < out["acc"]["GP"]["synapse"][0]


def test_local_readout_learns_class_means():
    net = SpikingMLP(SMALL, plastic=False, generator=torch.Generator().manual_seed(0))
    lp = HebbianReadout(net, eta=0.5)
    x = torch.rand(20, 64, generator=torch.Generator().manual_seed(2))
    y = torch.arange(20) % 2
    lp.learn(x, y)
    assert torch.count_nonzero(lp.w[:, 2:]) == 0  # classes never shown stay empty
    assert torch.count_nonzero(lp.w[:, :2]) > 0
