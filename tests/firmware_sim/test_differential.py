"""A float reference, written here independently of the engine (dense matrices, traces decayed
every tick, real-valued parameters), agrees with the integer engine within quantisation error.

The reference is teacher-forced: each tick it starts from the engine's state (membranes, the
traces as READ returns them, last tick's spikes) and predicts the next tick. Floors make the
engine lower by less than one unit per rounding, so the bounds below count the roundings."""

import numpy as np
import pytest

from firmware_sim.engine import Engine
from protocol import numeric as nm
from tests.firmware_sim.conftest import chain_image, random_layers


def reference_tick(core, x, v, h, modulated, reset_mode, learning):
    """One tick of one core in float64. x: inputs (A,), v: (N,), h: traces (A, N)."""
    lam = core["lam"][0] / nm.LAMBDA_ONE
    alpha = core["alpha"][0] / nm.ALPHA_ONE
    if learning:
        h = lam * h
    lsb = float(nm.FINE_PER_WEIGHT_LSB)  # fine units per weight LSB, and trace units too
    w_eff = core["weights"].astype(float) + alpha * h / lsb  # weight LSB
    w_eff = np.clip(w_eff, nm.W_EFF_MIN / lsb, nm.W_EFF_MAX / lsb)
    current = lsb * (x @ w_eff)
    shift = core["decay_shift"].astype(float)
    v = np.clip(v - v / 2.0**shift + current, nm.V_MIN, nm.V_MAX)
    theta = core["theta"].astype(float)
    s = v >= theta
    v_fire = v
    v = np.where(s, v - theta if reset_mode == 0 else 0.0, v)
    if learning:
        levels = core["mod_levels"] / nm.MOD_ONE
        m = 1.0 if core["mod_src"][0] < 0 else levels[int(modulated)]
        d = s.astype(float) - core["beta"] / nm.BETA_ONE
        f = np.clip(d, -1.0, 1.0)  # the default linear table, in real units
        # the board's (m_q * eta * x * f_q) >> 16 with m_q = 256 m and f_q = 256 f
        term = m * np.outer(core["eta"] * x, f)
        active = (x != 0)[:, None]
        h = np.where(active, np.clip(h + term, -core["h_max"][0], core["h_max"][0]), h)
    return v_fire, v, s, h


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("learning", [False, True])
def test_float_reference_agrees_within_quantisation_error(seed, learning):
    rng = np.random.default_rng(seed)
    image = chain_image(random_layers(rng, [12, 20, 9]), reset_mode=seed % 2)
    engine = Engine(image)
    engine.learning = learning
    if learning:  # start from nonzero traces so alpha * H matters from the first tick
        engine.traces[:] = rng.integers(-3000, 3000, engine.traces.shape)
        engine._traces_zero = False
    cores = sorted(image.cores, key=lambda c: c["core_id"])
    compared = spikes_seen = 0
    for _ in range(40):
        current = engine.encode(rng.normal(0, 40, 12))
        # inputs per core as the engine will see them this tick (routed spikes of last tick)
        prev = engine.spiked.reshape(engine.n_cores, engine.n_neurons)
        inputs = [current.astype(float), prev[0, :20].astype(float)]
        before_v = engine.v_mem.copy()
        before_h = engine.read_traces()
        spikes = engine.run_tick(current)
        after_h = engine.read_traces()
        for p, core in enumerate(cores):
            a, n = core["n_axons"], core["n_neurons"]
            x = inputs[p][:a]
            v_fire, v_ref, s_ref, h_ref = reference_tick(
                core,
                x,
                before_v[p, :n].astype(float),
                before_h[core["core_id"]].astype(float),
                False,
                image.board["reset_mode"],
                learning,
            )
            # floors: one in the leak; per active synapse one in alpha*H >> 8 plus the trace's
            # own rounding (lam^k applied once vs lam * floor(lam^(k-1) H): < 2 trace units),
            # which alpha scales; all of it times |x|.
            per_synapse = 1.0 + 2.0 * abs(int(core["alpha"][0])) / nm.ALPHA_ONE if learning else 0.0
            v_tol = 1.0 + np.abs(x).sum() * per_synapse + 1e-6
            v_int = engine.v_mem[p, :n]
            near = np.abs(v_fire - core["theta"]) <= v_tol + 1
            agree = (spikes[p, :n] == s_ref) | near
            assert agree.all()
            sure = ~near
            assert np.all(np.abs(v_int[sure] - v_ref[sure]) <= v_tol)
            if learning:
                h_int = after_h[core["core_id"]].astype(float)
                assert np.all(np.abs(h_int - h_ref)[:, sure] <= 3.0)
            compared += int(sure.sum())
            spikes_seen += int(spikes[p, :n].sum())
    assert compared > 0.9 * 40 * (20 + 9)
    assert spikes_seen > 0  # the networks are not silent: spikes and resets were compared too
