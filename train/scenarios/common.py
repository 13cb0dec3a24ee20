"""Pieces every scenario shares: seeding, mean and spread over seeds, confidence intervals."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence

import numpy as np
import torch

MODELS = ("HP", "GP", "LP")
MKL_BRANCH = "COMPATIBLE"  # MKL's conditional-numerical-reproducibility branch for scenarios


def reproducible_blas() -> str:
    """Put MKL in its conditional numerical reproducibility mode; the branch in force.

    MKL's default branch picks its kernels by the memory layout it is handed, so the last bit
    of a product can change with an unrelated edit elsewhere in the process (HP few-shot
    meta-training of the same seed left its bit-identical path at iteration 550 between two
    versions of the code that differ only in what they allocate). HP's spiking meta-training
    turns that bit into another model: the documented seed-0 HP 20-way 44.3 % came back as
    56.6 %, while GP and LP, whose accuracy is smooth in their weights, repeated to the decimal.
    MKL reads ``MKL_CBWR`` at its first call, so this must run before the process's first
    product (``glocal scenario`` calls it first thing); a value the user set wins.
    """
    return os.environ.setdefault("MKL_CBWR", MKL_BRANCH)


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
