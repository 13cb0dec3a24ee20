"""Policies: the HP spiking network and its baselines (GP, LP, LSTM, MLP) behind one interface.

Every policy maps ``(obs (B, n_obs), state) -> (action (B, n_act), state)`` for one control step
and says how to start and detach its state, so one training loop and one evaluation serve all.

========  ===========================================================================
``hp``    spiking net, W learned by BPTT, trace H adapted by the meta-learned local rule
``gp``    the same net with alpha = 0 and no trace (global learning only)
``lp``    the same net with W of the hidden layer frozen at its random init; only the local
          rule's meta-parameters (and the readout) are learned
``lstm``  a non-spiking LSTM cell (one update per control step), parameter count matched
``mlp``   a memoryless two-hidden-layer tanh MLP, parameter count matched
========  ===========================================================================
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from train.errors import TrainError
from train.quant import BoardNumerics, QuantisedNet, quantise_net
from train.snn import LayerParams, NetParams, PlasticParams, init_net_state, net_step

MODEL_KINDS = ("hp", "gp", "lp", "lstm", "mlp")
SPIKING_KINDS = ("hp", "gp", "lp")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a policy (saved as the checkpoint's ``config``)."""

    kind: str
    n_obs: int
    n_act: int
    n_hidden: int = 64
    ticks: int = 8
    decay_shift: int = 2  # hidden layer: v <- v - v/4 per tick
    readout_decay_shift: int = 2
    reset: str = "soft"
    h_max: float = 1.0
    surrogate_width: float = 1.0
    input_scale: int = 16  # board input units per float input unit on encoder axons
    lam_logit: float = 3.0  # initial logit of the trace decay: sigmoid(3) ~ 0.95 per tick
    quantized: bool = False  # train through the board's integer semantics (train.quant)
    modulator: bool = False  # HP, LP: the last hidden neuron gates the rule (learned levels)
    # Integral readout (HP, GP, LP): > 0 gives every action a second, slow readout neuron with
    # this decay_shift, decoded at ``integral_gain`` times a fast neuron's DC gain.
    integral_shift: int = 0
    integral_gain: float = 4.0

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise TrainError(
                f"unknown model {self.kind!r}; choose one of {', '.join(MODEL_KINDS)}."
            )
        if self.n_hidden < 1 or self.ticks < 1:
            raise TrainError("n_hidden and ticks must be positive integers.")
        if self.modulator and self.kind not in ("hp", "lp"):
            raise TrainError("a modulator gates the plastic rule; only hp and lp have one.")
        if self.integral_shift and self.kind not in SPIKING_KINDS:
            raise TrainError(
                "an integral readout is a readout neuron; only hp, gp and lp have one."
            )
        fast = self.readout_decay_shift
        if self.integral_shift and not fast < self.integral_shift <= 23:
            raise TrainError(
                f"the integral readout's decay shift must lie in {fast + 1}-23 (slower than the "
                f"readout's {fast}), not {self.integral_shift}."
            )

    @property
    def n_readout(self) -> int:
        """Readout neurons: one per action, two with an integral readout (channel-major: neuron
        ``c * n_act + a`` feeds action ``a``)."""
        return self.n_act * (2 if self.integral_shift else 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Policy(nn.Module):
    """Common interface; ``enc_gain``/``enc_bias`` normalise observations into [-1, 1]."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("enc_gain", torch.ones(config.n_obs))
        self.register_buffer("enc_bias", torch.zeros(config.n_obs))
        self.register_buffer("dec_gain", torch.ones(config.n_act))
        self.register_buffer("dec_bias", torch.zeros(config.n_act))

    def set_scaling(
        self,
        obs_low: torch.Tensor,
        obs_high: torch.Tensor,
        act_low: torch.Tensor,
        act_high: torch.Tensor,
    ) -> None:
        """Map the observed range of each input onto [-1, 1] and [-1, 1] onto the action range."""
        span = (obs_high - obs_low).clamp_min(1e-6)
        self.enc_gain.copy_(2.0 / span)
        self.enc_bias.copy_(-(obs_high + obs_low) / span)
        self.dec_gain.copy_((act_high - act_low) / 2.0)
        self.dec_bias.copy_((act_high + act_low) / 2.0)

    def normalise(self, obs: torch.Tensor) -> torch.Tensor:
        return obs * self.enc_gain + self.enc_bias

    def initial_state(self, batch: int) -> Any:
        raise NotImplementedError

    def forward(self, obs: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class ChipFaults:
    """On-chip faults of a batch of episodes, drawn as the board draws them (docs/board-spec.md
    §8), so training can see the faults the chip will have: stuck-at-zero synapses (the whole
    ``w_eff``, trace included) and dead hidden neurons. A dead readout neuron is left out: nothing
    downstream could make up for it."""

    hidden_keep: torch.Tensor  # (B, n_obs + n_hidden, n_hidden): 0 where stuck at zero
    readout_keep: torch.Tensor  # (B, n_hidden, n_readout)
    hidden_alive: torch.Tensor  # (B, n_hidden): 0 where dead
    faulty: torch.Tensor  # (B,) bool: the episode has any fault

    @classmethod
    def sample(
        cls,
        config: ModelConfig,
        batch: int,
        stuck_max: float,
        dead_max: float,
        generator: torch.Generator,
        p_faulty: float = 0.5,
    ) -> ChipFaults:
        """A fraction ``p_faulty`` of episodes gets faults, each kind at a fraction drawn
        uniformly up to its maximum; the other episodes run fault-free."""

        def fractions(most: float) -> torch.Tensor:
            faulty = torch.rand(batch, generator=generator) < p_faulty
            return torch.rand(batch, generator=generator) * most * faulty

        def keep(shape: tuple[int, ...], fraction: torch.Tensor) -> torch.Tensor:
            drawn = torch.rand((batch, *shape), generator=generator)
            return (drawn >= fraction.view(-1, *([1] * len(shape)))).float()

        n_pre = config.n_obs + config.n_hidden
        stuck, dead = fractions(stuck_max), fractions(dead_max)
        return cls(
            hidden_keep=keep((n_pre, config.n_hidden), stuck),
            readout_keep=keep((config.n_hidden, config.n_readout), stuck),
            hidden_alive=keep((config.n_hidden,), dead),
            faulty=(stuck > 0) | (dead > 0),
        )

    def to(self, device: torch.device) -> ChipFaults:
        return ChipFaults(*(getattr(self, f.name).to(device) for f in fields(self)))


def detach_state(state: Any) -> Any:
    """Cut the BPTT graph at a window boundary (state values are kept)."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, tuple):
        items = [detach_state(item) for item in state]
        return type(state)(*items) if hasattr(state, "_fields") else tuple(items)
    return state


def reset_state_rows(state: Any, fresh: Any, done: torch.Tensor) -> Any:
    """Replace the state of finished episodes (``done`` (B,) bool) with a fresh one."""
    if isinstance(state, torch.Tensor):
        if state.dim() == 0 or state.shape[0] != done.shape[0]:
            return state
        mask = done.reshape(-1, *([1] * (state.dim() - 1)))
        return torch.where(mask, fresh, state)
    if isinstance(state, tuple):
        items = [reset_state_rows(s, f, done) for s, f in zip(state, fresh, strict=True)]
        return type(state)(*items) if hasattr(state, "_fields") else tuple(items)
    return state


class SpikingPolicy(Policy):
    """HP / GP / LP: the board network of :mod:`train.snn` with learnable tensors."""

    def __init__(self, config: ModelConfig, generator: torch.Generator | None = None) -> None:
        super().__init__(config)
        n_pre = config.n_obs + config.n_hidden
        g = generator
        w_in = torch.randn(config.n_obs, config.n_hidden, generator=g) * (
            1.5 / math.sqrt(config.n_obs)
        )
        w_rec = torch.randn(config.n_hidden, config.n_hidden, generator=g) * (
            0.5 / math.sqrt(config.n_hidden)
        )
        w_out = torch.randn(config.n_hidden, config.n_act, generator=g) * (
            0.5 / math.sqrt(config.n_hidden)
        )
        if config.integral_shift:  # the slow neurons start silent: the plain readout at first
            w_out = torch.cat([w_out, torch.zeros_like(w_out)], dim=1)
        self.w_hidden = nn.Parameter(torch.cat([w_in, w_rec]), requires_grad=config.kind != "lp")
        self.theta_hidden = nn.Parameter(torch.ones(config.n_hidden))
        self.w_readout = nn.Parameter(w_out)
        self.plastic = config.kind in ("hp", "lp")
        if self.plastic:
            self.alpha = nn.Parameter(torch.tensor(0.1))
            self.lam_logit = nn.Parameter(torch.tensor(float(config.lam_logit)))
            self.eta_pre = nn.Parameter(torch.full((n_pre,), 0.01))
            self.beta_post = nn.Parameter(torch.full((config.n_hidden,), 0.2))
            # The board clips every row at one integer h_max; encoder rows store their trace
            # input_scale times coarser (train.quant), so in float units they clip that much later.
            rows = torch.cat(
                [
                    torch.full((config.n_obs,), float(config.input_scale)),
                    torch.ones(config.n_hidden),
                ]
            )
            self.register_buffer("h_max_rows", (config.h_max * rows).unsqueeze(1))
            if config.modulator:  # both levels 1: starts as the unmodulated rule
                self.mod_levels = nn.Parameter(torch.ones(2))
        self.chip_faults: ChipFaults | None = None  # set by training for fault tolerance

    def net_params(self) -> NetParams:
        """The immutable parameter record the pure step function runs on."""
        c, faults = self.config, self.chip_faults
        rule = None
        if self.plastic:
            rule = PlasticParams(
                alpha=self.alpha,
                lam=torch.sigmoid(self.lam_logit),
                eta_pre=self.eta_pre,
                beta_post=self.beta_post,
                h_max=self.h_max_rows,
                **self.modulation(),
            )
        hidden = LayerParams(
            w=self.w_hidden,
            theta=self.theta_hidden,
            decay_shift=c.decay_shift,
            reset=c.reset,
            plastic=rule,
            surrogate_width=c.surrogate_width,
            synapse_keep=faults.hidden_keep if faults else None,
            neuron_alive=faults.hidden_alive if faults else None,
        )
        readout = LayerParams(
            w=self.w_readout,
            theta=self.w_readout.new_zeros(c.n_readout),
            decay_shift=self.readout_decay_shifts(),
            spiking=False,
            synapse_keep=faults.readout_keep if faults else None,
        )
        return NetParams(
            hidden=hidden,
            readout=readout,
            ticks=c.ticks,
            enc_gain=self.enc_gain,
            enc_bias=self.enc_bias,
            dec_gain=self.readout_gains(),
            dec_bias=self.dec_bias,
        )

    def readout_decay_shifts(self) -> int | torch.Tensor:
        """One shift for the plain readout; per neuron (fast, then slow) with an integral one."""
        c = self.config
        if not c.integral_shift:
            return c.readout_decay_shift
        return torch.cat(
            [
                self.w_readout.new_full((c.n_act,), float(s))
                for s in (c.readout_decay_shift, c.integral_shift)
            ]
        )

    def readout_gains(self) -> torch.Tensor:
        """The decoder's gain per readout neuron. A leaky neuron's steady membrane is
        ``2**decay_shift`` times its input, so a slow neuron is scaled down by the ratio of the two
        and up by ``integral_gain``: with the same weights it answers a lasting input
        ``integral_gain`` times as strongly as a fast one, only ``2**(S - fast)`` times slower."""
        c = self.config
        if not c.integral_shift:
            return self.dec_gain
        slow = c.integral_gain * 2.0 ** (c.readout_decay_shift - c.integral_shift)
        return torch.cat([self.dec_gain, self.dec_gain * slow])

    def modulation(self) -> dict[str, Any]:
        """The rule's third factor: the last hidden neuron and its two learned levels."""
        if not self.config.modulator:
            return {}
        return {"mod_neuron": self.config.n_hidden - 1, "mod_levels": self.mod_levels}

    def initial_state(self, batch: int) -> Any:
        return init_net_state(self.net_params(), batch)

    def board_net(self) -> QuantisedNet:
        """The network as the board runs it: integer tables plus host-side scales."""
        return quantise_net(self.net_params(), self.config.input_scale)

    def forward(self, obs: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        if self.config.quantized:
            return net_step(obs, state, self.board_net().params, BoardNumerics())
        return net_step(obs, state, self.net_params())


class LSTMPolicy(Policy):
    """Implicit system identification: an LSTM cell updated once per control step."""

    def __init__(self, config: ModelConfig, generator: torch.Generator | None = None) -> None:
        super().__init__(config)
        self.cell = nn.LSTMCell(config.n_obs, config.n_hidden)
        self.head = nn.Linear(config.n_hidden, config.n_act)
        _reinit(self, generator)

    def initial_state(self, batch: int) -> Any:
        zeros = self.head.weight.new_zeros(batch, self.config.n_hidden)
        return (zeros, zeros.clone())

    def forward(self, obs: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        h, c = self.cell(self.normalise(obs), state)
        return self.head(h) * self.dec_gain + self.dec_bias, (h, c)


class MLPPolicy(Policy):
    """Memoryless floor: whatever it closes is robustness, not adaptation."""

    def __init__(self, config: ModelConfig, generator: torch.Generator | None = None) -> None:
        super().__init__(config)
        n = config.n_hidden
        self.net = nn.Sequential(
            nn.Linear(config.n_obs, n),
            nn.Tanh(),
            nn.Linear(n, n),
            nn.Tanh(),
            nn.Linear(n, config.n_act),
        )
        _reinit(self, generator)

    def initial_state(self, batch: int) -> Any:
        return ()

    def forward(self, obs: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return self.net(self.normalise(obs)) * self.dec_gain + self.dec_bias, state


def _reinit(module: nn.Module, generator: torch.Generator | None) -> None:
    """torch's default uniform(+-1/sqrt(fan_in)) init, drawn from our own generator."""
    for name, p in module.named_parameters():
        fan_in = p.shape[-1] if p.dim() > 1 else p.shape[0]
        if "cell" in name:
            fan_in = module.config.n_hidden  # type: ignore[union-attr]
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            p.copy_(torch.rand(p.shape, generator=generator) * 2 * bound - bound)


def count_parameters(policy: nn.Module) -> int:
    """Learnable parameters (the trace H is state, not a parameter)."""
    return sum(p.numel() for p in policy.parameters() if p.requires_grad)


def matched_hidden(kind: str, n_obs: int, n_act: int, target: int) -> int:
    """Hidden width of an LSTM or MLP whose parameter count is closest to ``target``."""

    def count(n: int) -> int:
        return count_parameters(build_policy(ModelConfig(kind, n_obs, n_act, n)))

    return min(range(2, 257), key=lambda n: abs(count(n) - target))


def build_policy(config: ModelConfig, seed: int = 0) -> Policy:
    """A freshly initialised policy of ``config.kind``, reproducible from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    if config.kind in SPIKING_KINDS:
        policy: Policy = SpikingPolicy(config, generator)
    elif config.kind == "lstm":
        policy = LSTMPolicy(config, generator)
    else:
        policy = MLPPolicy(config, generator)
    return policy
