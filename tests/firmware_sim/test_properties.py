"""Hypothesis invariants: no value leaves its bit width; learning off changes no weight or trace;
reading the plastic state never changes what the board does next."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.engine import Engine
from protocol import numeric
from tests.firmware_sim.conftest import chain_image, random_layers

networks = st.tuples(
    st.integers(0, 2**32 - 1),
    st.lists(st.integers(1, 32), min_size=2, max_size=4),
    st.sampled_from([0, 1]),  # reset mode
    st.sampled_from([0, 1]),  # encoder mode
)


def build(seed, sizes, reset_mode, enc_mode, learning):
    rng = np.random.default_rng(seed)
    engine = Engine(
        chain_image(random_layers(rng, sizes), reset_mode=reset_mode, enc_mode=enc_mode)
    )
    engine.learning = learning
    obs = [rng.normal(0, 60, sizes[0]) for _ in range(6)]
    return engine, obs


@settings(max_examples=25, deadline=None)
@given(networks)
def test_no_value_leaves_its_bit_width(network):
    engine, observations = build(*network, learning=True)
    h_max = engine.row_h_max[:, None]
    for obs in observations:
        engine.step(obs)
        assert engine.v_mem.min() >= numeric.V_MIN
        assert engine.v_mem.max() <= numeric.V_MAX
        assert np.all(np.abs(engine.traces) <= h_max)
        assert engine.traces.min() >= numeric.TRACE_MIN
        assert engine.traces.max() <= numeric.TRACE_MAX
        assert np.all((engine.enc_phase >= 0) & (engine.enc_phase < 2 * numeric.DELTA_LEVEL))
        assert engine.counts.max() <= engine.ticks_per_step


@settings(max_examples=25, deadline=None)
@given(networks)
def test_learning_off_never_changes_weights_or_traces(network):
    engine, observations = build(*network, learning=False)
    weights = engine.weights.copy()
    for obs in observations:
        engine.step(obs)
    assert np.array_equal(engine.weights, weights)
    assert not engine.traces.any() and engine.t_plastic == 0


@settings(max_examples=15, deadline=None)
@given(networks)
def test_reading_traces_has_no_side_effect(network):
    reading, observations = build(*network, learning=True)
    quiet, _ = build(*network, learning=True)
    for obs in observations:
        reading.read_traces()
        a, b = reading.step(obs), quiet.step(obs)
        assert np.array_equal(a, b)
    assert np.array_equal(reading.traces, quiet.traces)
    assert np.array_equal(reading.v_mem, quiet.v_mem)
