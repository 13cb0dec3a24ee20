"""Golden vectors: ticks of tiny networks worked out by hand from docs/board-spec.md.

Units: a spike (or x = 1) through W = 1 adds 256 to v_mem (Q.8 effective weight)."""

import numpy as np

from deploy.chain import Layer
from firmware_sim.engine import Engine
from protocol import numeric
from tests.firmware_sim.conftest import chain_image, weights


def run(engine, inputs):
    """Tick the engine with explicit encoder currents; return (v_mem, spikes) per tick."""
    v, s = [], []
    for x in inputs:
        spikes = engine.run_tick(np.asarray(x, dtype=np.int64))
        v.append(engine.v_mem[:, 0].tolist())
        s.append(spikes[:, 0].astype(int).tolist())
    return v, s


def test_leak_then_fire_with_soft_reset(make_engine):
    # x = 3, W = 1 -> I = 768; leak v >> 2.
    # t1: 768; t2: 768-192+768 = 1344; t3: 1344-336+768 = 1776; t4: 1776-444+768 = 2100 >= 2000
    # -> spike, soft reset to 100; t5: 100-25+768 = 843.
    engine = make_engine([Layer(weights([1]), theta=2000, decay_shift=2)])
    v, s = run(engine, [[3]] * 5)
    assert v == [[768], [1344], [1776], [100], [843]]
    assert s == [[0], [0], [0], [1], [0]]


def test_threshold_is_greater_or_equal(make_engine):
    # Same drive: v reaches exactly 2100 on t4. theta = 2100 fires there, theta = 2101 does not.
    at_edge = make_engine([Layer(weights([1]), theta=2100, decay_shift=2)])
    above = make_engine([Layer(weights([1]), theta=2101, decay_shift=2)])
    assert run(at_edge, [[3]] * 4)[1][3] == [1]
    v, s = run(above, [[3]] * 5)
    assert s[3] == [0] and v[3] == [2100]
    # t5: 2100 - 525 + 768 = 2343 >= 2101 fires
    assert s[4] == [1] and v[4] == [2343 - 2101]


def test_hard_reset_sets_zero(make_engine):
    engine = make_engine([Layer(weights([1]), theta=2000, decay_shift=2)], reset_mode=1)
    v, s = run(engine, [[3]] * 5)
    assert v[3] == [0] and s[3] == [1]
    assert v[4] == [768]


def test_negative_leak_floors_towards_minus_infinity(make_engine):
    # x = -1, W = 1: I = -256; t1: -256; t2: -256 - (-32) - 256 = -480; t3: -480 + 60 - 256 = -676
    # then no input: t4: -676 - (-85) = -591 (floor(-676/8) = -85)
    engine = make_engine([Layer(weights([1]), theta=10_000, decay_shift=3)])
    v, _ = run(engine, [[-1], [-1], [-1], [0]])
    assert v == [[-256], [-480], [-676], [-591]]
    # and a potential of -1 decays to 0 while +1 stays: floor(-1/8) = -1, floor(1/8) = 0
    engine.v_mem[:, 0] = -1
    assert run(engine, [[0]])[0] == [[0]]
    engine.v_mem[:, 0] = 1
    assert run(engine, [[0]])[0] == [[1]]


def test_membrane_saturates_at_24_bits(make_engine):
    # W = 127, x = 127: I = 127*127*256 = 4129024; no leak below 2^23 with shift 23.
    # t1: 4129024, t2: 8258048, t3: 12387072 -> saturates at 2^23 - 1 = theta -> spike, soft -> 0.
    up = make_engine([Layer(weights([127]), theta=numeric.V_MAX, decay_shift=23)])
    v, s = run(up, [[127]] * 3)
    assert v == [[4129024], [8258048], [0]] and s == [[0], [0], [1]]
    # W = -128: I = -4161536. A negative potential floors: -4161536 >> 23 = -1, so the leak adds 1:
    # t2: -4161536 + 1 - 4161536 = -8323071; t3: -12484606 saturates at -2^23.
    down = make_engine([Layer(weights([-128]), theta=numeric.V_MAX, decay_shift=23)])
    v, _ = run(down, [[127]] * 3)
    assert v == [[-4161536], [-8323071], [numeric.V_MIN]]


def test_encoder_saturates_to_int8_and_floors(make_engine):
    engine = make_engine([Layer(weights([1], [1], [1]), theta=10_000)])
    # gain 1.0: x = floor(obs), saturated to -128..127
    assert engine.encode(np.array([1000.0, -0.5, 2.99])).tolist() == [127, -1, 2]


def test_routed_spikes_arrive_one_tick_later_also_across_steps(make_engine):
    # Layer 0: x = 2, W = 1 -> I = 512 = theta, fires every tick. Layer 1: W = 3 -> 768 = theta,
    # fires on every tick it receives a spike: from t2 on.
    engine = make_engine(
        [
            Layer(weights([1]), theta=512, decay_shift=0),
            Layer(weights([3]), theta=768, decay_shift=0),
        ],
        ticks_per_step=2,
    )
    out = [engine.run_tick(np.array([2]))[:, 0].astype(int).tolist() for _ in range(3)]
    assert out == [[1, 0], [1, 1], [1, 1]]
    engine.reset()
    # decoder: counts of layer 1 over T = 2 ticks: step 1 sees t2 only, step 2 sees t3 and t4
    assert engine.step(np.array([2.0])).tolist() == [1.0]
    assert engine.step(np.array([2.0])).tolist() == [2.0]


def plastic_layer(**kw) -> Layer:
    # W = 0 and a threshold out of reach: post = 0 every tick, so d = 0 - beta = 256 and the
    # linear f gives f = 256 (1.0); the Hebbian term is (256 * eta * 1 * 256) >> 16 = eta.
    base = dict(weights=weights([0]), theta=1_000_000, decay_shift=23, alpha=256, beta=-256)
    return Layer(**{**base, **kw})


def test_plasticity_step_decay_clip_and_effective_weight(make_engine):
    # lam = 0.5, eta = 50, h_max = 60. H: t1: 0 + 50 = 50; t2: 25 + 50 = 75 -> clip 60;
    # t3: 30 + 50 = 80 -> clip 60. Integration uses the decayed trace before this tick's term:
    # w_eff = (alpha * H_decayed) >> 8 with alpha = 1.0: t1: 0, t2: 25, t3: 30 -> v = 0, 25, 55.
    engine = make_engine([plastic_layer(lam=32768, eta=50, h_max=60)])
    engine.learning = True
    history = []
    for _ in range(3):
        engine.run_tick(np.array([1]))
        history.append((int(engine.traces[0, 0]), int(engine.v_mem[0, 0])))
    assert history == [(50, 0), (60, 25), (60, 55)]
    assert engine.telemetry.plasticity_updates == 3


def test_lazy_decay_uses_one_power_of_lambda_not_k_floors(make_engine):
    # lam = 45000: the table gives lam^3 = 21216 (test_spec). Row active on t1 (H = 100), idle on
    # t2, t3, active on t4: H = floor(100 * 21216 / 2^16) + 100 = 32 + 100 = 132.
    # (Three floored steps would give 68, 46, 31: the lazy form is the defined one.)
    engine = make_engine([plastic_layer(lam=45000, eta=100)])
    engine.learning = True
    engine.run_tick(np.array([1]))
    engine.run_tick(np.array([0]))
    engine.run_tick(np.array([0]))
    # READ after t3 shows the trace as of now (age 2: floor(100 * 30899 / 2^16) = 47) ...
    assert engine.read_traces()[0].tolist() == [[47]]
    # ... without writing it back, so t4 still decays from 100 with age 3
    engine.run_tick(np.array([1]))
    assert int(engine.traces[0, 0]) == 132


def test_post_spike_and_beta_sign_the_update(make_engine):
    # theta = 256, W = 1, x = 1: v = 256 >= theta every tick, post = 1 (hard reset keeps v at 0).
    # beta = 0.25 (64): d = 256 - 64 = 192, f = 192; eta = 1000: term = (256*1000*192) >> 16 = 750.
    # With post = 0 (theta out of reach): d = -64, term = (256*1000*-64) >> 16 = -250.
    firing = make_engine(
        [Layer(weights([1]), theta=256, decay_shift=0, beta=64, eta=1000)], reset_mode=1
    )
    silent = make_engine([Layer(weights([1]), theta=10**6, decay_shift=0, beta=64, eta=1000)])
    for engine in (firing, silent):
        engine.learning = True
        engine.run_tick(np.array([1]))
    assert int(firing.traces[0, 0]) == 750
    assert int(silent.traces[0, 0]) == -250


def test_modulator_gates_learning_from_the_previous_tick(make_engine):
    # Neuron 0 (x0 = 1, W = 1, theta = 256) fires every tick and is the modulator with levels
    # (0, 2.0). Neuron 1 learns from axon 0: eta = 100, post = 0, beta = -1.0 -> f = 256.
    # t1: the modulator has not spiked yet -> m = 0, H = 0. t2: m = 512 -> term = 200.
    layer = Layer(
        weights([1, 0]),
        theta=np.array([256, 10**6]),
        decay_shift=0,
        beta=np.array([0, -256]),
        eta=100,
        mod_levels=(0, 512),
    )
    engine = Engine(chain_image([layer], modulator=(0, 0)))
    engine.learning = True
    engine.run_tick(np.array([1]))
    assert int(engine.traces[0, 1]) == 0
    engine.run_tick(np.array([1]))
    assert int(engine.traces[0, 1]) == 200


def test_learning_off_leaves_traces_and_weights_alone(make_engine):
    engine = make_engine([plastic_layer(lam=45000, eta=100)])
    engine.run_tick(np.array([1]))
    assert engine.traces.max() == 0 and engine.t_plastic == 0
    assert engine.telemetry.plasticity_updates == 0
