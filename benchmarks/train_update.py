"""Seconds per BPTT window (forward and backward, 40 control steps of T = 8 ticks) on one core:
the fused engine, torch autograd's, and an LSTM of the same parameter count and batch.

    python benchmarks/train_update.py [--repeats 3] [--json]

Shapes:

``demo``        the demo's HP, 10-64-2, batch 16, float, trace penalty, half the episodes with
                on-chip faults (the shipped recipe's window)
``demo_board``  the same through the board's numerics (the recipe's second stage)
``h256_b64``    a 256-neuron HP at batch 64, float

Each (shape, engine) runs in its own process, so its peak RSS is its own and a path that cannot
finish is stopped: every process reports each window as it ends, the best of ``--repeats`` after
a warm-up window counts (the warm-up window alone where no other finished), and a path that
ends no window inside ``--limit`` seconds (120) reports ``null``. All in one run, one after the
other, one thread each.
"""

from __future__ import annotations

import argparse
import json
import queue
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

SHAPES = {
    "demo": {"n_hidden": 64, "batch": 16, "quantized": False, "trace": True, "faults": True},
    "demo_board": {"n_hidden": 64, "batch": 16, "quantized": True, "trace": False, "faults": True},
    "h256_b64": {"n_hidden": 256, "batch": 64, "quantized": False, "trace": True, "faults": False},
}
ENGINES = ("fused", "autograd", "lstm")
STEPS, TICKS, N_OBS, N_ACT = 40, 8, 10, 2


def measure(shape: str, engine: str, repeats: int) -> None:
    """Worker: one line of JSON per window (seconds, peak RSS so far, parameter count)."""
    import numba
    import torch

    from train.models import (
        ChipFaults,
        ModelConfig,
        build_policy,
        count_parameters,
        matched_hidden,
    )
    from train.window import open_window

    torch.set_num_threads(1)
    numba.set_num_threads(1)
    torch.set_flush_denormal(True)
    spec = SHAPES[shape]
    config = ModelConfig(
        "hp", N_OBS, N_ACT, spec["n_hidden"], TICKS, lam_logit=5.0, quantized=spec["quantized"]
    )
    policy = build_policy(config)
    params = count_parameters(policy)
    if engine == "lstm":
        n = matched_hidden("lstm", N_OBS, N_ACT, params)
        policy = build_policy(ModelConfig("lstm", N_OBS, N_ACT, n))
    elif spec["faults"]:
        generator = torch.Generator().manual_seed(1)
        policy.chip_faults = ChipFaults.sample(config, spec["batch"], 0.2, 0.1, generator)
    generator = torch.Generator().manual_seed(0)
    observations = torch.randn(STEPS, spec["batch"], N_OBS, generator=generator) * 2
    trace = spec["trace"] and engine != "lstm"

    for _ in range(repeats + 1):  # the first window also compiles (numba's cache) and warms up
        policy.zero_grad()
        start = time.perf_counter()
        state = policy.initial_state(spec["batch"])
        path = "autograd" if engine == "lstm" else engine
        window = open_window(policy, state, STEPS, path, trace)
        for obs in observations:
            window.step(obs)
        actions, trace_sq, _ = window.finish()
        loss = actions.abs().mean() + (trace_sq.mean() * 1e-3 if trace else 0.0)
        loss.backward()
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"seconds": seconds, "peak_rss_mb": peak, "params": params}), flush=True)


def run_worker(shape: str, engine: str, repeats: int, limit: float) -> dict | None:
    """Best window of a worker process (after its warm-up window), or None if none ended
    within ``limit`` seconds of the one before."""
    command = [sys.executable, __file__, "--worker", shape, engine, "--repeats", str(repeats)]
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=root)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    windows = []
    while True:
        try:
            line = lines.get(timeout=limit + (60.0 if not windows else 0.0))  # + compilation
        except queue.Empty:
            process.kill()
            break
        if line is None:
            break
        windows.append(json.loads(line))
    process.wait()
    timed = windows[1:] or windows
    if not timed:
        return None
    best = min(timed, key=lambda w: w["seconds"])
    return {**best, "peak_rss_mb": max(w["peak_rss_mb"] for w in windows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed windows per path")
    parser.add_argument("--limit", type=float, default=120.0, help="seconds a window may take")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    parser.add_argument("--worker", nargs=2, metavar=("SHAPE", "ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        measure(*args.worker, args.repeats)
        return

    results = {}
    for shape in args.shapes:
        row = {}
        for engine in ENGINES:
            best = run_worker(shape, engine, args.repeats, args.limit)
            row[f"{engine}_s"] = None if best is None else round(best["seconds"], 4)
            if best is not None and engine != "lstm":
                row["params"] = best["params"]
            if engine == "fused" and best is not None:
                row["peak_rss_mb"] = round(best["peak_rss_mb"], 1)
            print(f"{shape} {engine}: {row[f'{engine}_s']} s", file=sys.stderr, flush=True)
        if row["fused_s"] and row["autograd_s"]:
            row["speedup"] = round(row["autograd_s"] / row["fused_s"], 2)
        results[shape] = row
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("| shape | params | autograd s | fused s | speed-up | LSTM s | fused peak RSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for shape, r in results.items():
        print(
            f"| {shape} | {r.get('params')} | {r['autograd_s']} | {r['fused_s']} "
            f"| {r.get('speedup')} | {r['lstm_s']} | {r.get('peak_rss_mb')} |"
        )


if __name__ == "__main__":
    main()
