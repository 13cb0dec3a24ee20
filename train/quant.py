"""Fake quantisation: the float network mapped onto the board's integers (``docs/board-spec.md``).

:func:`quantise_net` turns float :class:`~train.snn.NetParams` into integer-valued ones (held in
float tensors, rounded with straight-through gradients) and :class:`BoardNumerics` runs the one
step body of :mod:`train.snn` with the board's floors, saturations and lazy trace decay. In
float64 the result is the board, tick for tick; in float32 it is the board up to float rounding
of sums beyond 2^24, which is what quantisation-aware training needs.

The mapping, per layer (one layer = one core). Rows ``i`` are axons: encoder rows carry graded
inputs with ``r_i = input_scale`` board input units per float unit, routed rows carry spikes
(``r_i = 1``). With ``s`` the float weight of one int8 LSB on a spike row::

    s        = max(max|W_spike rows|, max|W_encoder rows| / input_scale) / 127
    K        = 256 / s                      board membrane units per float unit
    W_q      = round(W / (s * r_i))         int8
    theta_q  = round(theta * K)             24-bit, >= 1
    c_h      = 32767 / h_max                trace units per float trace unit (spike rows)
    H_q      = H * c_h / r_i                int16, so w_eff = (W_q << 8) + (alpha_q * H_q >> 8)
    alpha_q  = round(alpha * 65536 / (s * c_h))     Q7.8
    eta_q    = round(eta * c_h / r_i**2)    int16 (H units per unit of pre * f)
    beta_q   = round(beta * 256)            Q7.8 spike units
    lam_q    = round(lam * 65536)           Q0.16
    enc_gain_q, enc_bias_q = round(gain * r * 256), round(bias * r * 256)     Q7.8

``f`` is the clip-linear table ``f_table[d + 512] = clip(d, -256, 256)``. Without a modulator
``m = 256``; with one, ``mod_levels_q = round(256 * mod_levels)`` and ``mod_src`` names the
modulator neuron as ``(0, j)``, the layer's own first core (``deploy.mapping`` re-addresses it).
The readout layer is read by its membrane after the last tick (``dec_mode = 1``) and never fires
(``theta_q = 2^23 - 1``); its decoder gain is ``dec_gain / K`` in float (the board's int16
decoder weight and shift are a deploy choice).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from protocol.numeric import (
    AGE_MAX,
    ALPHA_ONE,
    BETA_ONE,
    ENC_GAIN_ONE,
    ENC_SHIFT,
    F_INDEX_MAX,
    F_INDEX_MIN,
    FINE_PER_WEIGHT_LSB,
    INPUT_MAX,
    INPUT_MIN,
    LAMBDA_ONE,
    MOD_ONE,
    OBS_MAX,
    OBS_MIN,
    OBS_ONE,
    PARAM_MAX,
    PARAM_MIN,
    TRACE_MAX,
    V_MAX,
    V_MIN,
    W_EFF_MAX,
    W_EFF_MIN,
    WEIGHT_MAX,
    WEIGHT_MIN,
    lambda_powers,
)
from train.snn import LayerParams, NetParams, Numerics, PlasticParams


def ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward ``q``, backward the identity to ``x`` (straight-through estimator)."""
    return x + (q - x).detach()


def ste_round(x: torch.Tensor, low: float | None = None, high: float | None = None) -> torch.Tensor:
    q = x.round()
    if low is not None or high is not None:
        q = q.clamp(low, high)
    return ste(x, q)


def ste_floor(x: torch.Tensor) -> torch.Tensor:
    return ste(x, x.floor())


@functools.lru_cache(maxsize=64)
def lambda_table(lam_q: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """:func:`lambda_powers` as a tensor, built once per value (the decay reads it every tick)."""
    return torch.tensor(lambda_powers(lam_q), dtype=dtype, device=device)


def clip_linear_f_table() -> np.ndarray:
    """``f(u) = clip(u, -1, 1)`` as the board's Q7.8 lookup table over ``d = -512..511``."""
    d = np.arange(F_INDEX_MIN, F_INDEX_MAX + 1)
    return np.clip(d, -BETA_ONE, BETA_ONE).astype(np.int16)


@dataclass(frozen=True)
class BoardNumerics(Numerics):
    """The board's integer semantics with straight-through gradients (values in board units)."""

    def encode(self, obs: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        obs_q = (obs.detach().double() * OBS_ONE).floor().clamp(OBS_MIN, OBS_MAX).to(obs.dtype)
        raw = (gain * obs_q + bias * OBS_ONE) / 2.0**ENC_SHIFT
        return ste_floor(raw).clamp(INPUT_MIN, INPUT_MAX)

    def decay(
        self, h: torch.Tensor, age: torch.Tensor, active: torch.Tensor, lam: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        age = age + 1
        k = age.clamp(max=AGE_MAX)
        table = lambda_table(int(round(float(lam.detach()) * LAMBDA_ONE)), h.dtype, h.device)
        factor = ste(lam**k, table[k.long()] / LAMBDA_ONE)
        decayed = ste_floor(h * factor.unsqueeze(2))
        h = torch.where(active.unsqueeze(2), decayed, h)
        return h, torch.where(active, torch.zeros_like(age), age)

    def current(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        rule: PlasticParams | None,
        h: torch.Tensor,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if rule is None and keep is None:
            return x @ (w * FINE_PER_WEIGHT_LSB)
        w_eff = w * FINE_PER_WEIGHT_LSB
        if rule is not None:
            w_eff = (w_eff + ste_floor(rule.alpha * h / ALPHA_ONE)).clamp(W_EFF_MIN, W_EFF_MAX)
        if keep is not None:
            w_eff = w_eff * keep
        return torch.bmm(x.unsqueeze(1), w_eff.expand(x.shape[0], -1, -1)).squeeze(1)

    def leak(self, v_mem: torch.Tensor, decay_shift: int | torch.Tensor) -> torch.Tensor:
        return v_mem - ste_floor(v_mem * 2.0**-decay_shift)

    def membrane(self, v_mem: torch.Tensor) -> torch.Tensor:
        return v_mem.clamp(V_MIN, V_MAX)

    def learn(self, h: torch.Tensor, hebb: torch.Tensor, h_max: torch.Tensor) -> torch.Tensor:
        return super().learn(h, ste_floor(hebb), h_max)


@dataclass(frozen=True)
class LayerScales:
    """Host-side scales of one quantised layer (the image carries them; the board ignores them)."""

    weight_lsb: float  # s: float weight per int8 LSB on a spike row
    fine_per_unit: float  # K: board membrane units per float membrane unit
    trace_per_unit: float  # c_h: trace units per float trace unit on a spike row
    row_scale: torch.Tensor  # r_i: board input units per float input unit, per axon


def layer_scales(params: LayerParams, row_scale: torch.Tensor, h_max: float) -> LayerScales:
    w = params.w.detach().abs() / row_scale.unsqueeze(1)
    weight_lsb = max(float(w.max()), 1e-8) / WEIGHT_MAX
    return LayerScales(
        weight_lsb=weight_lsb,
        fine_per_unit=FINE_PER_WEIGHT_LSB / weight_lsb,
        trace_per_unit=TRACE_MAX / h_max,
        row_scale=row_scale,
    )


def layer_units(params: LayerParams, scales: LayerScales) -> dict[str, torch.Tensor]:
    """The layer's tables in board units before rounding (the formulas of the module docstring):
    :func:`quantise_layer` rounds them, and deploy's report measures how far rounding moves them.
    ``theta`` only for a spiking layer, ``alpha``, ``eta`` and ``beta`` only for a plastic one."""
    s, k, r = scales.weight_lsb, scales.fine_per_unit, scales.row_scale
    units = {"weights": params.w / (s * r.unsqueeze(1))}
    if params.spiking:
        units["theta"] = params.theta * k
    rule = params.plastic
    if rule is not None:
        c_h = scales.trace_per_unit
        # alpha * h in float weight units is (alpha_q * H_q) >> 8 in fine units
        units["alpha"] = rule.alpha * ALPHA_ONE * FINE_PER_WEIGHT_LSB / (s * c_h)
        units["eta"] = rule.eta_pre * c_h / r**2
        units["beta"] = rule.beta_post * BETA_ONE
    return units


def encoder_units(values: torch.Tensor, input_scale: float) -> torch.Tensor:
    """Encoder gains or biases in board units before rounding (Q7.8 input units)."""
    return values * input_scale * ENC_GAIN_ONE


def quantise_layer(params: LayerParams, scales: LayerScales) -> LayerParams:
    """Integer-valued copy of one layer (straight-through), in board units."""
    units = layer_units(params, scales)
    w_q = ste_round(units["weights"], WEIGHT_MIN, WEIGHT_MAX)
    if params.spiking:
        theta_q = ste_round(units["theta"], 1, V_MAX)
    else:
        theta_q = torch.full_like(params.theta, float(V_MAX))
    rule = params.plastic
    if rule is not None:
        c_h = scales.trace_per_unit
        rule = PlasticParams(
            alpha=ste_round(units["alpha"], PARAM_MIN, PARAM_MAX),
            lam=ste_round(rule.lam * LAMBDA_ONE, 0, LAMBDA_ONE) / LAMBDA_ONE,
            eta_pre=ste_round(units["eta"], PARAM_MIN, PARAM_MAX),
            beta_post=ste_round(units["beta"], PARAM_MIN, PARAM_MAX) / BETA_ONE,
            h_max=torch.full_like(rule.h_max, float(round(float(rule.h_max[-1].detach()) * c_h))),
            mod_neuron=rule.mod_neuron,
            mod_levels=None
            if rule.mod_levels is None
            else ste_round(rule.mod_levels * MOD_ONE, PARAM_MIN, PARAM_MAX) / MOD_ONE,
        )
    return replace(
        params,
        w=w_q,
        theta=theta_q,
        plastic=rule,
        surrogate_width=params.surrogate_width * scales.fine_per_unit,
    )


@dataclass(frozen=True)
class QuantisedNet:
    params: NetParams
    hidden: LayerScales
    readout: LayerScales


def quantise_net(params: NetParams, input_scale: int) -> QuantisedNet:
    """The board's view of ``params``: integer-valued tables plus the host-side scales."""
    n_obs = params.enc_gain.shape[0]
    n_pre = params.hidden.w.shape[0]
    like = params.hidden.w.detach()
    rows = torch.ones(n_pre, dtype=like.dtype, device=like.device)
    rows[:n_obs] = float(input_scale)
    h_max = 1.0 if params.hidden.plastic is None else float(params.hidden.plastic.h_max[-1])
    hidden_scales = layer_scales(params.hidden, rows, h_max)
    readout_rows = torch.ones(params.readout.w.shape[0], dtype=like.dtype, device=like.device)
    readout_scales = layer_scales(params.readout, readout_rows, 1.0)
    board = replace(
        params,
        hidden=quantise_layer(params.hidden, hidden_scales),
        readout=quantise_layer(params.readout, readout_scales),
        enc_gain=ste_round(encoder_units(params.enc_gain, input_scale), PARAM_MIN, PARAM_MAX),
        enc_bias=ste_round(encoder_units(params.enc_bias, input_scale), PARAM_MIN, PARAM_MAX),
        dec_gain=params.dec_gain / readout_scales.fine_per_unit,
    )
    return QuantisedNet(board, hidden_scales, readout_scales)


def layer_tables(layer: LayerParams) -> dict[str, np.ndarray]:
    """One quantised layer as the spec's per-core integer tables (section 5, no routing)."""

    def ints(t: torch.Tensor, dtype: Any) -> np.ndarray:
        return np.asarray(t.detach().cpu().double().round().numpy(), dtype=dtype)

    n_pre, n_post = layer.w.shape
    tables = {
        "weights": ints(layer.w, np.int8),
        "theta": ints(layer.theta, np.int32),
        "decay_shift": np.broadcast_to(
            ints(torch.as_tensor(layer.decay_shift), np.int8), n_post
        ).copy(),
        "f_table": clip_linear_f_table(),
        "mod_src": np.array([-1, -1], dtype=np.int16),
        "mod_levels": np.array([MOD_ONE, MOD_ONE], dtype=np.int16),
    }
    rule = layer.plastic
    if rule is not None and rule.mod_levels is not None:
        # The layer's first core is core 0 here; deploy.mapping re-addresses a split layer.
        tables["mod_src"] = np.array([0, rule.mod_neuron], dtype=np.int16)
        tables["mod_levels"] = ints(rule.mod_levels * MOD_ONE, np.int16)
    if rule is None:
        tables.update(
            alpha=np.zeros(1, np.int16),
            lam=np.full(1, LAMBDA_ONE, np.int32),
            h_max=np.zeros(1, np.int16),
            eta=np.zeros(n_pre, np.int16),
            beta=np.zeros(n_post, np.int16),
        )
    else:
        tables.update(
            alpha=ints(rule.alpha.reshape(1), np.int16),
            lam=ints(rule.lam.reshape(1) * LAMBDA_ONE, np.int32),
            h_max=ints(rule.h_max[:1, 0], np.int16),
            eta=ints(rule.eta_pre, np.int16),
            beta=ints(rule.beta_post * BETA_ONE, np.int16),
        )
    return tables
