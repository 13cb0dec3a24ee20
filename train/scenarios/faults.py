"""Fault tolerance on 8x8 digits: train clean, test under input noise, occlusion, synapse faults.

Fashion-MNIST (the authors' data) is not available offline, so this uses scikit-learn's digits.
HP, GP and LP are the models of :mod:`train.scenarios.mlp` (LP: fixed random hidden layer and
the local Hebbian readout). Perturbations of the test set, each at increasing levels, seeded:

- ``gaussian``: ``clip(x + N(0, std^2), 0, 1)``
- ``salt-pepper``: a fraction of pixels set to 0 or 1 (half each)
- ``occlusion``: a ``size x size`` square at a random place set to 0
- ``synapse``: a fraction of the hidden layer's synapses stuck at zero (``w_eff = 0``: the
  weight and its trace), the board's ``stuck-zero`` fault, drawn once per level and seed
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from train.scenarios.common import MODELS, descend, minibatches, seed_everything
from train.scenarios.data import load_digits_split
from train.scenarios.mlp import DEFAULT_MLP, HebbianReadout, MLPConfig, SpikingMLP

log = logging.getLogger(__name__)

LEVELS: dict[str, tuple[float, ...]] = {
    "gaussian": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    "salt-pepper": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
    "occlusion": (0, 2, 3, 4, 5, 6),
    "synapse": (0.0, 0.2, 0.4, 0.6, 0.7, 0.8),
}


@dataclass(frozen=True)
class FaultConfig:
    epochs: int = 20
    batch: int = 64
    lr: float = 3e-3
    train_limit: int | None = None  # use only this many training digits (tests)
    levels: dict[str, tuple[float, ...]] = field(default_factory=lambda: dict(LEVELS))


def perturb(x: np.ndarray, kind: str, level: float, rng: np.random.Generator) -> np.ndarray:
    """A perturbed copy of images ``x`` (n, 64) in [0, 1]; the synapse kind leaves x as is."""
    x = x.copy()
    side = int(round(x.shape[1] ** 0.5))
    if kind == "gaussian":
        return np.clip(x + rng.normal(0.0, level, x.shape), 0.0, 1.0).astype(np.float32)
    if kind == "salt-pepper":
        hit = rng.random(x.shape) < level
        x[hit] = (rng.random(int(hit.sum())) < 0.5).astype(np.float32)
        return x
    if kind == "occlusion":
        size = int(level)
        if size == 0:
            return x
        img = x.reshape(-1, side, side)
        for im in img:
            r, c = rng.integers(0, side - size + 1, size=2)
            im[r : r + size, c : c + size] = 0.0
        return img.reshape(len(x), -1)
    if kind == "synapse":
        return x
    raise ValueError(f"unknown perturbation {kind!r}")


def synapse_faults(
    shape: tuple[int, int], fraction: float, rng: np.random.Generator
) -> torch.Tensor:
    """0/1 mask with ``fraction`` of the synapses stuck at zero."""
    return torch.from_numpy((rng.random(shape) >= fraction).astype(np.float32))


def train_clean(
    model: str,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: FaultConfig,
    seed: int,
    mlp: MLPConfig = DEFAULT_MLP,
):
    """A trained SpikingMLP (HP, GP) or HebbianReadout (LP) on the clean training set."""
    gen = seed_everything(seed)
    rng = np.random.default_rng(seed)
    net = SpikingMLP(mlp, plastic=model == "HP", generator=gen)
    if model == "LP":
        lp = HebbianReadout(net)
        for _ in range(2):
            lp.learn(x, y)
        return lp
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    for _ in range(cfg.epochs):
        for idx in minibatches(len(x), cfg.batch, rng):
            descend(opt, nn.functional.cross_entropy(net(x[idx]), y[idx]))
    return net


def run_faults_seed(cfg: FaultConfig, seed: int, mlp: MLPConfig = DEFAULT_MLP) -> dict:
    """``acc[model][kind]`` = accuracy at each level of ``cfg.levels[kind]``."""
    x_tr, y_tr, x_te, y_te = load_digits_split(seed=0)
    xt, yt = torch.from_numpy(x_tr[: cfg.train_limit]), torch.from_numpy(y_tr[: cfg.train_limit])
    out: dict = {"seed": seed, "levels": cfg.levels, "acc": {}, "config": asdict(cfg)}
    for model in MODELS:
        trained = train_clean(model, xt, yt, cfg, seed, mlp)
        acc: dict[str, list[float]] = {}
        for kind, levels in cfg.levels.items():
            acc[kind] = []
            for i, level in enumerate(levels):
                rng = np.random.default_rng([seed, i, len(kind)])  # same draws for every model
                xp = torch.from_numpy(perturb(x_te, kind, level, rng))
                fault = None
                if kind == "synapse":
                    fault = synapse_faults((xp.shape[1], mlp.n_hidden), level, rng)
                with torch.no_grad():
                    logits = (
                        trained.logits(xp, fault)
                        if isinstance(trained, HebbianReadout)
                        else trained(xp, w_fault=fault)
                    )
                acc[kind].append(float((logits.argmax(1).numpy() == y_te).mean()))
        out["acc"][model] = acc
        log.info("faults %s seed %d: %s", model, seed, {k: round(v[0], 3) for k, v in acc.items()})
    return out
