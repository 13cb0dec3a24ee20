"""What the mapper maps: a chain of quantised layers with an encoder in front and a decoder behind.

Layer ``i``'s neurons feed layer ``i + 1``'s axons (neuron ``j`` to axon ``j``); a *recurrent*
layer's neurons also feed its own last ``n_neurons`` axons, after the encoder rows. The encoder
drives the first layer's axons from observations, the decoder turns the last layer's neurons
into actions. Every value is already an integer in board units (docs/board-spec.md §5); a
scalar parameter holds for every neuron (or axon) of its layer. A trained network is one such
chain (``deploy.mapping.trained_chain``); the few-shot board, the HIL image and the benchmarks
write theirs directly. ``deploy.mapping.map_chain`` places a chain onto a profile's cores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deploy.errors import MappingError
from protocol import numeric


def linear_f_table(bound: int = 1 << numeric.BETA_FRAC) -> np.ndarray:
    """``f(d) = clip(d, -bound, bound)`` as a table (Q7.8; the default bound is 1.0)."""
    d = np.arange(numeric.F_INDEX_MIN, numeric.F_INDEX_MAX + 1)
    return np.clip(d, -bound, bound).astype(np.int16)


def per_element(value: int | np.ndarray, size: int, dtype: type) -> np.ndarray:
    """A scalar or per-element parameter as an array of ``size`` elements."""
    array = np.asarray(value)
    if array.ndim == 0:
        array = np.full(size, array)
    if array.shape != (size,):
        raise MappingError(f"a layer parameter has shape {array.shape}, expected ({size},).")
    return array.astype(dtype)


@dataclass
class Layer:
    """One quantised layer: int8 weights (n_axons, n_neurons) and its integer parameters.

    ``modulator`` is the ``(layer, neuron)`` of the chain whose spikes gate this layer's
    plasticity (three-factor learning), with ``mod_levels``; ``recurrent`` routes the layer's
    neurons back to its own last ``n_neurons`` axons."""

    weights: np.ndarray
    theta: int | np.ndarray = 256
    decay_shift: int | np.ndarray = 3
    alpha: int | np.ndarray = 0
    lam: int | np.ndarray = numeric.LAMBDA_ONE
    h_max: int | np.ndarray = numeric.TRACE_MAX
    eta: int | np.ndarray = 0
    beta: int | np.ndarray = 0
    f_table: np.ndarray | None = None
    mod_levels: tuple[int, int] | np.ndarray = (numeric.MOD_ONE, numeric.MOD_ONE)
    modulator: tuple[int, int] | None = None
    recurrent: bool = False

    @classmethod
    def from_tables(cls, tables: dict[str, np.ndarray], recurrent: bool = False) -> Layer:
        """A layer from train.quant's per-layer tables, whose ``mod_src`` names the modulator
        as ``(0, j)``: neuron ``j`` of the chain's first layer (the hidden layer), or
        ``(-1, -1)`` for none."""
        layer, neuron = (int(v) for v in tables["mod_src"])
        names = ("weights", "theta", "decay_shift", "alpha", "lam", "h_max", "eta", "beta")
        return cls(
            **{name: tables[name] for name in (*names, "f_table", "mod_levels")},
            modulator=(layer, neuron) if neuron >= 0 else None,
            recurrent=recurrent,
        )

    @property
    def shape(self) -> tuple[int, int]:
        """(n_axons, n_neurons)."""
        n_axons, n_neurons = np.shape(self.weights)
        return n_axons, n_neurons

    def tables(self) -> dict[str, np.ndarray]:
        """The layer's core tables at full width, in the order of ``firmware_sim.tables.TABLES``
        (routing, encoder, decoder and modulator source are the mapper's)."""
        n_axons, n_neurons = self.shape
        return {
            "weights": np.asarray(self.weights).astype(np.int8),
            "theta": per_element(self.theta, n_neurons, np.int32),
            "decay_shift": per_element(self.decay_shift, n_neurons, np.int8),
            "alpha": per_element(self.alpha, 1, np.int16),
            "lam": per_element(self.lam, 1, np.int32),
            "h_max": per_element(self.h_max, 1, np.int16),
            "eta": per_element(self.eta, n_axons, np.int16),
            "beta": per_element(self.beta, n_neurons, np.int16),
            "f_table": np.asarray(
                linear_f_table() if self.f_table is None else self.f_table, np.int16
            ),
        }


@dataclass
class Encoder:
    """Observation ``src[i]`` -> axon ``i`` of the first layer (``-1``: no observation drives
    it): ``x = sat8((gain*obs_q + bias<<16) >> 24)``."""

    src: np.ndarray
    gain: int | np.ndarray = 1 << numeric.ENC_GAIN_FRAC
    bias: int | np.ndarray = 0
    mode: int = numeric.ENC_CURRENT


@dataclass
class Decoder:
    """Last-layer neuron j -> action ``dst[j]`` with weight ``w[j]``; per-action bias and shift."""

    dst: np.ndarray
    w: int | np.ndarray = 1
    bias: int | np.ndarray = 0
    shift: int | np.ndarray = 0
    mode: int = numeric.DEC_COUNTS


@dataclass
class Chain:
    """Layers in core order, the encoder into the first, the decoder out of the last, and the
    board section's settings; ``scales`` (the float value of one integer unit) ride along for
    the host."""

    layers: Sequence[Layer]
    encoder: Encoder
    decoder: Decoder
    obs_dim: int
    act_dim: int
    ticks_per_step: int = 8
    reset_mode: int = numeric.RESET_SOFT
    scales: dict[str, float] = field(default_factory=dict)

    def board(self) -> dict[str, Any]:
        """The image's board section."""
        return {
            "ticks_per_step": self.ticks_per_step,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "reset_mode": self.reset_mode,
            "enc_mode": self.encoder.mode,
            "dec_mode": self.decoder.mode,
            "dec_bias": per_element(self.decoder.bias, self.act_dim, np.int32),
            "dec_shift": per_element(self.decoder.shift, self.act_dim, np.int8),
        }
