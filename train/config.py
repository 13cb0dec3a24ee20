"""One training run's configuration, and the policy shape it implies.

Every field of :class:`TrainConfig` is in the run's config.json. A field made with
:func:`option` is also a ``glocal train`` option: its help text and its argparse spelling (a
``flag`` other than ``--field-name``, ``metavar``, ``nargs``, ``choices``) sit beside its
default, which is written only here; ``train/cli.py`` builds the parser from these fields.

This module stays free of torch: the CLI builds every verb's parser at every start (the
emulated board's ``glocal board`` too), so the checks that need the model import
``train.models`` when a config is made, not when this module is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from train.errors import TrainError
from train.fault_batch import TRAINED_KINDS
from train.tasks import TASK_ID, TASKS, get_task

if TYPE_CHECKING:
    from train.models import ModelConfig


def option(default: Any, help: str, **argparse_options: Any) -> Any:
    """A config field that ``glocal train`` takes as an option (see the module docstring)."""
    return field(default=default, metadata={"help": help, **argparse_options})


@dataclass(frozen=True)
class TrainConfig:
    """One training run; every field is in config.json."""

    model: str = option("hp", "policy: hp (hybrid plasticity), gp, lp, lstm or mlp")
    task: str = option(
        TASK_ID, "task id: glocal/ArmReach-v0 or Reacher-v5 (MuJoCo; train.tasks.TASKS)"
    )
    seed: int = option(0, "seed of weights, episodes and faults")
    steps: int = option(400, "optimiser updates (BPTT windows)")
    batch: int = option(32, "episodes stepped together per process")
    window: int = option(20, "control steps per BPTT window")
    episode_steps: int = option(300, "control steps per episode")
    onset: tuple[int, int] = option(
        (20, 150),
        "fault onset step, uniform in [FIRST, LAST]",
        nargs=2,
        metavar=("FIRST", "LAST"),
    )
    p_none: float = option(0.15, "fraction of fault-free episodes")
    clean_steps: int = option(0, "first updates on fault-free episodes only")
    trace_penalty: float = option(
        0.0, "weight of the trace's squared contribution while no fault acts (hp, lp)"
    )
    stuck_synapses: float = option(
        0.0,
        "on-chip faults in training (hp, gp, lp): half the episodes get up to this fraction "
        "of synapses stuck at zero",
        metavar="FRACTION",
    )
    dead_neurons: float = option(
        0.0, "... and up to this fraction of dead hidden neurons", metavar="FRACTION"
    )
    lam_logit: float = option(
        3.0, "initial logit of the trace decay lambda per tick (3: 0.95, 5: 0.993)"
    )
    # 1: a busy 2-core box thrashes on 2
    threads: int = option(1, "torch threads per process")
    kinds: tuple[str, ...] = option(
        TRAINED_KINDS, "fault kinds to train on (a subset of the default)", nargs="+"
    )
    lr: float = option(3e-3, "Adam learning rate (a half cosine down to lr_final times it)")
    loss: str = "l1"  # imitation loss: mse, or l1 (weighs the small steady-state errors more)
    lr_final: float = 0.1  # cosine decay of the learning rate to this fraction of lr
    n_hidden: int = option(
        64,
        "hidden LIF neurons (LSTM and MLP widths are matched to HP's parameter count)",
        flag="--hidden",
    )
    ticks: int = option(8, "board ticks per control step")
    beta_start: float = option(
        0.5, "DAgger: share of teacher actions executed at the start (annealed to 0 by half-way)"
    )
    quantized: bool = option(False, "train through the board's integers")
    modulator: bool = option(
        False,
        "three-factor rule (hp, lp): the last hidden neuron's spike switches the learning "
        "rate between two learned levels (the board's mod_src / mod_levels)",
    )
    integral_shift: int = option(
        0,
        "hp, gp, lp: give every action a second, slow readout neuron with this decay shift "
        "(8: a time constant of 256 ticks, 32 control steps), decoded at 4 times a fast "
        "neuron's DC gain, so the network can learn integral action (default 0: none)",
        flag="--integral-readout",
        metavar="SHIFT",
    )
    init_from: str | None = option(
        None,
        "start from this checkpoint's weights (a second stage, e.g. --quantized fine-tuning)",
        metavar="CHECKPOINT",
    )
    checkpoint_every: int = option(50, "updates between resume.pt")
    validate_every: int = 100
    device: str = option("cpu", "where to train", choices=("cpu", "cuda"))
    engine: str = option(
        "auto",
        "BPTT engine: fused (hp, gp, lp on the CPU: one compiled node per window), autograd "
        "(torch's, every policy and device), or auto (fused where it runs)",
        choices=("auto", "fused", "autograd"),
    )

    def __post_init__(self) -> None:
        from train.models import MODEL_KINDS, SPIKING_KINDS  # torch: see the module docstring

        task = get_task(self.task)
        if self.model not in MODEL_KINDS:
            raise TrainError(f"model must be one of {', '.join(MODEL_KINDS)}, not {self.model!r}.")
        if self.steps < 1 or self.batch < 1 or self.window < 1:
            raise TrainError("steps, batch and window must be positive.")
        if self.loss not in ("mse", "l1"):
            raise TrainError(f"loss must be mse or l1, not {self.loss!r}.")
        if self.episode_steps % self.window:
            raise TrainError("episode_steps must be a multiple of window.")
        if self.trace_penalty > 0 and self.quantized:
            raise TrainError("--trace-penalty reads the float trace; drop it or --quantized.")
        if not self.kinds or set(self.kinds) - set(task.trained_kinds):
            raise TrainError(f"kinds must be a subset of {', '.join(task.trained_kinds)}.")
        if not 0.0 <= self.p_none <= 1.0 or self.trace_penalty < 0 or self.threads < 1:
            raise TrainError("p_none must lie in [0, 1], trace_penalty >= 0 and threads >= 1.")
        if not 0.0 <= self.beta_start <= 1.0:
            raise TrainError("--beta-start is a share of steps in [0, 1].")
        if not (0.0 <= self.stuck_synapses < 1.0 and 0.0 <= self.dead_neurons < 1.0):
            raise TrainError("--stuck-synapses and --dead-neurons are fractions in [0, 1).")
        if self.modulator and self.model not in ("hp", "lp"):
            raise TrainError("--modulator gates the local rule; only hp and lp have one.")
        if self.integral_shift and self.model not in SPIKING_KINDS:
            raise TrainError("--integral-readout is a readout neuron; only hp, gp and lp have one.")
        if (self.stuck_synapses or self.dead_neurons) and self.model not in SPIKING_KINDS:
            raise TrainError("on-chip faults exist for the spiking models (hp, gp, lp) only.")
        if self.engine == "fused" and (self.model not in SPIKING_KINDS or self.device != "cpu"):
            raise TrainError(
                "--engine fused runs hp, gp and lp on the CPU; use --engine autograd (or auto)."
            )
        if self.model in SPIKING_KINDS:
            model_config(self)  # the policy's own checks, before anything prints or is written


def model_config(cfg: TrainConfig) -> ModelConfig:
    """The policy's shape: spiking kinds at ``n_hidden``, LSTM/MLP matched to HP's parameters."""
    from train.models import (  # torch: see the module docstring
        SPIKING_KINDS,
        ModelConfig,
        build_policy,
        count_parameters,
        matched_hidden,
    )

    task = TASKS[cfg.task]
    n_obs, n_act = task.n_obs, task.n_act
    base = ModelConfig(
        cfg.model, n_obs, n_act, cfg.n_hidden, ticks=cfg.ticks, lam_logit=cfg.lam_logit
    )
    if cfg.model in SPIKING_KINDS:
        return replace(
            base,
            quantized=cfg.quantized,
            modulator=cfg.modulator,
            integral_shift=cfg.integral_shift,
        )
    target = count_parameters(build_policy(replace(base, kind="hp")))
    return replace(base, n_hidden=matched_hidden(cfg.model, n_obs, n_act, target))
