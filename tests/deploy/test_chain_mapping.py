"""deploy's one mapper on a plain chain of layers (the few-shot board, HIL and benchmarks)."""

from __future__ import annotations

import numpy as np
import pytest

from deploy.chain import Chain, Decoder, Encoder, Layer
from deploy.errors import MappingError
from deploy.mapping import map_chain
from firmware_sim.engine import Engine
from firmware_sim.profiles import Profile, get_profile


def chain(modulator: tuple[int, int] | None = None) -> Chain:
    rng = np.random.default_rng(0)
    layers = [
        Layer(
            rng.integers(-40, 100, (fan_in, fan_out)).astype(np.int8),
            theta=256 * 40,
            alpha=64,
            eta=500,
            beta=32,
            modulator=modulator,
        )
        for fan_in, fan_out in ((4, 20), (20, 40))
    ]
    return Chain(layers, Encoder(np.arange(4), gain=40 << 8), Decoder(np.arange(40) % 3), 4, 3)


def test_a_layer_whose_routes_do_not_fit_is_split_finer_and_runs_the_same() -> None:
    # 20 neurons routed to both cores of the 40-neuron layer need 40 routes; 30 fit 15 per core
    few_routes = Profile("few-routes", 2, 4, 32, 32, 30)
    split = map_chain(chain(), few_routes)
    assert [c["n_neurons"] for c in split.cores] == [15, 5, 32, 8]
    whole = Engine(map_chain(chain(), get_profile("small")))
    narrow = Engine(split, few_routes)
    for engine in (whole, narrow):
        engine.learning = True
    for obs in np.random.default_rng(1).uniform(0, 30, (20, 4)):
        np.testing.assert_array_equal(whole.step(obs), narrow.step(obs))


def test_a_modulator_is_addressed_in_every_core_it_gates() -> None:
    image = map_chain(chain(modulator=(1, 35)), get_profile("small"))
    assert {tuple(c["mod_src"]) for c in image.cores} == {(2, 3)}  # neuron 35 = core 2's 4th
    with pytest.raises(MappingError, match="modulator .* is not in the chain"):
        map_chain(chain(modulator=(1, 40)), get_profile("small"))
