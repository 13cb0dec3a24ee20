from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.train.scenarios.conftest import TINY, features
from train.errors import TrainError
from train.scenarios.data import load_omniglot, rotate_classes, split_characters
from train.scenarios.fewshot import (
    PROTOTYPE,
    BindingRule,
    FewShotConfig,
    PooledPixels,
    bind_support,
    classify,
    episode_scores,
    gp_readout,
    hand_set_rule,
    plastic_readout,
    prototype_readout,
    query_scores,
    run_fewshot_seed,
)


def _orthogonal(n: int, dim: int) -> torch.Tensor:
    """Rows of a Sylvester-Hadamard matrix (dim a power of 2), scaled into (-1, 1)."""
    h = torch.ones(1, 1)
    while h.shape[0] < dim:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)])
    return 0.9 * h[1 : n + 1]


def test_hebbian_binding_names_the_class_of_a_repeated_support_image():
    """A query equal to support image c must score highest on neuron c (the rule binds it)."""
    n_way, dim = 5, 16
    rule = hand_set_rule(dim, FewShotConfig(n_features=dim))
    feats = _orthogonal(n_way, dim).unsqueeze(0)  # one episode of distinct patterns
    layer = rule.layer(n_way)
    with torch.no_grad():
        state = bind_support(feats, n_way, 1, layer, ticks=8)
        scores = query_scores(feats, state.h, layer, ticks=8)
    assert scores[0].argmax(1).tolist() == list(range(n_way))
    # label axons never learn: their trace rows stay 0
    assert torch.count_nonzero(state.h[0, dim:]) == 0


def test_without_the_trace_the_layer_cannot_tell_classes_apart():
    n_way, dim = 4, 16
    rule = hand_set_rule(dim, FewShotConfig(n_features=dim))
    feats = features(n_way, dim, 1).unsqueeze(0)
    layer = rule.layer(n_way)
    with torch.no_grad():
        scores = query_scores(feats, torch.zeros(1, dim + n_way, n_way), layer, ticks=8)
    assert torch.all(scores[0] == scores[0, :, :1])  # every class scores the same


def test_meta_gradient_reaches_the_rule_and_the_extractor():
    from train.scenarios.fewshot import FeatureExtractor

    cfg = replace(TINY, n_features=8)
    ext, rule = FeatureExtractor(8, 14), BindingRule(8, cfg)
    g = torch.Generator().manual_seed(0)
    s, q = torch.rand(2, 3, 14, 14, generator=g), torch.rand(2, 3, 14, 14, generator=g)
    episode_scores(ext, rule, s, q, 3, 1).sum().backward()
    for p in (rule.eta, rule.log_alpha, rule.beta, ext.fc.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_a_tiny_scenario_run_reports_every_model(omniglot_dir):
    chars = load_omniglot(omniglot_dir, size=14)
    train, test = split_characters(chars, 0.5, seed=0)
    run = run_fewshot_seed(rotate_classes(train), test, TINY, seed=0, ways=(2,))
    assert set(run["models"]) == {"HP", "GP", "LP", PROTOTYPE}
    for model in run["models"].values():
        assert 0.0 <= model["2-way"]["accuracy"] <= 1.0
    assert len(run["loss_curves"]["HP"]) == TINY.iterations


def test_the_same_seed_gives_the_same_numbers_to_the_last_bit(omniglot_dir):
    """Seeded data order, episodes and initialisation: a second run repeats the first exactly."""
    chars = load_omniglot(omniglot_dir, size=14)
    train, test = split_characters(chars, 0.5, seed=0)
    train = rotate_classes(train)
    first, second = (run_fewshot_seed(train, test, TINY, seed=3, ways=(2, 3)) for _ in range(2))
    assert first["models"] == second["models"]
    assert first["loss_curves"] == second["loss_curves"]
    assert first["hp_rule"] == second["hp_rule"]


def _distinct_images(n: int) -> np.ndarray:
    """``n`` 14x14 images, each a different block of ink."""
    images = np.zeros((n, 14, 14), np.float32)
    for c in range(n):
        images[c, 2 * c : 2 * c + 4, (3 * c) % 10 : (3 * c) % 10 + 4] = 1.0
    return images


@pytest.mark.parametrize("name", ["prototype", "GP", "LP"])
def test_classify_names_the_class_of_a_query_equal_to_its_support_image(name):
    """A given support/query set, scored by each public readout on fixed pixel features."""
    pixels, cfg = PooledPixels(49), replace(TINY, n_features=49)
    readout = {
        "prototype": prototype_readout(pixels),
        "GP": gp_readout(pixels, replace(cfg, gp_steps=25)),
        "LP": plastic_readout(pixels, hand_set_rule(49, cfg)),
    }[name]
    support = _distinct_images(4)
    order = [2, 0, 3, 1]
    assert classify(readout, support, support[order]).tolist() == order
    with pytest.raises(TrainError, match="do not split into 3 per class"):
        classify(readout, support, support, k_shot=3)


def test_the_prototype_readout_does_not_depend_on_support_order():
    readout, support = prototype_readout(PooledPixels(49)), _distinct_images(5)
    query = support + 0.1
    shuffled = [4, 2, 0, 1, 3]
    assert classify(readout, support[shuffled], query).tolist() == [
        shuffled.index(c) for c in classify(readout, support, query)
    ]


def test_pooled_pixels_are_fixed_centredfeatures():
    images = torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    feats = PooledPixels(64)(images)
    assert feats.shape == (2, 3, 64) and feats.abs().max() < 1
    assert torch.allclose(feats.mean(-1), torch.zeros(2, 3), atol=0.1)
    assert not list(PooledPixels(64).parameters())  # nothing to learn
    with pytest.raises(TrainError, match="square"):
        PooledPixels(60)
