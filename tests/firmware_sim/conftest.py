"""Tiny images for firmware_sim tests, mapped by deploy's mapper (the board only runs images)."""

from __future__ import annotations

import numpy as np
import pytest

from deploy.chain import Chain, Decoder, Encoder, Layer
from deploy.mapping import map_chain
from firmware_sim.engine import Engine
from firmware_sim.profiles import get_profile
from firmware_sim.tables import BoardTables
from protocol import numeric

ONE = 1 << numeric.ENC_GAIN_FRAC  # encoder gain 1.0: obs 3.0 -> x = 3


def chain_image(
    layers: list[Layer], obs_dim: int | None = None, modulator=None, **board
) -> BoardTables:
    """A feed-forward stack on the small profile; the encoder feeds observation i to axon i and
    the decoder maps output neuron j to action j with weight 1 (spike counts). ``modulator``
    (layer, neuron) gates the plasticity of every layer."""
    fan_in = layers[0].weights.shape[0]
    fan_out = layers[-1].weights.shape[1]
    encoder = Encoder(src=np.arange(fan_in), gain=ONE, mode=board.pop("enc_mode", 0))
    decoder = Decoder(dst=np.arange(fan_out), mode=board.pop("dec_mode", 0))
    for layer in layers:
        layer.modulator = modulator
    chain = Chain(layers, encoder, decoder, obs_dim or fan_in, fan_out, **board)
    return map_chain(chain, get_profile("small"))


def weights(*rows: list[int]) -> np.ndarray:
    return np.array(rows, dtype=np.int8)


@pytest.fixture
def make_engine():
    def make(layers: list[Layer], **board) -> Engine:
        return Engine(chain_image(layers, **board))

    return make


def random_layers(rng: np.random.Generator, sizes: list[int], plastic: bool = True) -> list[Layer]:
    """Random small layers that spike now and then (thresholds a few weights high)."""
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers.append(
            Layer(
                weights=rng.integers(-60, 100, (fan_in, fan_out)).astype(np.int8),
                theta=rng.integers(256 * 40, 256 * 200, fan_out),
                decay_shift=rng.integers(1, 5, fan_out),
                alpha=int(rng.integers(0, 512)) if plastic else 0,
                lam=int(rng.integers(40000, 65537)),
                h_max=int(rng.integers(1000, 32768)),
                eta=rng.integers(-3000, 3000, fan_in),
                beta=rng.integers(-256, 256, fan_out),
            )
        )
    return layers


def board_fault(kind: str, core: int, magnitude: float = 0.0, seed: int = 0) -> dict:
    """A board fault record as the FAULT message carries it."""
    return {
        "domain": "board",
        "kind": kind,
        "target": {"core": core},
        "magnitude": magnitude,
        "onset": 0,
        "duration": None,
        "seed": seed,
    }
