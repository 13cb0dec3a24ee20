"""Fake-quant torch model against the board spec (docs/board-spec.md), tick for tick.

The reference below is a direct numpy transcription of the spec's section 3 for the two cores of
the network (hidden: encoder axons plus recurrent routes; readout: routes from the hidden core),
in int64, fed with the integer tables that train.quant produces.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from protocol import numeric as nm
from protocol.numeric import lambda_powers
from train.models import ChipFaults, ModelConfig, build_policy
from train.quant import BoardNumerics, layer_tables
from train.snn import init_net_state, net_step


def sat(x: np.ndarray, bits: int) -> np.ndarray:
    return np.clip(x, nm.int_min(bits), nm.int_max(bits))


class SpecCore:
    """One core of the spec whose modulator, if any, is one of its own neurons."""

    def __init__(
        self,
        tables: dict[str, np.ndarray],
        reset_mode: str,
        stuck: np.ndarray | None = None,
        dead: np.ndarray | None = None,
    ) -> None:
        self.t = {k: v.astype(np.int64) for k, v in tables.items()}
        self.stuck, self.dead = stuck, dead  # stuck-at-zero synapses, dead neurons (spec §8)
        n_axons, n_neurons = self.t["weights"].shape
        self.v = np.zeros(n_neurons, np.int64)
        self.h = np.zeros((n_axons, n_neurons), np.int64)
        self.last = np.zeros(n_axons, np.int64)
        self.lam_pow = np.array(lambda_powers(int(self.t["lam"][0])), np.int64)
        self.soft = reset_mode == "soft"
        self.s = np.zeros(n_neurons, np.int64)  # spikes of the previous tick
        self.m_seen: set[int] = set()

    def tick(self, x: np.ndarray, t_plastic: int, learn: bool) -> np.ndarray:
        t = self.t
        active = np.flatnonzero(x)
        if learn:
            for i in active:
                k = min(t_plastic - self.last[i], nm.AGE_MAX)
                self.h[i] = (self.h[i] * self.lam_pow[k]) >> nm.LAMBDA_FRAC
        w_eff = (t["weights"] << nm.TRACE_FRAC) + ((t["alpha"][0] * self.h) >> nm.ALPHA_FRAC)
        w_eff = sat(w_eff, nm.W_EFF_BITS)
        if self.stuck is not None:
            w_eff = np.where(self.stuck, 0, w_eff)
        current = (x[active, None] * w_eff[active]).sum(0)
        self.v = sat(self.v - (self.v >> t["decay_shift"]) + current, nm.MEMBRANE_BITS)
        s = (self.v >= t["theta"]).astype(np.int64)
        if self.dead is not None:
            s, self.v = np.where(self.dead, 0, s), np.where(self.dead, 0, self.v)
        if self.soft:
            self.v = np.where(s == 1, sat(self.v - t["theta"], nm.MEMBRANE_BITS), self.v)
        else:
            self.v = np.where(s == 1, 0, self.v)
        m = nm.MOD_ONE  # spec §3 step 8: the modulator's spike of tick t - 1 picks the level
        if t["mod_src"][0] >= 0:
            m = int(t["mod_levels"][self.s[t["mod_src"][1]]])
        self.s = s
        if learn:
            self.m_seen.add(m)
            d = (s << nm.BETA_FRAC) - t["beta"]
            g = t["f_table"][np.clip(d, nm.F_INDEX_MIN, nm.F_INDEX_MAX) - nm.F_INDEX_MIN]
            for i in active:
                self.h[i] = np.clip(
                    self.h[i] + ((m * t["eta"][i] * x[i] * g) >> nm.PLASTIC_SHIFT),
                    -t["h_max"][0],
                    t["h_max"][0],
                )
                self.last[i] = t_plastic
        return s


def encode(obs: np.ndarray, gain: np.ndarray, bias: np.ndarray) -> np.ndarray:
    obs_q = sat(np.floor(obs.astype(np.float64) * nm.OBS_ONE).astype(np.int64), nm.OBS_BITS)
    return sat((gain * obs_q + (bias << nm.OBS_FRAC)) >> nm.ENC_SHIFT, nm.INPUT_BITS)


@pytest.mark.parametrize(
    "reset, chip_faults, modulator, integral",
    [
        ("soft", False, False, False),
        ("hard", False, False, False),
        ("soft", True, False, False),
        ("soft", False, True, False),
        ("soft", True, False, True),
    ],
)
def test_fake_quant_matches_the_spec_tick_for_tick(
    reset: str, chip_faults: bool, modulator: bool, integral: bool
) -> None:
    torch.manual_seed(0)
    config = ModelConfig(
        "hp",
        n_obs=3,
        n_act=2,
        n_hidden=6,
        ticks=1,
        reset=reset,
        quantized=True,
        modulator=modulator,
        integral_shift=6 if integral else 0,
    )
    policy = build_policy(config, seed=3).double()
    stuck = dead = readout_stuck = None
    if chip_faults:  # 20 % stuck-at-zero synapses and one dead neuron, as training draws them
        faults = ChipFaults.sample(config, 1, 0.4, 0.0, torch.Generator().manual_seed(4), 1.0)
        alive = torch.ones(1, 6, dtype=torch.float64)
        alive[0, 4] = 0.0
        policy.chip_faults = replace(
            faults,
            hidden_keep=faults.hidden_keep.double(),
            readout_keep=faults.readout_keep.double(),
            hidden_alive=alive,
        )
        stuck = faults.hidden_keep[0].numpy() == 0
        readout_stuck = faults.readout_keep[0].numpy() == 0
        dead = alive[0].numpy() == 0
        assert stuck.any() and readout_stuck.any()
    with torch.no_grad():  # lively enough that spikes, saturating currents and traces all occur
        policy.eta_pre.mul_(20.0)
        policy.alpha.fill_(2.0)
        policy.theta_hidden.copy_(torch.linspace(0.3, 1.5, 6))
        policy.beta_post.copy_(torch.linspace(-0.2, 0.9, 6))
        if modulator:  # the last neuron switches the rule between weak and strong, sign-flipped
            policy.theta_hidden[-1] = 0.5
            policy.mod_levels.copy_(torch.tensor([-0.5, 2.3]))
        if integral:  # the slow neurons start silent; give them weights of their own
            policy.w_readout[:, 2:] = torch.linspace(-0.4, 0.3, 12).reshape(6, 2)
    board = policy.board_net().params
    hidden_t = layer_tables(board.hidden)
    readout_t = layer_tables(board.readout)
    enc_gain = board.enc_gain.detach().numpy().astype(np.int64)
    enc_bias = board.enc_bias.detach().numpy().astype(np.int64)
    hidden = SpecCore(hidden_t, reset, stuck, dead)
    readout = SpecCore(readout_t, reset, readout_stuck)
    spiked = np.zeros(config.n_hidden, np.int64)

    rng = np.random.default_rng(7)
    state = init_net_state(board, 1)
    total_spikes = 0
    for t_plastic in range(1, 41):  # ticks=1 per step, so each net_step is one tick
        obs = rng.uniform(-1.5, 1.5, config.n_obs)
        x_in = encode(obs, enc_gain, enc_bias)
        routed = spiked
        spiked = hidden.tick(np.concatenate([x_in, routed]), t_plastic, learn=True)
        readout.tick(routed, t_plastic, learn=False)
        total_spikes += int(spiked.sum())

        obs_t = torch.tensor(obs[None], dtype=torch.float64)
        with torch.no_grad():
            _, state = net_step(obs_t, state, board, BoardNumerics())
        assert state.hidden.spikes[0].numpy().astype(np.int64).tolist() == spiked.tolist()
        assert state.hidden.v_mem[0].numpy().astype(np.int64).tolist() == hidden.v.tolist()
        assert state.hidden.h[0].numpy().astype(np.int64).tolist() == hidden.h.tolist()
        assert state.readout.v_mem[0].numpy().astype(np.int64).tolist() == readout.v.tolist()
    assert 10 < total_spikes < 40 * config.n_hidden
    assert np.abs(hidden.h).max() > 0
    if integral:  # fast then slow neurons, and the slow ones hold more of what they were fed
        assert readout_t["decay_shift"].tolist() == [2, 2, 6, 6]
        assert np.abs(readout.v[2:]).max() > np.abs(readout.v[:2]).max()
    if modulator:  # round(256 * level), and both levels were in play
        assert hidden_t["mod_src"].tolist() == [0, 5]
        assert hidden.m_seen == {-128, 589}
    else:
        assert hidden.m_seen == {256}


def test_quantised_tables_have_the_spec_dtypes_and_ranges() -> None:
    policy = build_policy(ModelConfig("hp", n_obs=4, n_act=2, n_hidden=8, quantized=True), seed=1)
    tables = layer_tables(policy.board_net().params.hidden)
    assert tables["weights"].dtype == np.int8 and tables["weights"].shape == (12, 8)
    assert np.abs(tables["weights"]).max() == 127  # the largest weight uses the full range
    assert tables["theta"].dtype == np.int32 and (tables["theta"] >= 1).all()
    assert 0 <= int(tables["lam"][0]) <= 65536 and tables["alpha"].dtype == np.int16
    assert (
        tables["f_table"][512] == 0
        and tables["f_table"][0] == -256
        and tables["f_table"][-1] == 256
    )


def test_quantised_model_stays_close_to_the_float_model() -> None:
    config = ModelConfig("gp", n_obs=4, n_act=2, n_hidden=32)
    policy = build_policy(config, seed=2)
    quant = build_policy(replace(config, quantized=True), seed=2)
    obs = torch.rand(64, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        a_float, _ = policy(obs, policy.initial_state(64))
        a_quant, _ = quant(obs, quant.initial_state(64))
    assert (a_float - a_quant).abs().mean() < 0.25 * a_float.abs().mean()
