"""Hybrid-plasticity LIF layers as pure step functions over immutable records.

One tick of one layer, in the board's order (``docs/board-spec.md``, section 3)::

    H_i  <- lambda^k_i * H_i                      for active rows (x_i != 0), k_i = ticks idle
    I_j   = sum_i x_i * (W_ij + alpha * H_ij)                                  integrate
    v_j  <- sat(v_j - (v_j >> decay_shift) + I_j)                              leak and add
    s_j   = [v_j >= theta_j]                                                   fire
    v_j  <- v_j - theta_j * s_j  (soft)   or   0 where s_j (hard)              reset
    H_ij <- clip(H_ij + m * eta_i * x_i * f(s_j - beta_j), -h_max_i, h_max_i) plasticity

``x`` is what arrives on the layer's axons this tick: graded encoder currents on the first rows,
and the spikes that the sources emitted on the *previous* tick on the routed rows. ``f`` is the
clip-linear ``clip(u, -1, 1)``; ``v >> d`` is ``floor(v / 2**d)`` on the board. ``m`` is the
third factor: 1 without a modulator; with one, ``mod_levels[1]`` if the modulator neuron (one of
the layer's own) spiked on the previous tick and ``mod_levels[0]`` if it did not, so the network
can learn *when* (and with which sign) its synapses learn.

Two numerics share this one step body. :class:`Numerics` (float) works in dimensionless units,
threshold of order 1, and decays every row every tick, which in real arithmetic equals the board's
lazy decay. :class:`train.quant.BoardNumerics` runs the same body in the board's integer units
with its floors, saturations and lazy ``lambda**k`` table, straight-through for gradients.

The spike is a Heaviside step whose gradient is the seed paper's rectangular window:
``dS/dv = 1/width`` where ``|v - theta| < width / 2``, else 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

RESET_MODES = ("soft", "hard")


class RectSpike(torch.autograd.Function):
    """Heaviside forward (``u >= 0``), rectangular-window surrogate backward."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, width: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.width = width
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (u,) = ctx.saved_tensors
        window = (u.abs() < ctx.width / 2).to(u.dtype) / ctx.width
        return grad_out * window, None


def spike(u: torch.Tensor, width: float) -> torch.Tensor:
    """``[u >= 0]`` with gradient ``1/width`` inside ``|u| < width/2``."""
    return RectSpike.apply(u, width)


class ClipAdd(torch.autograd.Function):
    """``clip(h + hebb, -h_max, h_max)`` that keeps one boolean mask for backward.

    Autograd's ``minimum(maximum(...))`` keeps float copies of the trace and splits ties in
    backward with where/div/eq over every (B, n_pre, n_post) entry: that was 40 % of an HP
    update's time. ``h_max`` is a buffer (no gradient); at the clip edge the gradient passes.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, hebb: torch.Tensor, h_max: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = h + hebb
        ctx.save_for_backward(total.abs() <= h_max)
        return torch.minimum(torch.maximum(total, -h_max), h_max)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (inside,) = ctx.saved_tensors
        grad = grad_out * inside
        return grad, grad, None


@dataclass(frozen=True)
class PlasticParams:
    """Meta-parameters of the local rule of one layer (learned in the outer loop)."""

    alpha: torch.Tensor  # scalar: weight of the trace in W + alpha*H
    lam: torch.Tensor  # scalar in [0, 1]: per-tick trace decay lambda
    eta_pre: torch.Tensor  # (n_pre,): per-presynaptic learning rate
    beta_post: torch.Tensor  # (n_post,): per-postsynaptic offset, in spikes
    h_max: torch.Tensor  # (n_pre, 1): trace clip per row (one board value, see train.quant)
    mod_neuron: int = -1  # the layer's neuron whose last spike gates m; -1: no modulator (m = 1)
    mod_levels: torch.Tensor | None = None  # (2,): m when the modulator was silent / spiked


@dataclass(frozen=True)
class LayerParams:
    """One LIF layer: weights, neuron constants and (optionally) its plastic synapse."""

    w: torch.Tensor  # (n_pre, n_post)
    theta: torch.Tensor  # (n_post,)
    decay_shift: int | torch.Tensor  # one shift, or one per neuron (n_post,)
    reset: str = "soft"
    plastic: PlasticParams | None = None
    surrogate_width: float = 1.0
    spiking: bool = True  # False: a leaky integrator read out by its membrane (the decoder)
    # On-chip faults of each episode (training for fault tolerance; docs/board-spec.md §8):
    synapse_keep: torch.Tensor | None = None  # (B, n_pre, n_post): 0 where w_eff is stuck at zero
    neuron_alive: torch.Tensor | None = None  # (B, n_post): 0 where the neuron never fires

    def __post_init__(self) -> None:
        if self.reset not in RESET_MODES:
            raise ValueError(f"reset must be one of {RESET_MODES}, not {self.reset!r}")


class LayerState(NamedTuple):
    """State of one layer: membrane, last spikes, trace and each trace row's idle ticks."""

    v_mem: torch.Tensor  # (B, n_post)
    spikes: torch.Tensor  # (B, n_post): emitted on the last tick (routed on the next)
    h: torch.Tensor  # (B, n_pre, n_post), or (B, 0, 0) without plasticity
    age: torch.Tensor  # (B, n_pre): ticks since the row was last brought up to date


@dataclass(frozen=True)
class Numerics:
    """Float evaluation of the rounding-sensitive operations (exact real arithmetic)."""

    def encode(self, obs: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return obs * gain + bias

    def decay(
        self, h: torch.Tensor, age: torch.Tensor, active: torch.Tensor, lam: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        del active  # decaying every row every tick equals the lazy form in real arithmetic
        return lam * h, age

    def current(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        rule: PlasticParams | None,
        h: torch.Tensor,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if keep is not None:  # stuck synapses: the whole w_eff is zero there, per episode
            w_eff = w if rule is None else w + rule.alpha * h
            return torch.bmm(x.unsqueeze(1), w_eff * keep).squeeze(1)
        current = x @ w
        if rule is not None:
            # alpha * (x . H) rather than x . (alpha * H): one small product instead of a big one
            current = current + rule.alpha * torch.bmm(x.unsqueeze(1), h).squeeze(1)
        return current

    def leak(self, v_mem: torch.Tensor, decay_shift: int | torch.Tensor) -> torch.Tensor:
        return v_mem - v_mem * 2.0**-decay_shift

    def membrane(self, v_mem: torch.Tensor) -> torch.Tensor:
        return v_mem

    def learn(self, h: torch.Tensor, hebb: torch.Tensor, h_max: torch.Tensor) -> torch.Tensor:
        return ClipAdd.apply(h, hebb, h_max)


def init_layer_state(params: LayerParams, batch: int) -> LayerState:
    """Zero membrane, no spikes, empty trace."""
    n_pre, n_post = params.w.shape
    like = params.w.detach()
    plastic = params.plastic is not None
    return LayerState(
        v_mem=like.new_zeros(batch, n_post),
        spikes=like.new_zeros(batch, n_post),
        h=like.new_zeros(batch, n_pre, n_post) if plastic else like.new_zeros(batch, 0, 0),
        age=like.new_zeros(batch, n_pre if plastic else 0),
    )


def layer_step(
    x: torch.Tensor, state: LayerState, params: LayerParams, numerics: Numerics = Numerics()
) -> LayerState:
    """One tick of one layer: integrate ``x`` (B, n_pre), leak, fire, reset, learn locally."""
    rule = params.plastic
    h, age = state.h, state.age
    if rule is not None:
        h, age = numerics.decay(h, age, x != 0, rule.lam)
    current = numerics.current(x, params.w, rule, h, params.synapse_keep)
    v_mem = numerics.membrane(numerics.leak(state.v_mem, params.decay_shift) + current)
    if params.spiking:
        spikes = spike(v_mem - params.theta, params.surrogate_width)
        if params.neuron_alive is not None:
            spikes = spikes * params.neuron_alive
        if params.reset == "soft":
            v_mem = numerics.membrane(v_mem - params.theta * spikes)
        else:
            v_mem = v_mem * (1.0 - spikes)
    else:
        spikes = torch.zeros_like(v_mem)
    if params.neuron_alive is not None:  # a dead neuron never fires and rests at zero
        v_mem = v_mem * params.neuron_alive
    if rule is not None:
        post = (spikes - rule.beta_post).clamp(-1.0, 1.0)
        pre = rule.eta_pre * x
        if rule.mod_levels is not None:  # third factor: the modulator's spike of tick t - 1
            low, high = rule.mod_levels[0], rule.mod_levels[1]
            fired = state.spikes[:, rule.mod_neuron].unsqueeze(1)
            pre = pre * (low + (high - low) * fired)
        hebb = pre.unsqueeze(2) * post.unsqueeze(1)
        h = numerics.learn(h, hebb, rule.h_max)
    return LayerState(v_mem, spikes, h, age)


@dataclass(frozen=True)
class NetParams:
    """The board network: obs -> encoder -> LIF hidden (plus recurrence) -> membrane readout.

    The hidden layer's axons are ``[encoder currents (n_obs), hidden spikes of the previous tick
    (n_hidden)]``; the readout layer integrates the hidden spikes of the previous tick and is
    decoded from its membrane after the step's last tick (``dec_mode = 1``).
    """

    hidden: LayerParams
    readout: LayerParams
    ticks: int
    enc_gain: torch.Tensor  # (n_obs,): x = obs * enc_gain + enc_bias
    enc_bias: torch.Tensor
    # (n_readout,): action a = sum of v_readout[c * n_act + a] * dec_gain[c * n_act + a] over the
    # readout's channels c (one, or two with an integral readout), plus dec_bias[a]
    dec_gain: torch.Tensor
    dec_bias: torch.Tensor  # (n_act,)


class NetState(NamedTuple):
    hidden: LayerState
    readout: LayerState


def init_net_state(params: NetParams, batch: int) -> NetState:
    return NetState(init_layer_state(params.hidden, batch), init_layer_state(params.readout, batch))


def net_step(
    obs: torch.Tensor, state: NetState, params: NetParams, numerics: Numerics = Numerics()
) -> tuple[torch.Tensor, NetState]:
    """One control step (``params.ticks`` ticks): observation (B, n_obs) to action (B, n_act)."""
    x_in = numerics.encode(obs, params.enc_gain, params.enc_bias)
    hidden, readout = state
    for _ in range(params.ticks):
        routed = hidden.spikes  # what the hidden layer sent on the previous tick
        hidden = layer_step(torch.cat([x_in, routed], dim=1), hidden, params.hidden, numerics)
        readout = layer_step(routed, readout, params.readout, numerics)
    return decode(readout.v_mem, params), NetState(hidden, readout)


def decode(v_readout: torch.Tensor, params: NetParams) -> torch.Tensor:
    """Actions (..., n_act) from readout membranes (..., n_readout): each action sums its
    channels' membranes times their decoder gains, plus its bias."""
    per_neuron = v_readout * params.dec_gain
    n_act = params.dec_bias.shape[0]
    return per_neuron.reshape(*per_neuron.shape[:-1], -1, n_act).sum(-2) + params.dec_bias
