"""Continual learning over permuted 8x8 digits: HP vs GP vs spiking EWC vs LP.

Task 0 is scikit-learn's digits as they are, tasks 1.. permute the 64 pixels (seeded). Every
model sees the tasks one after the other (``epochs`` passes each, no replay) and is tested on
the test split of every task seen so far after each task.

- **HP**: :class:`~train.scenarios.mlp.SpikingMLP` with the plastic hidden layer, trained by
  BPTT, plus a fixed sparse context mask per task on the hidden neurons (``mask_keep`` of them
  kept), as the authors' continual code does.
- **GP+mask**: the same masks without the trace: the ablation that shows what the masks alone do.
- **GP**: plain BPTT, no trace, no masks.
- **EWC**: GP plus the elastic weight consolidation penalty
  ``ewc_lambda / 2 * sum F_i (w_i - w*_i)^2`` (diagonal Fisher from the spiking network's
  surrogate gradients, summed over past tasks).
- **LP**: a fixed random spiking hidden layer and the local Hebbian readout
  (:class:`~train.scenarios.mlp.HebbianReadout`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from train.scenarios.common import descend, minibatches, seed_everything
from train.scenarios.data import load_digits_split, permutations
from train.scenarios.mlp import DEFAULT_MLP, HebbianReadout, MLPConfig, SpikingMLP

log = logging.getLogger(__name__)

CONTINUAL_MODELS = ("HP", "GP", "GP+mask", "EWC", "LP")


@dataclass(frozen=True)
class ContinualConfig:
    n_tasks: int = 10
    epochs: int = 5
    batch: int = 64
    lr: float = 3e-3
    mask_keep: float = 0.5
    ewc_lambda: float = 500.0
    fisher_batches: int = 8
    train_limit: int | None = None  # use only this many training digits (tests)


# Streams derived from a run's seed, each its own, so that the task permutations, the masks and
# the training draws (the seed itself) never share random numbers.
PERMUTATION_SEED_OFFSET = 1000
MASK_SEED_OFFSET = 7


def task_masks(n_tasks: int, n_hidden: int, keep: float, seed: int) -> torch.Tensor:
    """(n_tasks, n_hidden) 0/1 masks, each keeping ``keep`` of the hidden neurons (seeded)."""
    rng = np.random.default_rng(seed + MASK_SEED_OFFSET)
    n_keep = max(1, int(round(keep * n_hidden)))
    masks = np.zeros((n_tasks, n_hidden), np.float32)
    for t in range(n_tasks):
        masks[t, rng.choice(n_hidden, n_keep, replace=False)] = 1.0
    return torch.from_numpy(masks)


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean())


class _EWC:
    """Accumulated diagonal Fisher and anchors over past tasks."""

    def __init__(self) -> None:
        self.terms: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = []

    def penalty(self, net: nn.Module) -> torch.Tensor:
        total = torch.zeros(())
        for fisher, anchor in self.terms:
            for name, p in net.named_parameters():
                total = total + (fisher[name] * (p - anchor[name]) ** 2).sum()
        return total

    def consolidate(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg, rng) -> None:
        fisher = {n: torch.zeros_like(p) for n, p in net.named_parameters()}
        for _ in range(cfg.fisher_batches):
            idx = torch.from_numpy(rng.choice(len(x), size=cfg.batch, replace=False))
            net.zero_grad()
            nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            for n, p in net.named_parameters():
                if p.grad is not None:
                    fisher[n] += p.grad.detach() ** 2 / cfg.fisher_batches
        anchor = {n: p.detach().clone() for n, p in net.named_parameters()}
        self.terms.append((fisher, anchor))


def run_continual_seed(
    cfg: ContinualConfig,
    seed: int,
    mlp: MLPConfig = DEFAULT_MLP,
    models: tuple[str, ...] = CONTINUAL_MODELS,
) -> dict:
    """Accuracy matrices ``acc[model][t][k]`` (after task t, on task k <= t) for every model."""
    x_tr, y_tr, x_te, y_te = (torch.from_numpy(a) for a in load_digits_split(seed=0))
    x_tr, y_tr = x_tr[: cfg.train_limit], y_tr[: cfg.train_limit]
    perm_seed = seed + PERMUTATION_SEED_OFFSET
    perms = [torch.from_numpy(p) for p in permutations(cfg.n_tasks, mlp.n_in, seed=perm_seed)]
    masks = task_masks(cfg.n_tasks, mlp.n_hidden, cfg.mask_keep, seed)
    out: dict = {"seed": seed, "config": asdict(cfg), "acc": {}}
    for model in models:
        gen = seed_everything(seed)
        rng = np.random.default_rng(seed)
        net = SpikingMLP(mlp, plastic=model == "HP", generator=gen)
        use_mask = model in ("HP", "GP+mask")
        acc: list[list[float]] = []
        if model == "LP":
            lp = HebbianReadout(net)
            for t in range(cfg.n_tasks):
                lp.learn(x_tr[:, perms[t]], y_tr)
                acc.append([_accuracy(lp.logits(x_te[:, perms[k]]), y_te) for k in range(t + 1)])
            out["acc"][model] = acc
            continue
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        ewc = _EWC()
        for t in range(cfg.n_tasks):
            xt = x_tr[:, perms[t]]
            mask = masks[t] if use_mask else None
            for _ in range(cfg.epochs):
                for idx in minibatches(len(xt), cfg.batch, rng):
                    loss = nn.functional.cross_entropy(net(xt[idx], mask), y_tr[idx])
                    if model == "EWC" and ewc.terms:
                        loss = loss + cfg.ewc_lambda / 2 * ewc.penalty(net)
                    descend(opt, loss)
            if model == "EWC":
                ewc.consolidate(net, xt, y_tr, cfg, rng)
            with torch.no_grad():
                acc.append(
                    [
                        _accuracy(net(x_te[:, perms[k]], masks[k] if use_mask else None), y_te)
                        for k in range(t + 1)
                    ]
                )
            log.info("continual %s seed %d task %d: mean %.3f", model, seed, t, np.mean(acc[-1]))
        out["acc"][model] = acc
    return out
