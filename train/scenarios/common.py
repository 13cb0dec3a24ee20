"""Pieces every scenario shares: seeding, mean and spread over seeds, confidence intervals."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np
import torch

MODELS = ("HP", "GP", "LP")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch's global RNGs; return a torch.Generator for explicit use."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of the normal-approximation 95% confidence interval."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(1.96 * v.std(ddof=1) / math.sqrt(v.size))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (the spread over seeds)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def descend(opt: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    """One optimiser step on ``loss``; its value."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def minibatches(n: int, batch: int, rng: np.random.Generator) -> list[torch.Tensor]:
    """Index batches of one shuffled pass over ``n`` samples."""
    order = torch.from_numpy(rng.permutation(n))
    return [order[start : start + batch] for start in range(0, n, batch)]
