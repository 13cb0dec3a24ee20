"""Time of one HP training window (forward and BPTT backward), fused trace clip vs autograd's.

    python benchmarks/train_update.py [--batch 16] [--window 40] [--repeats 5]

The plastic trace is clipped every tick: ``clip(h + hebb, -h_max, h_max)`` over every
(batch, n_pre, n_post) synapse. ``train.snn.ClipAdd`` keeps one boolean mask for backward;
the reference is autograd's ``minimum(maximum(...))``, which keeps float copies and splits ties
with where/div/eq. Both run here in one process, interleaved, best of ``--repeats``, on the demo
network's shape (10-64-2, T = 8), in float and in the board's numerics (``--quantized``
training), healthy and with on-chip faults; the gradients must agree.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch

from train.models import ChipFaults, ModelConfig, build_policy
from train.quant import BoardNumerics, ste_floor
from train.snn import Numerics, init_net_state, net_step


def reference_learn(h: torch.Tensor, hebb: torch.Tensor, h_max: torch.Tensor) -> torch.Tensor:
    return torch.minimum(torch.maximum(h + hebb, -h_max), h_max)


@dataclass(frozen=True)
class ReferenceNumerics(Numerics):
    def learn(self, h: torch.Tensor, hebb: torch.Tensor, h_max: torch.Tensor) -> torch.Tensor:
        return reference_learn(h, hebb, h_max)


@dataclass(frozen=True)
class ReferenceBoardNumerics(BoardNumerics):
    def learn(self, h: torch.Tensor, hebb: torch.Tensor, h_max: torch.Tensor) -> torch.Tensor:
        return reference_learn(h, ste_floor(hebb), h_max)


def window(policy, numerics, quantized: bool, batch: int, steps: int) -> tuple[float, list]:
    """Seconds for one BPTT window, and the gradients it left."""
    generator = torch.Generator().manual_seed(0)
    observations = torch.randn(steps, batch, policy.config.n_obs, generator=generator) * 2
    policy.zero_grad()
    start = time.perf_counter()
    params = policy.board_net().params if quantized else policy.net_params()
    state = init_net_state(params, batch)
    loss = torch.zeros(())
    for obs in observations:
        action, state = net_step(policy.normalise(obs), state, params, numerics)
        loss = loss + action.abs().mean()
    loss.backward()
    seconds = time.perf_counter() - start
    return seconds, [p.grad.clone() for p in policy.parameters() if p.grad is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--window", type=int, default=40, help="control steps per window")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy = build_policy(ModelConfig("hp", 10, 2, 64, ticks=8, lam_logit=5.0))
    faults = ChipFaults.sample(
        policy.config, args.batch, 0.2, 0.1, torch.Generator().manual_seed(1), p_faulty=1.0
    )
    print(f"HP 10-64-2, T = 8, batch {args.batch}, {args.window} control steps per window")
    print("| numerics | chip faults | autograd clip | fused clip | speed-up | max grad diff |")
    print("| --- | --- | --- | --- | --- | --- |")
    cases = [
        ("float", False, Numerics(), ReferenceNumerics()),
        ("board", True, BoardNumerics(), ReferenceBoardNumerics()),
    ]
    for name, quantized, fused, reference in cases:
        for chip in (None, faults):
            policy.chip_faults = chip
            best = {"fused": float("inf"), "reference": float("inf")}
            for _ in range(args.repeats):
                t_ref, g_ref = window(policy, reference, quantized, args.batch, args.window)
                t_fused, g_fused = window(policy, fused, quantized, args.batch, args.window)
                best["reference"] = min(best["reference"], t_ref)
                best["fused"] = min(best["fused"], t_fused)
            diff = max(
                float((a - b).abs().max() / a.abs().max().clamp(min=1e-12))
                for a, b in zip(g_ref, g_fused, strict=True)
            )
            print(
                f"| {name} | {'yes' if chip else 'no'} | {best['reference'] * 1e3:.0f} ms "
                f"| {best['fused'] * 1e3:.0f} ms | {best['reference'] / best['fused']:.2f}x "
                f"| {diff:.1e} |"
            )


if __name__ == "__main__":
    main()
