"""Quantise: a trained checkpoint to the board's integer tables, and what the rounding costs.

The scales and the formulas are train's (``train.quant.layer_units``), so the board runs the
network that quantisation-aware training saw: per layer one float weight per int8 LSB
``s = max|W / r_i| / 127`` (``r_i`` the input scale of encoder rows, 1 on spike rows), which by
construction never clips a weight; thresholds, the plastic rule (alpha, lambda, eta, beta, h_max)
and the encoder follow from ``s``.
What is left to deploy is the decoder: the readout's float gain per action becomes an int16
weight with the largest shift that keeps the weight and the int32 bias in range.

The report says, per layer, how far each table moved in rounding (RMS in LSB, relative error),
how many values hit a range limit (``clipped``), and how much headroom the accumulator has
(``acc_bits``: bits the worst-case per-tick sum needs, of 32). Anything that clips is also
listed under ``warnings`` in one sentence each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deploy.errors import DeployError
from protocol.numeric import (
    ACC_BITS,
    DEC_BIAS_MAX,
    FINE_PER_WEIGHT_LSB,
    INPUT_MIN,
    PARAM_MAX,
    V_MAX,
    W_EFF_MIN,
    WEIGHT_MAX,
)
from train.checkpoint import load_policy
from train.models import SpikingPolicy
from train.quant import encoder_units, layer_tables, layer_units

MAX_DEC_SHIFT = 62  # keeps float64(acc) * 2**-shift far from denormals


@dataclass(frozen=True)
class Checkpoint:
    """A trained spiking policy and its checkpoint record."""

    path: Path
    policy: Any  # train.models.SpikingPolicy
    record: dict[str, Any]

    @property
    def network(self) -> dict[str, Any]:
        return self.record["network"]

    @property
    def task(self) -> str:
        return str(self.record.get("train", {}).get("task", "unknown"))

    @property
    def seed(self) -> int:
        return int(self.record.get("train", {}).get("seed", 0))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a training checkpoint (file or folder); only spiking kinds run on the board."""

    policy, record = load_policy(path)
    if not isinstance(policy, SpikingPolicy) or record.get("network") is None:
        raise DeployError(
            f"{path} holds a {policy.config.kind} policy; only spiking policies (hp, gp, lp) "
            "run on the board."
        )
    policy.eval()
    return Checkpoint(Path(path), policy, record)


@dataclass(frozen=True)
class QuantisedNetwork:
    """The board's integers for one network: two layers' tables plus encoder and decoder."""

    n_obs: int
    n_hidden: int
    n_act: int
    ticks: int
    reset_mode: int  # 0 soft, 1 hard (board-spec §3)
    hidden: dict[str, np.ndarray]
    readout: dict[str, np.ndarray]
    enc_gain: np.ndarray  # int16 (n_obs,), Q7.8
    enc_bias: np.ndarray  # int16 (n_obs,), Q7.8
    dec_w: np.ndarray  # int16 (n_readout,): readout neuron c * n_act + a feeds action a
    dec_shift: np.ndarray  # int8 (n_act,)
    dec_bias: np.ndarray  # int32 (n_act,)
    scales: dict[str, float]
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def plastic(self) -> bool:
        return bool(self.hidden["alpha"][0] != 0 and np.any(self.hidden["eta"] != 0))


def decoder_fixed_point(gain: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, ...]:
    """int16 weight per readout neuron, int8 shift and int32 bias per action for
    ``action[a] = sum_c v[c * n_act + a] * gain[c * n_act + a] + bias[a]``: each action takes
    the largest shift at which all of its neurons' weights and its bias still fit."""
    gain, bias = np.asarray(gain, np.float64), np.asarray(bias, np.float64)
    largest = np.abs(gain).reshape(-1, len(bias)).max(axis=0)

    def fits(g: float, b: float, shift: int) -> bool:
        return (
            abs(round(g * 2.0**shift)) <= PARAM_MAX and abs(round(b * 2.0**shift)) <= DEC_BIAS_MAX
        )

    shifts = np.array(
        [
            next((k for k in range(MAX_DEC_SHIFT, -1, -1) if fits(g, b, k)), 0)
            for g, b in zip(largest.tolist(), bias.tolist(), strict=True)
        ]
    )
    per_neuron = np.tile(shifts, len(gain) // len(bias))
    return (
        np.round(gain * 2.0**per_neuron).astype(np.int16),
        shifts.astype(np.int8),
        np.round(bias * 2.0**shifts).astype(np.int32),
    )


def quantise(checkpoint: Checkpoint) -> QuantisedNetwork:
    """The board's integer tables for ``checkpoint`` and the quantisation report."""

    policy = checkpoint.policy
    config = policy.config
    with torch.no_grad():
        float_net = policy.net_params()
        board = policy.board_net()
    params = board.params
    hidden = layer_tables(params.hidden)
    readout = layer_tables(params.readout)
    enc_gain = _ints(params.enc_gain, np.int16)
    enc_bias = _ints(params.enc_bias, np.int16)
    dec_gain = params.dec_gain.detach().double().numpy()
    dec_bias_f = params.dec_bias.detach().double().numpy()
    dec_w, dec_shift, dec_bias = decoder_fixed_point(dec_gain, dec_bias_f)
    scales = {
        "hidden.weight_lsb": board.hidden.weight_lsb,
        "hidden.fine_per_unit": board.hidden.fine_per_unit,
        "hidden.trace_per_unit": board.hidden.trace_per_unit,
        "readout.weight_lsb": board.readout.weight_lsb,
        "readout.fine_per_unit": board.readout.fine_per_unit,
        "input_scale": float(config.input_scale),
    }
    report = _report(config, float_net, board, hidden, readout)
    report["decoder"] = {
        "shift": dec_shift.tolist(),
        "max_relative_error": float(
            np.max(
                np.abs(dec_w * 2.0 ** -np.resize(dec_shift, dec_w.shape).astype(float) - dec_gain)
            )
            / max(float(np.max(np.abs(dec_gain))), 1e-30)
        ),
    }
    return QuantisedNetwork(
        n_obs=config.n_obs,
        n_hidden=config.n_hidden,
        n_act=config.n_act,
        ticks=config.ticks,
        reset_mode=0 if config.reset == "soft" else 1,
        hidden=hidden,
        readout=readout,
        enc_gain=enc_gain,
        enc_bias=enc_bias,
        dec_w=dec_w,
        dec_shift=dec_shift,
        dec_bias=dec_bias,
        scales=scales,
        report=report,
    )


def _ints(t: Any, dtype: type) -> np.ndarray:
    return np.asarray(t.detach().double().round().numpy(), dtype=dtype)


def _rounding(ideal: np.ndarray, limit: float) -> dict[str, float | int]:
    """How far ``ideal`` (in integer units) moves when rounded and clipped to ``+-limit``."""
    ideal = np.asarray(ideal, dtype=np.float64).ravel()
    q = np.clip(np.round(ideal), -limit - 1, limit)
    err = q - ideal
    norm = float(np.linalg.norm(ideal))
    return {
        "rms_lsb": float(np.sqrt(np.mean(err**2))) if err.size else 0.0,
        "relative": float(np.linalg.norm(err) / norm) if norm > 0 else 0.0,
        "clipped": int(np.count_nonzero((ideal > limit + 0.5) | (ideal < -limit - 1.5))),
    }


TABLE_MAX = {
    "weights": WEIGHT_MAX,
    "theta": V_MAX,
    "alpha": PARAM_MAX,
    "eta": PARAM_MAX,
    "beta": PARAM_MAX,
}
"""The largest board value of each table that ``train.quant.layer_units`` gives."""


def _in_float64(layer: Any) -> Any:
    """``layer`` (train.snn.LayerParams) with the tensors the report reads in float64, so that
    the report measures rounding, not float32 arithmetic."""
    rule = layer.plastic
    if rule is not None:
        rule = replace(
            rule,
            alpha=rule.alpha.detach().double(),
            eta_pre=rule.eta_pre.detach().double(),
            beta_post=rule.beta_post.detach().double(),
        )
    return replace(
        layer, w=layer.w.detach().double(), theta=layer.theta.detach().double(), plastic=rule
    )


def _report(config, float_net, board, hidden, readout) -> dict[str, Any]:
    """Rounding error and range use of every table (see the module docstring)."""

    warnings: list[str] = []
    layers: dict[str, Any] = {}
    for name, layer, scales, tables in (
        ("hidden", float_net.hidden, board.hidden, hidden),
        ("readout", float_net.readout, board.readout, readout),
    ):
        scales = replace(scales, row_scale=scales.row_scale.detach().double())
        units = layer_units(_in_float64(layer), scales)
        entry: dict[str, Any] = {
            "weight_lsb": scales.weight_lsb,
            "fine_per_unit": scales.fine_per_unit,
            "axons": int(layer.w.shape[0]),
            "neurons": int(layer.w.shape[1]),
        }
        for table, ideal in units.items():
            entry[table] = _rounding(ideal.numpy(), TABLE_MAX[table])
        rule = layer.plastic
        if rule is not None:
            entry["lambda"] = {"float": float(rule.lam.detach()), "q16": int(tables["lam"][0])}
            entry["h_max"] = int(tables["h_max"][0])
        # Worst case of one tick's sum: every axon at its largest input through the largest
        # effective weight (|w_eff| <= 2^15 by saturation); encoder inputs are int8.
        x_max = np.where(scales.row_scale.numpy() > 1, float(-INPUT_MIN), 1.0)
        w_eff = np.abs(tables["weights"].astype(np.float64)) * FINE_PER_WEIGHT_LSB
        if rule is not None:
            w_eff = np.full_like(w_eff, float(-W_EFF_MIN))
        worst = float(np.max(x_max @ w_eff))
        entry["acc_bits"] = int(math.ceil(math.log2(worst + 1))) + 1
        if entry["acc_bits"] > ACC_BITS:
            warnings.append(f"{name}: a tick's synaptic sum can need {entry['acc_bits']} bits.")
        for table, stats in entry.items():
            if isinstance(stats, dict) and stats.get("clipped"):
                warnings.append(
                    f"{name}.{table}: {stats['clipped']} values clipped to the board's range."
                )
        layers[name] = entry
    encoder = {
        table: _rounding(
            encoder_units(values.detach().double(), config.input_scale).numpy(), PARAM_MAX
        )
        for table, values in (("gain", float_net.enc_gain), ("bias", float_net.enc_bias))
    }
    for table, stats in encoder.items():
        if stats["clipped"]:
            warnings.append(
                f"encoder.{table}: {stats['clipped']} observation scales clipped to int16; "
                "those inputs saturate earlier on the board than in training."
            )
    return {"layers": layers, "encoder": encoder, "warnings": warnings}
