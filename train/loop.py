"""Meta-training by DAgger-style imitation of the fault-aware teacher, with truncated BPTT.

Outer loop: batches of episodes of the task (``train.tasks.TASKS``: ArmReach, Reacher-v5), each
with its own body or seed and one fault from the training mix. Inner loop: the episode itself,
where the policy's state (membranes, spikes and, for HP/LP, the plastic trace H) is the only
thing that changes. Every control step the
student acts on the observation and is scored against the fault-aware teacher's action (L1 or MSE);
with probability ``beta`` (DAgger's mixing, annealed to 0 over the first half of training) the
teacher's action is executed instead of the student's, so the student sees the states its own
mistakes lead to. Gradients flow back through a window of ``window`` control steps (each ``ticks``
board ticks) and the state is carried, detached, into the next window. Adaptation only pays off
inside a window, so onsets should fall inside windows (``onset`` against ``window`` and
``episode_steps``); ``clean_steps`` starts with fault-free episodes and ``trace_penalty`` keeps the
trace near zero while no fault acts.

Data-parallel: under ``torchrun`` every rank steps its own episodes (seed + rank) and gradients
are averaged with ``all_reduce`` before each update (gloo on CPU, nccl on CUDA); rank 0 writes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numba
import numpy as np
import torch

from train.checkpoint import MODEL_FILE, RESUME_FILE, save_model, write_json
from train.config import TrainConfig, model_config
from train.errors import TrainError
from train.fault_batch import FaultBatch
from train.models import ChipFaults, Policy, build_policy, count_parameters
from train.tasks import TASK_ID, TASKS, get_task
from train.window import open_window

log = logging.getLogger(__name__)

# Each process of a run draws its episodes from seed * ROLLOUT_SEED_STRIDE + rank: runs with
# other seeds never share a stream as long as fewer processes than the stride train together.
ROLLOUT_SEED_STRIDE = 1000
# Validation scores every update of every run on the same episodes, so the val_return curves of
# two runs (other seeds, other recipes) compare; studies' tables use their own seeds.
VALIDATION_SEED = 12345


def fit_scaling(policy: Policy, seed: int, task_id: str = TASK_ID) -> None:
    """Encoder ranges from teacher rollouts (1st-99th percentile of each observation)."""
    task = get_task(task_id)
    rng = np.random.default_rng(seed)
    faults = FaultBatch.sample(
        rng, 64, task.trained_kinds, held_out=False, onset=(20, 150), bands=task.bands
    )
    env = task.new_batch(faults, seed, False, 200)
    seen = []
    for _ in range(200):
        seen.append(env.observe())
        env.step(env.teacher(True))
    obs = np.concatenate(seen)
    low, high = np.percentile(obs, 1, axis=0), np.percentile(obs, 99, axis=0)
    ones = torch.ones(task.n_act)
    policy.set_scaling(torch.tensor(low), torch.tensor(high), -ones, ones)


class Distributed:
    """torchrun's environment, or a single process."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if device == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def average_gradients(self, policy: Policy) -> None:
        if self.world == 1:
            return
        for p in policy.parameters():
            if p.grad is not None:
                torch.distributed.all_reduce(p.grad)
                p.grad /= self.world

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t) / self.world


def resolve_device(name: str) -> torch.device:
    if name not in ("cpu", "cuda"):
        raise TrainError(f"device must be cpu or cuda, not {name!r}.")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda was asked for but torch sees no CUDA device.")
    return torch.device(name)


class Rollout:
    """A batch of episodes in flight and the policy state that goes with it."""

    def __init__(self, cfg: TrainConfig, policy: Policy, seed: int, device: torch.device) -> None:
        self.cfg, self.policy, self.device = cfg, policy, device
        self.task = TASKS[cfg.task]
        self.rng = np.random.default_rng(seed)
        self.episodes = 0
        self._new_batch(1.0 if cfg.clean_steps > 0 else None)

    def _new_batch(self, p_none: float | None = None) -> None:
        seed = int(self.rng.integers(2**31))
        p_none = self.cfg.p_none if p_none is None else p_none
        faults = FaultBatch.sample(
            self.rng, self.cfg.batch, self.cfg.kinds, False, self.cfg.onset, p_none, self.task.bands
        )
        self.env = self.task.new_batch(faults, seed, True, self.cfg.episode_steps)
        self.obs = self.env.observe()
        self.state = self.policy.initial_state(self.cfg.batch)
        self.state = _to(self.state, self.device)
        self.episodes += self.cfg.batch
        self.chip_faults = None
        if self.cfg.stuck_synapses or self.cfg.dead_neurons:
            generator = torch.Generator().manual_seed(int(self.rng.integers(2**31)))
            self.chip_faults = ChipFaults.sample(
                self.policy.config,
                self.cfg.batch,
                self.cfg.stuck_synapses,
                self.cfg.dead_neurons,
                generator,
            ).to(self.device)

    def window_loss(self, beta: float, clean: bool = False) -> torch.Tensor:
        """Run one BPTT window; the imitation loss with its graph.

        ``clean`` starts any new batch fault-free (the curriculum's first phase). With
        ``trace_penalty`` the loss adds the mean squared trace contribution ``(alpha*H)^2`` of
        episodes whose fault is not acting (yet): fault-free, the trace should stay near zero, so
        learning on and off agree there and the rule only moves H when something changed.
        """
        if self.env.t >= self.cfg.episode_steps:
            self._new_batch(1.0 if clean else None)
        self.policy.chip_faults = self.chip_faults
        try:
            return self._window_loss(beta)
        finally:
            self.policy.chip_faults = None  # evaluation and checkpoints see a healthy chip

    def _window_loss(self, beta: float) -> torch.Tensor:
        penalise = self.cfg.trace_penalty > 0 and getattr(self.policy, "plastic", False)
        window = open_window(self.policy, self.state, self.cfg.window, self.cfg.engine, penalise)
        targets, calm = [], []
        for _ in range(self.cfg.window):
            quiet = ~self.env.active
            if self.chip_faults is not None:  # a faulty chip is something to adapt to, as well
                quiet = quiet & ~self.chip_faults.faulty.cpu().numpy()
            calm.append(quiet)
            student = window.step(torch.as_tensor(self.obs, device=self.device))
            target = self.env.teacher(True)
            targets.append(target)
            take_teacher = self.rng.random(self.cfg.batch) < beta
            executed = np.where(take_teacher[:, None], target, student.clamp(-1, 1).cpu().numpy())
            self.obs, _ = self.env.step(executed)
        actions, trace_sq, self.state = window.finish()
        error = actions - torch.as_tensor(np.stack(targets), device=self.device)
        loss = (error.abs() if self.cfg.loss == "l1" else error**2).mean(dim=(1, 2)).sum()
        if penalise:  # the trace's contribution (alpha * H)**2, per synapse row, while calm
            drift = self.policy.alpha**2 * trace_sq / self.policy.config.n_hidden
            calm_steps = torch.as_tensor(np.stack(calm), device=self.device)
            loss = loss + self.cfg.trace_penalty * (drift * calm_steps).mean(dim=1).sum()
        return loss / self.cfg.window


def _to(state: Any, device: torch.device) -> Any:
    if isinstance(state, torch.Tensor):
        return state.to(device)
    if isinstance(state, tuple):
        items = [_to(s, device) for s in state]
        return type(state)(*items) if hasattr(state, "_fields") else tuple(items)
    return state


def validate(
    policy: Policy, seed: int, device: torch.device, episodes: int = 16, task_id: str = TASK_ID
) -> float:
    """Mean per-step return on seeded episodes at *training* magnitudes (never the eval set)."""
    task = get_task(task_id)
    rng = np.random.default_rng(seed)
    faults = FaultBatch.sample(
        rng, episodes, task.trained_kinds, held_out=False, onset=50, bands=task.bands
    )
    returns = run_episodes(policy, task.new_batch(faults, seed, False, 120), 120, device)
    return float(returns.mean())


@torch.no_grad()
def run_episodes(
    policy: Policy | Callable[[Any], np.ndarray],
    env: Any,
    steps: int,
    device: torch.device | None = None,
) -> np.ndarray:
    """Per-step rewards (steps, B) of a policy (or a teacher: a function of the env) on a task's
    batch (``ArmReachBatch``, ``GymBatch``)."""
    rewards = np.zeros((steps, env.batch))
    state = None
    if isinstance(policy, Policy):
        state = _to(policy.initial_state(env.batch), device or torch.device("cpu"))
    obs = env.observe()
    for t in range(steps):
        if isinstance(policy, Policy):
            action, state = policy(torch.as_tensor(obs, device=device), state)
            executed = action.clamp(-1, 1).cpu().numpy()
        else:
            executed = policy(env)
        obs, rewards[t] = env.step(executed)
    return rewards


def train(
    cfg: TrainConfig,
    out: Path,
    resume: bool = True,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    build_policy: Callable[..., Policy] = build_policy,
) -> dict[str, Any]:
    """Train one policy into ``out`` (model.pt, resume.pt, config.json, metrics.json, PNGs).

    ``build_policy(model_config, seed)`` makes the policy (a study's candidate mechanism)."""
    threads, kernel_threads = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(cfg.threads)
    numba.set_num_threads(min(cfg.threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_flush_denormal(True)  # decaying traces otherwise crawl through denormals
    try:
        return _train(cfg, out, resume, progress, build_policy)
    finally:
        # These settings are process-wide (flush-to-zero is a CPU flag that numpy and hypothesis
        # see too): whoever called train() gets its numerics back.
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)
        numba.set_num_threads(kernel_threads)


def _train(
    cfg: TrainConfig,
    out: Path,
    resume: bool,
    progress: Callable[[int, int, dict[str, float]], None] | None,
    build_policy: Callable[..., Policy],
) -> dict[str, Any]:
    dist = Distributed(cfg.device)
    device = resolve_device(cfg.device)
    first_stage = read_init_from(cfg)  # a bad --init-from fails before --out is touched
    torch.manual_seed(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)

    mcfg = model_config(cfg)
    policy = build_policy(mcfg, seed=cfg.seed)
    fit_scaling(policy, cfg.seed, cfg.task)
    if first_stage is not None:
        policy.load_state_dict(first_stage["state_dict"])
    policy.to(device)
    optimiser = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=cfg.lr)
    history: dict[str, list] = {"step": [], "loss": [], "val_step": [], "val_return": []}
    start = 0
    rollout = Rollout(cfg, policy, cfg.seed * ROLLOUT_SEED_STRIDE + dist.rank, device)
    resume_path = out / RESUME_FILE
    if resume and resume_path.exists():
        saved = torch.load(resume_path, map_location=device, weights_only=False)
        if _without_steps(saved["train"]) != _without_steps(_json_config(cfg)):
            raise TrainError(
                f"{resume_path} belongs to a different configuration; use another --out or "
                "--no-resume."
            )
        policy.load_state_dict(saved["state_dict"])
        optimiser.load_state_dict(saved["optimiser"])
        history, start = saved["history"], saved["step"]
        rollout.rng.bit_generator.state = saved["rng"][dist.rank % len(saved["rng"])]
        rollout._new_batch(
            1.0 if start < cfg.clean_steps else None
        )  # resumes at the start of a fresh batch of episodes
        log.info("resuming %s at step %d", out, start)

    started = time.monotonic()
    for step in range(start, cfg.steps):
        beta = cfg.beta_start * max(0.0, 1.0 - step / (0.5 * cfg.steps))
        for group in optimiser.param_groups:
            group["lr"] = cfg.lr * cosine(step / cfg.steps, cfg.lr_final)
        optimiser.zero_grad()
        loss = rollout.window_loss(beta, clean=step < cfg.clean_steps)
        loss.backward()
        dist.average_gradients(policy)
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimiser.step()
        history["step"].append(step + 1)
        history["loss"].append(dist.mean(float(loss.detach())))
        metrics = {"loss": history["loss"][-1], "beta": beta}
        if (step + 1) % cfg.validate_every == 0 or step + 1 == cfg.steps:
            history["val_step"].append(step + 1)
            history["val_return"].append(
                validate(policy, VALIDATION_SEED, device, task_id=cfg.task)
            )
            metrics["val_return"] = history["val_return"][-1]
        if progress is not None and dist.main:
            progress(step + 1, cfg.steps, metrics)
        if dist.main and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
            _save_resume(resume_path, cfg, policy, optimiser, history, step + 1, rollout)
    elapsed = time.monotonic() - started

    summary = {
        "model": cfg.model,
        "parameters": count_parameters(policy),
        "hidden": mcfg.n_hidden,
        "steps": cfg.steps,
        "episodes_per_process": rollout.episodes,
        "processes": dist.world,
        "seconds": round(elapsed, 1),
        "final_loss": float(np.mean(history["loss"][-20:])) if history["loss"] else None,
        "final_val_return": history["val_return"][-1] if history["val_return"] else None,
    }
    if dist.main:
        policy.cpu()
        save_model(out / MODEL_FILE, policy, _json_config(cfg), cfg.steps)
        write_json(out / "config.json", {"train": _json_config(cfg), "model": mcfg.to_dict()})
        write_json(out / "metrics.json", {"summary": summary, "history": history})
        plot_curves(history, out, cfg.model)
    return summary


def read_init_from(cfg: TrainConfig) -> dict[str, Any] | None:
    """The checkpoint record of ``cfg.init_from`` (None without one), read and checked against
    this run's shapes: a second stage (e.g. ``--quantized`` fine-tuning after float training)
    starts from its weights and scaling, so it must hold the same model at the same sizes.
    Cheap (it builds a throwaway policy, no rollouts), so callers check it before printing
    progress or writing into ``--out``."""
    from train.checkpoint import read_checkpoint

    if not cfg.init_from:
        return None
    record = read_checkpoint(cfg.init_from)
    mcfg = model_config(cfg)
    mine = build_policy(mcfg).state_dict()
    theirs = record["state_dict"]
    if mine.keys() != theirs.keys() or any(mine[k].shape != theirs[k].shape for k in mine):
        c = record["config"]

        def shape(kind: Any, hidden: Any, modulator: Any, integral: Any) -> str:
            extras = ["a modulator"] if modulator else []
            extras += [f"an integral readout (shift {integral})"] if integral else []
            return f"{kind} policy with {hidden} hidden units" + "".join(
                f" and {e}" for e in extras
            )

        theirs_shape = shape(
            c.get("kind"), c.get("n_hidden"), c.get("modulator"), c.get("integral_shift")
        )
        mine_shape = shape(mcfg.kind, mcfg.n_hidden, mcfg.modulator, mcfg.integral_shift)
        raise TrainError(
            f"--init-from {cfg.init_from} holds a {theirs_shape}; it must match this run's "
            f"{mine_shape}."
        )
    return record


def cosine(progress: float, final: float) -> float:
    """Learning-rate factor: 1 at the start, ``final`` at the end, a half cosine between."""
    return final + (1.0 - final) * 0.5 * (1.0 + float(np.cos(np.pi * progress)))


def _json_config(cfg: TrainConfig) -> dict[str, Any]:
    data = asdict(cfg)
    data["onset"] = list(cfg.onset)
    data["kinds"] = list(cfg.kinds)
    return data


def _without_steps(config: dict[str, Any]) -> dict[str, Any]:
    """Resuming may extend a run (more --steps) or change engine; everything else must match."""
    return {k: v for k, v in config.items() if k not in ("steps", "checkpoint_every", "engine")}


def _save_resume(path: Path, cfg, policy, optimiser, history, step, rollout) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "train": _json_config(cfg),
            "state_dict": policy.state_dict(),
            "optimiser": optimiser.state_dict(),
            "history": history,
            "step": step,
            "rng": [rollout.rng.bit_generator.state],
        },
        tmp,
    )
    tmp.replace(path)


def plot_curves(history: dict[str, list], out: Path, name: str) -> None:
    """loss.png and val_return.png (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for key, xs, ys, label in (
        ("loss", history["step"], history["loss"], "training loss"),
        ("val_return", history["val_step"], history["val_return"], "validation return / step"),
    ):
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(xs, ys)
        ax.set_xlabel("update")
        ax.set_ylabel(label)
        ax.set_title(f"{name}: {label}")
        fig.tight_layout()
        fig.savefig(out / f"{key}.png", dpi=80)
        plt.close(fig)
