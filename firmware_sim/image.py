"""What the board runs: an image's board section and per-core tables (docs/board-spec.md §5).

``BoardImage`` is the board's in-memory view of a core image; ``TABLES`` is the schema every
core must follow (checked by ``firmware_sim.rules``). ``build_image`` turns already-quantised
layers (integers) into an image: a feed-forward stack, each layer split over as many cores as
its neurons need, every core of a layer receiving all of that layer's inputs. It is the honest
minimum a quantiser needs; ``deploy`` calls it (or replaces it) with real checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from firmware_sim import spec
from firmware_sim.errors import BoardError
from firmware_sim.profiles import Profile

CORE_INTS = ("core_id", "n_axons", "n_neurons")
BOARD_INTS = ("ticks_per_step", "obs_dim", "act_dim", "reset_mode", "enc_mode", "dec_mode")

Shape = Callable[[int, int, int], tuple[int, ...]]
"""A table's shape from (n_axons, n_neurons, n_routes)."""

TABLES: dict[str, tuple[type, Shape]] = {
    "weights": (np.int8, lambda a, n, e: (a, n)),
    "theta": (np.int32, lambda a, n, e: (n,)),
    "decay_shift": (np.int8, lambda a, n, e: (n,)),
    "alpha": (np.int16, lambda a, n, e: (1,)),
    "lam": (np.int32, lambda a, n, e: (1,)),
    "h_max": (np.int16, lambda a, n, e: (1,)),
    "eta": (np.int16, lambda a, n, e: (a,)),
    "beta": (np.int16, lambda a, n, e: (n,)),
    "f_table": (np.int16, lambda a, n, e: (spec.F_TABLE_SIZE,)),
    "mod_src": (np.int16, lambda a, n, e: (2,)),
    "mod_levels": (np.int16, lambda a, n, e: (2,)),
    "enc_src": (np.int16, lambda a, n, e: (a,)),
    "enc_gain": (np.int16, lambda a, n, e: (a,)),
    "enc_bias": (np.int16, lambda a, n, e: (a,)),
    "dec_dst": (np.int16, lambda a, n, e: (n,)),
    "dec_w": (np.int16, lambda a, n, e: (n,)),
    "route_src": (np.int16, lambda a, n, e: (e,)),
    "route_dst_core": (np.int16, lambda a, n, e: (e,)),
    "route_dst_axon": (np.int16, lambda a, n, e: (e,)),
}
BOARD_TABLES: dict[str, tuple[type, Callable[[int], tuple[int, ...]]]] = {
    "dec_bias": (np.int32, lambda act_dim: (act_dim,)),
    "dec_shift": (np.int8, lambda act_dim: (act_dim,)),
}


@dataclass
class BoardImage:
    """An image as the board sees it: profile name, board section, per-core tables."""

    profile: str
    board: dict[str, Any]
    cores: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)

    def core(self, core_id: int) -> dict[str, Any]:
        for core in self.cores:
            if int(core["core_id"]) == core_id:
                return core
        raise BoardError(f"the image has no core {core_id}.")


def linear_f_table(bound: int = 1 << spec.BETA_FRAC) -> np.ndarray:
    """``f(d) = clip(d, -bound, bound)`` as a table (Q7.8; the default bound is 1.0)."""
    d = np.arange(spec.F_INDEX_MIN, spec.F_INDEX_MAX + 1)
    return np.clip(d, -bound, bound).astype(np.int16)


def tanh_f_table(gain: float = 1.0) -> np.ndarray:
    """``f(d) = tanh(gain * d)`` as a table (Q7.8 in and out), as in the seed paper."""
    d = np.arange(spec.F_INDEX_MIN, spec.F_INDEX_MAX + 1) / (1 << spec.BETA_FRAC)
    return np.round(np.tanh(gain * d) * (1 << spec.BETA_FRAC)).astype(np.int16)


@dataclass
class Layer:
    """One quantised layer: int8 weights (fan_in, fan_out) and its integer parameters."""

    weights: np.ndarray
    theta: int | np.ndarray = 256
    decay_shift: int | np.ndarray = 3
    alpha: int = 0
    lam: int = spec.LAMBDA_ONE
    h_max: int = spec.TRACE_MAX
    eta: int | np.ndarray = 0
    beta: int | np.ndarray = 0
    f_table: np.ndarray | None = None
    mod_levels: tuple[int, int] = (spec.MOD_ONE, spec.MOD_ONE)


@dataclass
class Encoder:
    """Observation k -> axon i of the first layer: ``x = sat8((gain*obs_q + bias<<16) >> 24)``."""

    src: np.ndarray
    gain: int | np.ndarray = 1 << spec.ENC_GAIN_FRAC
    bias: int | np.ndarray = 0
    mode: int = spec.ENC_CURRENT


@dataclass
class Decoder:
    """Output neuron j -> action ``dst[j]`` with weight ``w[j]``; per-action bias and shift."""

    dst: np.ndarray
    w: int | np.ndarray = 1
    bias: int | np.ndarray = 0
    shift: int | np.ndarray = 0
    mode: int = spec.DEC_COUNTS


def _per(value: int | np.ndarray, size: int, dtype: type) -> np.ndarray:
    """A scalar or per-element parameter as an array of ``size`` elements."""
    array = np.asarray(value)
    if array.ndim == 0:
        array = np.full(size, array)
    if array.shape != (size,):
        raise BoardError(f"a layer parameter has shape {array.shape}, expected ({size},).")
    return array.astype(dtype)


def build_image(
    profile: Profile,
    layers: Sequence[Layer],
    encoder: Encoder,
    decoder: Decoder,
    obs_dim: int,
    act_dim: int,
    ticks_per_step: int = 8,
    reset_mode: int = spec.RESET_SOFT,
    modulator: tuple[int, int] | None = None,
    meta: dict[str, Any] | None = None,
) -> BoardImage:
    """Map a feed-forward stack of quantised layers onto cores, layer by layer, in core order.

    ``modulator`` is (layer index, neuron index) of the neuron whose spikes gate plasticity
    (three-factor learning) in every core; its ``mod_levels`` come from each layer.
    """
    if not layers:
        raise BoardError("an image needs at least one layer.")
    per_core = profile.neurons_per_core
    layer_cores: list[list[tuple[int, int, int]]] = []  # per layer: (core_id, first, stop)
    next_core = 0
    for layer in layers:
        fan_out = layer.weights.shape[1]
        spans = [(start, min(start + per_core, fan_out)) for start in range(0, fan_out, per_core)]
        layer_cores.append([(next_core + k, a, b) for k, (a, b) in enumerate(spans)])
        next_core += len(spans)
    mod_src = np.array([-1, -1], dtype=np.int16)
    if modulator is not None:
        mod_layer, mod_neuron = modulator
        for core_id, start, stop in layer_cores[mod_layer]:
            if start <= mod_neuron < stop:
                mod_src = np.array([core_id, mod_neuron - start], dtype=np.int16)
    cores: list[dict[str, Any]] = []
    for index, layer in enumerate(layers):
        weights = np.asarray(layer.weights)
        fan_in, fan_out = weights.shape
        is_first, is_last = index == 0, index == len(layers) - 1
        theta = _per(layer.theta, fan_out, np.int32)
        decay = _per(layer.decay_shift, fan_out, np.int8)
        beta = _per(layer.beta, fan_out, np.int16)
        eta = _per(layer.eta, fan_in, np.int16)
        f_table = linear_f_table() if layer.f_table is None else layer.f_table
        if is_first:
            enc_src = _per(encoder.src, fan_in, np.int16)
            enc_gain = _per(encoder.gain, fan_in, np.int16)
            enc_bias = _per(encoder.bias, fan_in, np.int16)
        else:
            enc_src = np.full(fan_in, -1, np.int16)
            enc_gain = enc_bias = np.zeros(fan_in, np.int16)
        if is_last:
            dec_dst = _per(decoder.dst, fan_out, np.int16)
            dec_w = _per(decoder.w, fan_out, np.int16)
        else:
            dec_dst = np.full(fan_out, -1, np.int16)
            dec_w = np.zeros(fan_out, np.int16)
        for core_id, start, stop in layer_cores[index]:
            n = stop - start
            routes = _routes(start, stop, None if is_last else layer_cores[index + 1])
            cores.append(
                {
                    "core_id": core_id,
                    "n_axons": fan_in,
                    "n_neurons": n,
                    "weights": weights[:, start:stop].astype(np.int8),
                    "theta": theta[start:stop],
                    "decay_shift": decay[start:stop],
                    "alpha": np.array([layer.alpha], np.int16),
                    "lam": np.array([layer.lam], np.int32),
                    "h_max": np.array([layer.h_max], np.int16),
                    "eta": eta,
                    "beta": beta[start:stop],
                    "f_table": np.asarray(f_table, np.int16),
                    "mod_src": mod_src.copy(),
                    "mod_levels": np.array(layer.mod_levels, np.int16),
                    "enc_src": enc_src,
                    "enc_gain": enc_gain,
                    "enc_bias": enc_bias,
                    "dec_dst": dec_dst[start:stop],
                    "dec_w": dec_w[start:stop],
                    **routes,
                }
            )
    board = {
        "ticks_per_step": ticks_per_step,
        "obs_dim": obs_dim,
        "act_dim": act_dim,
        "reset_mode": reset_mode,
        "enc_mode": encoder.mode,
        "dec_mode": decoder.mode,
        "dec_bias": _per(decoder.bias, act_dim, np.int32),
        "dec_shift": _per(decoder.shift, act_dim, np.int8),
    }
    return BoardImage(profile.name, board, cores, dict(meta or {}))


def _routes(
    start: int, stop: int, targets: list[tuple[int, int, int]] | None
) -> dict[str, np.ndarray]:
    """Neuron ``start + j`` of a layer feeds axon ``start + j`` of every core of the next one."""
    src, dst_core, dst_axon = [], [], []
    for core_id, _, _ in targets or []:
        src.append(np.arange(stop - start))
        dst_core.append(np.full(stop - start, core_id))
        dst_axon.append(np.arange(start, stop))
    if not src:
        empty = np.zeros(0, np.int16)
        return {"route_src": empty, "route_dst_core": empty.copy(), "route_dst_axon": empty.copy()}
    return {
        "route_src": np.concatenate(src).astype(np.int16),
        "route_dst_core": np.concatenate(dst_core).astype(np.int16),
        "route_dst_axon": np.concatenate(dst_axon).astype(np.int16),
    }
