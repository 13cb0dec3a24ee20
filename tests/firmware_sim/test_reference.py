"""The engine's compiled tick agrees bit for bit with a straightforward transcription of
docs/board-spec.md §3 (per core, per active row, Python ints in int64 arrays, no padding, no
stacking, no shortcuts) on random multi-core networks with plasticity, a modulator and faults.

The fault draws follow the engine's documented recipe (masks drawn at injection from
``default_rng(seed)`` over the stacked, padded synapse grid; flips drawn per tick over the real
synapses of the targeted cores in row-major order), so both sides see the same faults.
"""

from __future__ import annotations

import numpy as np
import pytest

from deploy.chain import Chain, Decoder, Encoder
from deploy.mapping import map_chain
from firmware_sim.engine import Engine
from firmware_sim.faults import Fault
from firmware_sim.profiles import get_profile
from firmware_sim.tables import BoardTables
from protocol import numeric
from tests.firmware_sim.conftest import chain_image, random_layers


def sat(x, bits):
    return np.clip(x, numeric.int_min(bits), numeric.int_max(bits))


class SpecBoard:
    """The spec, written plainly: one core at a time, one active row at a time."""

    def __init__(self, image: BoardTables) -> None:
        self.cores = [
            {
                k: (np.asarray(v).astype(np.int64) if not np.isscalar(v) else int(v))
                for k, v in c.items()
            }
            for c in sorted(image.cores, key=lambda c: int(c["core_id"]))
        ]
        self.ids = [int(c["core_id"]) for c in self.cores]
        self.board = image.board
        self.A = max(int(c["n_axons"]) for c in self.cores)  # the fault grid is padded to these
        self.N = max(int(c["n_neurons"]) for c in self.cores)
        self.lam_pow = [
            np.array(numeric.lambda_powers(int(c["lam"][0])), np.int64) for c in self.cores
        ]
        self.faults: list[tuple[Fault, np.random.Generator, dict]] = []
        self.learning = False
        self.v = [np.zeros(int(c["n_neurons"]), np.int64) for c in self.cores]
        self.h = [np.zeros(c["weights"].shape, np.int64) for c in self.cores]
        self.w = [c["weights"].copy() for c in self.cores]
        self.last = [np.zeros(int(c["n_axons"]), np.int64) for c in self.cores]
        self.spiked = [np.zeros(int(c["n_neurons"]), bool) for c in self.cores]
        self.phase = [np.zeros(int(c["n_axons"]), np.int64) for c in self.cores]
        self.counts = [np.zeros(int(c["n_neurons"]), np.int64) for c in self.cores]
        self.t_plastic = self.steps = self.bit_flips = self.events = self.updates = 0

    # --------------------------------------------------------------- faults
    def _cores_of(self, fault: Fault) -> list[int]:
        return (
            list(range(len(self.cores)))
            if fault.target == "all"
            else [self.ids.index(fault.target)]
        )

    def inject(self, fault: Fault) -> None:
        rng = np.random.default_rng(fault.seed)
        masks: dict = {}
        C = len(self.cores)
        if fault.kind in ("stuck-zero", "stuck-value"):
            fraction = (
                fault.magnitude
                if fault.kind == "stuck-zero"
                else fault.params.get("fraction", 0.01)
            )
            draw = rng.random((C * self.A, self.N)) < fraction
            value = 0 if fault.kind == "stuck-zero" else int(fault.magnitude) << 8
            masks["value"] = int(sat(value, numeric.W_EFF_BITS))
            for p in self._cores_of(fault):
                a, n = self.w[p].shape
                masks[p] = draw[p * self.A : p * self.A + a, :n]
        elif fault.kind in ("dead-neuron", "always-fire"):
            draw = rng.random((C, self.N)) < fault.magnitude
            for p in self._cores_of(fault):
                n = self.v[p].size
                if fault.neuron is not None:
                    masks[p] = np.arange(n) == fault.neuron
                else:
                    masks[p] = draw[p, :n]
        self.faults.append((fault, rng, masks))

    def _active(self, *kinds: str):
        """Active faults of these kinds, in injection order (a later one overrides)."""
        return [(f, r, m) for f, r, m in self.faults if f.kind in kinds and f.active(self.steps)]

    def _flip(self) -> None:
        for fault, rng, _ in self.faults:
            if fault.kind not in ("weight-flip", "trace-flip") or not fault.active(self.steps):
                continue
            bits = 8 if fault.kind == "weight-flip" else 16
            cells = [
                (p, i, j)
                for p in self._cores_of(fault)
                for i in range(self.w[p].shape[0])
                for j in range(self.w[p].shape[1])
            ]
            flips = rng.binomial(len(cells) * bits, fault.magnitude)
            if flips == 0:
                continue
            for where in rng.integers(0, len(cells) * bits, flips):
                p, i, j = cells[where // bits]
                table = self.w[p] if bits == 8 else self.h[p]
                raw = (int(table[i, j]) & ((1 << bits) - 1)) ^ (1 << int(where % bits))
                table[i, j] = raw - (1 << bits) if raw >= 1 << (bits - 1) else raw
            self.bit_flips += int(flips)

    # ------------------------------------------------------------- running
    def encode(self, core: dict, obs: np.ndarray) -> np.ndarray:
        obs_q = sat(np.floor(obs * 2.0**16), 32).astype(np.int64)
        src = core["enc_src"]
        cur = np.zeros(src.size, np.int64)
        enc = src >= 0
        cur[enc] = sat(
            (core["enc_gain"][enc] * obs_q[src[enc]] + (core["enc_bias"][enc] << 16)) >> 24, 8
        )
        return cur

    def step(self, obs: np.ndarray, ticks: int) -> np.ndarray:
        currents = [self.encode(c, obs) for c in self.cores]
        for p in range(len(self.cores)):
            self.counts[p][:] = 0
        for _ in range(ticks):
            self.tick(currents)
        self.steps += 1
        acc = self.board["dec_bias"].astype(np.int64).copy()
        for p, c in enumerate(self.cores):
            r = self.counts[p] if self.board["dec_mode"] == 0 else self.v[p]
            for j in np.flatnonzero(c["dec_dst"] >= 0):
                acc[c["dec_dst"][j]] += c["dec_w"][j] * r[j]
        return (acc.astype(np.float64) * 2.0 ** -self.board["dec_shift"].astype(np.int64)).astype(
            np.float32
        )

    def tick(self, currents: list[np.ndarray]) -> None:
        if self.learning:
            self.t_plastic += 1
        down = {p for f, _, _ in self._active("core-down") for p in self._cores_of(f)}
        # 1. receive: routed spikes of the previous tick, then the encoder
        xs = [np.zeros(int(c["n_axons"]), np.int64) for c in self.cores]
        for p, c in enumerate(self.cores):
            for src, dst_core, dst_axon in zip(
                c["route_src"], c["route_dst_core"], c["route_dst_axon"], strict=True
            ):
                if self.spiked[p][src]:
                    xs[self.ids.index(int(dst_core))][dst_axon] = 1
        for p, c in enumerate(self.cores):
            enc = c["enc_src"] >= 0
            if self.board["enc_mode"] == 0:
                xs[p][enc] = currents[p][enc]
            else:  # the engine advances a down core's encoder phase too (see the report)
                self.phase[p][enc] += np.maximum(currents[p][enc], 0)
                fire = enc & (self.phase[p] >= 128)
                self.phase[p][fire] -= 128
                xs[p][enc] = fire[enc]
        new_spiked = []
        for p, c in enumerate(self.cores):
            n = int(c["n_neurons"])
            if p in down:
                new_spiked.append(np.zeros(n, bool))
                continue
            x = xs[p]
            active = [int(i) for i in np.flatnonzero(x)]
            self.events += len(active) * n
            if self.learning:  # 3. lazy decay
                self.updates += len(active) * n
                for i in active:
                    k = min(self.t_plastic - self.last[p][i], numeric.AGE_MAX)
                    self.h[p][i] = (self.h[p][i] * self.lam_pow[p][k]) >> 16
            current = np.zeros(n, np.int64)  # 4. integrate, stuck synapses replace w_eff
            for i in active:
                w_eff = sat((self.w[p][i] << 8) + ((c["alpha"][0] * self.h[p][i]) >> 8), 16)
                for _, _, masks in self._active("stuck-zero", "stuck-value"):
                    if p in masks:
                        w_eff = np.where(masks[p][i], masks["value"], w_eff)
                current += x[i] * w_eff
            v = self.v[p]  # 5. leak and add
            v = sat(v - (v >> c["decay_shift"]) + current, 24)
            s = v >= c["theta"]  # 6. fire
            for _, _, masks in self._active("dead-neuron"):
                if p in masks:
                    s &= ~masks[p]
                    v = np.where(masks[p], 0, v)
            for _, _, masks in self._active("always-fire"):
                if p in masks:
                    s |= masks[p]
            if self.board["reset_mode"] == 0:  # 7. reset
                v = np.where(s, sat(v - c["theta"], 24), v)
            else:
                v = np.where(s, 0, v)
            self.v[p] = v
            if self.learning and active:  # 8. plasticity
                mod_core, mod_j = int(c["mod_src"][0]), int(c["mod_src"][1])
                m = 256
                if mod_core >= 0:
                    m = int(c["mod_levels"][int(self.spiked[self.ids.index(mod_core)][mod_j])])
                d = (s.astype(np.int64) << 8) - c["beta"]
                g = c["f_table"][np.clip(d, -512, 511) + 512]
                h_max = int(c["h_max"][0])
                for i in active:
                    term = (m * int(c["eta"][i]) * int(x[i]) * g) >> 16
                    self.h[p][i] = np.clip(self.h[p][i] + term, -h_max, h_max)
                    self.last[p][i] = self.t_plastic
            new_spiked.append(s)
        self.spiked = new_spiked
        for p in range(len(self.cores)):
            self.counts[p] += new_spiked[p]
        self._flip()

    def read_traces(self) -> list[np.ndarray]:
        out = []
        for p in range(len(self.cores)):
            age = np.minimum(self.t_plastic - self.last[p], numeric.AGE_MAX)
            out.append((self.h[p] * self.lam_pow[p][age][:, None]) >> 16)
        return out


FAULT_MENU = [
    lambda rng, core: Fault(
        "stuck-zero", core, magnitude=float(rng.uniform(0.05, 0.3)), seed=int(rng.integers(99))
    ),
    lambda rng, core: Fault(
        "stuck-value",
        core,
        magnitude=float(rng.integers(-128, 128)),
        seed=int(rng.integers(99)),
        params={"fraction": float(rng.uniform(0.05, 0.3))},
    ),
    lambda rng, core: Fault("dead-neuron", core, magnitude=0.2, seed=int(rng.integers(99))),
    lambda rng, core: Fault("always-fire", core, magnitude=0.1, seed=int(rng.integers(99))),
    lambda rng, core: Fault("core-down", core, onset=int(rng.integers(0, 3)), duration=2),
    lambda rng, core: Fault("weight-flip", core, magnitude=2e-3, seed=int(rng.integers(99))),
    lambda rng, core: Fault("trace-flip", core, magnitude=2e-3, seed=int(rng.integers(99))),
]


def random_board(seed: int) -> tuple[Engine, SpecBoard, np.random.Generator]:
    rng = np.random.default_rng(seed)
    n_layers = int(rng.integers(2, 4))
    sizes = [int(rng.integers(4, 33)) for _ in range(n_layers + 1)]
    if seed % 5 == 3:  # an output layer wider than a core: split, and its inputs routed twice
        sizes[-1] = int(rng.integers(33, 60))
    layers = random_layers(rng, sizes)
    for layer in layers[::2]:  # a bounded tanh-like table on some layers, the linear one elsewhere
        layer.f_table = np.clip(rng.integers(-300, 300, numeric.F_TABLE_SIZE), -256, 256).astype(
            np.int16
        )
    if seed % 4 in (1, 2):
        # the shapes the engine has shortcuts for: one eta per layer, one power-of-two alpha, one
        # lambda (sometimes 1.0), one h_max and one leak shift for the image
        lam = 65536 if seed % 8 == 1 else int(rng.integers(40000, 65536))
        alpha, h_max = 1 << int(rng.integers(0, 9)), int(rng.integers(1000, 32768))
        shift = int(rng.integers(0, 6))
        for layer in layers:
            layer.eta = int(rng.integers(-3000, 3000))
            layer.alpha, layer.lam, layer.h_max, layer.decay_shift = alpha, lam, h_max, shift
    if seed % 3 == 0:  # large traces against small weights: w_eff saturates now and then
        layers[0].alpha = 32000
        layers[0].h_max = 32767
    board = dict(
        reset_mode=int(rng.integers(2)),
        enc_mode=1 if seed % 4 == 2 else int(rng.integers(2)),  # delta spikes: binary inputs
        dec_mode=int(rng.integers(2)),
        ticks_per_step=int(rng.integers(1, 5)),
    )
    if seed % 2:
        board["modulator"] = (0, int(rng.integers(sizes[1])))
    image = chain_image(layers, **board)
    if seed % 2:  # silent and spiked levels that differ, one of them negative
        for core in image.cores:
            core["mod_levels"] = np.array(
                [int(rng.integers(-300, 300)), int(rng.integers(0, 600))], np.int16
            )
    engine, ref = Engine(image), SpecBoard(image)
    for _ in range(int(rng.integers(1, 4))):
        make = FAULT_MENU[int(rng.integers(len(FAULT_MENU)))]
        fault = make(rng, int(rng.integers(n_layers)) if rng.random() < 0.7 else "all")
        engine.inject(fault)
        ref.inject(fault)
    return engine, ref, rng


@pytest.mark.parametrize("seed", range(48))
def test_engine_matches_the_plain_spec_bit_for_bit(seed):
    engine, ref, rng = random_board(seed)
    dims = engine.obs_dim
    updates_seen = 0
    for step in range(12):
        learning = step % 5 != 4  # mostly learning, sometimes not (traces still count in w_eff)
        engine.learning = ref.learning = learning
        obs = rng.normal(0, 80, dims)
        out = engine.step(obs)
        expect = ref.step(obs, engine.ticks_per_step)
        assert np.array_equal(out, expect)
        for p, core_id in enumerate(engine.core_ids):
            a, n = ref.w[p].shape
            assert np.array_equal(engine.read_membranes()[core_id], ref.v[p])
            assert np.array_equal(engine.read_weights()[core_id], ref.w[p])
            assert np.array_equal(engine.read_traces()[core_id], ref.read_traces()[p])
            assert np.array_equal(engine.read_counts()[core_id], ref.counts[p])
            stored = np.asarray(engine.traces).reshape(engine.n_cores, engine.n_axons, -1)[
                p, :a, :n
            ]
            assert np.array_equal(stored, ref.h[p])
        updates_seen = engine.telemetry.plasticity_updates
    tel = engine.telemetry
    assert (tel.synaptic_events, tel.plasticity_updates, tel.bit_flips) == (
        ref.events,
        ref.updates,
        ref.bit_flips,
    )
    assert updates_seen > 0


@pytest.mark.parametrize("seed", range(2))
def test_full_size_cores_match_the_plain_spec(seed):
    # 256 x 256 cores of the Tianjic-like profile: many active rows per core, so the kernel's
    # look-ahead reaches across rows and cores; a stuck-synapse fault and a modulator on one seed
    rng = np.random.default_rng(100 + seed)
    layers = random_layers(rng, [256, 256, 256])
    for layer in layers:
        layer.theta = rng.integers(256 * 400, 256 * 900, 256)
    encoder = Encoder(src=np.arange(256), gain=256, mode=1)  # sparse delta spikes
    chain = Chain(layers, encoder, Decoder(dst=np.arange(256) % 4), 256, 4)
    image = map_chain(chain, get_profile("tianjic"))
    engine, ref = Engine(image), SpecBoard(image)
    if seed:
        fault = Fault("stuck-value", 1, magnitude=-40.0, seed=3, params={"fraction": 0.05})
        engine.inject(fault)
        ref.inject(fault)
    engine.learning = ref.learning = True
    for _ in range(4):
        obs = rng.uniform(0, 40, 256)
        assert np.array_equal(engine.step(obs), ref.step(obs, engine.ticks_per_step))
    for p, core_id in enumerate(engine.core_ids):
        assert np.array_equal(engine.read_traces()[core_id], ref.read_traces()[p])
        assert np.array_equal(engine.read_membranes()[core_id], ref.v[p])
    assert engine.telemetry.synaptic_events == ref.events > 0
    assert engine.telemetry.spikes.sum() > 0
