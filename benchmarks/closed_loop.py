"""Closed-loop control steps: the board over a pty beside torch and onnxruntime in-process.

    python benchmarks/closed_loop.py [--checkpoint DIR] [--steps 2000] [--seed 0]

One run, one checkpoint (default: the shipped demo checkpoint), three controllers on the same
ArmReach episode's observations (recorded once with the fault-blind teacher): steps per second
and p50/p99 latency of one control step (T ticks), and the ratios between them. The board is
``glocal board`` in its own process on a pty, flashed with the packed checkpoint; a step is one
STEP request and its answer. The goal the issue sets: p99 under 2 ms per step over the pty.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import robot_env
from deploy.demo import shipped_checkpoint
from deploy.engines import BoardController, TorchController
from deploy.flash import connect, flash_and_boot
from deploy.onnx_export import OnnxController, export_onnx
from deploy.pack import pack_checkpoint
from deploy.quantise import load_checkpoint
from firmware_sim.process import BoardProcess


def observations(steps: int, seed: int) -> np.ndarray:
    env = robot_env.make("glocal/ArmReach-v0")
    teacher = robot_env.make_teacher(env, fault_aware=False)
    obs, _ = env.reset(seed=seed)
    seen = []
    for _ in range(steps):
        seen.append(obs)
        obs, _, terminated, truncated, _ = env.step(teacher(obs))
        if terminated or truncated:
            obs, _ = env.reset()
    return np.array(seen)


def time_steps(controller, seen: np.ndarray, warmup: int = 50) -> np.ndarray:
    controller.set_learning(True)
    controller.reset()
    for obs in seen[:warmup]:
        controller.step(obs)
    took = np.empty(len(seen))
    for i, obs in enumerate(seen):
        started = time.perf_counter()
        controller.step(obs)
        took[i] = time.perf_counter() - started
    return took * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    checkpoint = load_checkpoint(args.checkpoint or shipped_checkpoint())
    config = checkpoint.policy.config
    seen = observations(args.steps, args.seed)
    rows = {}
    with BoardProcess("tianjic") as board:
        client, transport = connect(board.url)
        packed = pack_checkpoint(checkpoint, "tianjic")
        flash_and_boot(client, packed.data, progress=False)
        rows["board over pty"] = time_steps(BoardController(client), seen)
        transport.close()
    rows["torch (float32)"] = time_steps(TorchController(checkpoint.policy), seen)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(checkpoint.policy, Path(tmp) / "step.onnx")
        rows["onnxruntime"] = time_steps(OnnxController(str(path), config.n_hidden), seen)
    print(
        f"{config.kind}, {config.n_obs}-{config.n_hidden}-{config.n_act}, T = {config.ticks} "
        f"ticks per step, {args.steps} steps each, learning on"
    )
    print(f"{'controller':<18} {'steps/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99 vs board':>13}")
    board_p99 = np.percentile(rows["board over pty"], 99)
    for name, ms in rows.items():
        p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
        print(
            f"{name:<18} {1e3 / ms.mean():>9.0f} {p50:>8.3f} {p99:>8.3f} {p99 / board_p99:>12.2f}x"
        )
    verdict = "meets" if board_p99 < 2.0 else "misses"
    print(f"board p99 {board_p99:.3f} ms {verdict} the 2 ms goal on this machine")


if __name__ == "__main__":
    main()
