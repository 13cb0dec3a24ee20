"""The bit-exact integer engine: one tick of docs/board-spec.md §3, for all cores at once.

Cores are stacked and padded to the widest core of the image: synaptic memory is
``(cores * axons, neurons)`` with row ``core * axons + axon``, neuron state is ``(cores, neurons)``.
The tick itself is one compiled kernel (``firmware_sim.kernels.run_tick``) that touches only the
*active rows* (axons with a nonzero input) of each core and only its real neurons: padding axons
have no source, so they are never active, and padding neurons never change. This class loads the
image into the kernel's tables, keeps the state, the faults and the counters, and encodes/decodes.

State is the engine's own arrays (``reset`` makes them); widths come from ``protocol.numeric`` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_sim import kernels, spec
from firmware_sim.errors import BoardError, FaultError
from firmware_sim.faults import (
    ALL_CORES,
    FLIP_KINDS,
    NEURON_KINDS,
    SYNAPSE_KINDS,
    Fault,
)
from firmware_sim.profiles import Profile, get_profile
from firmware_sim.rules import check
from firmware_sim.tables import BoardTables
from protocol import numeric

NO_STUCK = (np.zeros((1, 1), bool), np.zeros((1, 1), np.int32))
"""Stand-ins for the stuck-synapse masks while no such fault is active (the kernel skips them)."""


def _gather(
    cores: list[dict], selector: str, stride: int, keys: tuple[str, ...]
) -> tuple[np.ndarray, ...]:
    """Where ``core[selector] >= 0`` on each core ``p``: the flat index ``p * stride + i`` and
    the tables ``keys`` there, each concatenated over the cores as int64."""
    picked = [np.flatnonzero(core[selector] >= 0) for core in cores]
    flat = np.concatenate([p * stride + i for p, i in enumerate(picked)]).astype(np.int64)
    tables = (
        np.concatenate([core[key][i] for core, i in zip(cores, picked, strict=True)])
        for key in keys
    )
    return (flat, *(table.astype(np.int64) for table in tables))


@dataclass
class Telemetry:
    """Counters of docs/board-spec.md §9; ``spikes`` has one entry per core of the image."""

    ticks: int = 0
    steps: int = 0
    spikes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    synaptic_events: int = 0
    plasticity_updates: int = 0
    bit_flips: int = 0
    faults_active: int = 0
    bad_frames: int = 0

    def to_dict(self, core_ids: list[int]) -> dict:
        return {
            "ticks": self.ticks,
            "steps": self.steps,
            "spikes": {str(c): int(n) for c, n in zip(core_ids, self.spikes, strict=True)},
            "synaptic_events": self.synaptic_events,
            "plasticity_updates": self.plasticity_updates,
            "bit_flips": self.bit_flips,
            "faults_active": self.faults_active,
            "bad_frames": self.bad_frames,
        }


class Engine:
    """A loaded image and its running state. ``step(obs)`` is one control step of T ticks."""

    def __init__(self, image: BoardTables, profile: Profile | None = None) -> None:
        self.profile = profile or get_profile(image.profile)
        check(image, self.profile)
        self.image = image
        self.learning = False
        self._load_tables(image)
        self.faults: list[Fault] = []
        self._fault_rngs: list[np.random.Generator] = []
        self._fault_masks: list[dict[str, np.ndarray]] = []
        self.telemetry = Telemetry(spikes=np.zeros(self.n_cores, np.int64))
        self.reset()

    # ----------------------------------------------------------------- loading
    def _load_tables(self, image: BoardTables) -> None:
        """The image's tables in the kernel's layout (see the module docstring)."""
        cores = sorted(image.cores, key=lambda core: int(core["core_id"]))
        self.core_ids = [int(core["core_id"]) for core in cores]
        self.n_cores = len(cores)
        self.n_axons = max(int(core["n_axons"]) for core in cores)
        self.n_neurons = max(int(core["n_neurons"]) for core in cores)
        self.n_axons_of = np.array([int(core["n_axons"]) for core in cores], np.int64)
        self.n_neurons_of = np.array([int(core["n_neurons"]) for core in cores], np.int64)
        self.row_core = np.repeat(np.arange(self.n_cores), self.n_axons)
        self._load_settings(image.board)
        self._load_synapses(cores)
        self._load_neurons(cores)
        self._load_rules(cores)
        # the encoder's axons (stacked rows) and the decoded neurons (flat core * neurons + j)
        self.enc_rows, self.enc_src, self.enc_gain, enc_bias = _gather(
            cores, "enc_src", self.n_axons, ("enc_src", "enc_gain", "enc_bias")
        )
        self.enc_bias = enc_bias << numeric.OBS_FRAC
        self.dec_flat, self.dec_dst, self.dec_w = _gather(
            cores, "dec_dst", self.n_neurons, ("dec_dst", "dec_w")
        )
        self._load_routes(cores)
        self._tables = (
            self.weights,
            self.lam_pow,
            self.core_alpha,
            self.row_eta,
            self.row_h_max,
            self.theta,
            self.decay_shift,
            self.f_post,
            self.mod_neuron,
            self.mod_levels,
            self.n_axons_of,
            self.n_neurons_of,
            self.reset_mode,
            self.enc_mode,
        )
        self._routes = (self.enc_rows, self.route_start, self.route_dst)
        C, A, N = self.n_cores, self.n_axons, self.n_neurons
        # scratch of the kernel: axon inputs, per-core accumulator, f(post - beta), Hebbian
        # term, active rows, where each core's active rows start
        self._scratch = (
            np.zeros(C * A, np.int64),
            np.zeros(N, np.int64),
            np.zeros(N, np.int64),
            np.zeros(N, np.int64),
            np.zeros(C * A, np.int64),
            np.zeros(C + 1, np.int64),
        )
        self.core_up = np.ones(C, bool)
        self._fault_key: tuple[bool, ...] = ()

    def _load_settings(self, board: dict) -> None:
        """The image-wide settings: step length, sizes, modes, the decoder's bias and shift."""
        self.ticks_per_step = int(board["ticks_per_step"])
        self.obs_dim, self.act_dim = int(board["obs_dim"]), int(board["act_dim"])
        self.reset_mode = int(board["reset_mode"])
        self.enc_mode, self.dec_mode = int(board["enc_mode"]), int(board["dec_mode"])
        self.dec_bias = board["dec_bias"].astype(np.int64)
        self.dec_scale = np.ldexp(1.0, -board["dec_shift"].astype(np.int64))

    def _core_rows(self, p: int) -> slice:
        """Core ``p``'s real rows of the stacked synaptic memory."""
        return slice(p * self.n_axons, p * self.n_axons + int(self.n_axons_of[p]))

    def _load_synapses(self, cores: list[dict]) -> None:
        """Weights, stacked ``(cores * axons, neurons)``; padding stays 0."""
        self.weights = np.zeros((self.n_cores * self.n_axons, self.n_neurons), np.int8)
        for p, core in enumerate(cores):
            self.weights[self._core_rows(p), : self.n_neurons_of[p]] = core["weights"]

    def _load_neurons(self, cores: list[dict]) -> None:
        """Threshold and leak shift per neuron, ``(cores, neurons)``."""
        C, N = self.n_cores, self.n_neurons
        self.theta = np.full((C, N), numeric.V_MAX + 1, np.int64)  # padding: never read
        self.decay_shift = np.zeros((C, N), np.int64)
        for p, core in enumerate(cores):
            n = self.n_neurons_of[p]
            self.theta[p, :n] = core["theta"]
            self.decay_shift[p, :n] = core["decay_shift"]

    def _load_rules(self, cores: list[dict]) -> None:
        """The plastic rule: lambda table and alpha per core, eta and h_max per row, the two
        ``f(post - beta)`` tables and the modulator of each core."""
        C, A, N = self.n_cores, self.n_axons, self.n_neurons
        position = {core_id: p for p, core_id in enumerate(self.core_ids)}
        beta = np.zeros((C, N), np.int64)
        f_table = np.zeros((C, numeric.F_TABLE_SIZE), np.int64)
        self.lam_pow = np.zeros((C, numeric.AGE_MAX + 1), np.int64)
        self.core_alpha = np.zeros(C, np.int64)
        self.row_eta = np.zeros(C * A, np.int64)
        self.row_h_max = np.zeros(C * A, np.int64)
        self.mod_neuron = np.full(C, -1, np.int64)  # flat index into (C * N), -1: none
        self.mod_levels = np.full((C, 2), numeric.MOD_ONE, np.int64)
        for p, core in enumerate(cores):
            rows = self._core_rows(p)
            beta[p, : self.n_neurons_of[p]] = core["beta"]
            f_table[p] = core["f_table"]
            self.lam_pow[p] = spec.lambda_table(int(core["lam"][0]))
            self.core_alpha[p] = int(core["alpha"][0])
            self.row_eta[rows] = core["eta"]
            self.row_h_max[rows] = int(core["h_max"][0])
            mod_core, mod_j = (int(v) for v in core["mod_src"])
            if mod_core >= 0:
                self.mod_neuron[p] = position[mod_core] * N + mod_j
                self.mod_levels[p] = core["mod_levels"]
        # post is 0 or 1, so f(post - beta) is one of two (cores, neurons) tables
        d = (np.arange(2)[:, None, None] << numeric.BETA_FRAC) - beta
        d = np.clip(d, numeric.F_INDEX_MIN, numeric.F_INDEX_MAX) - numeric.F_INDEX_MIN
        self.f_post = f_table[np.arange(C)[None, :, None], d]

    def _load_routes(self, cores: list[dict]) -> None:
        """Routes by source neuron (CSR): the axons neuron k feeds are
        ``route_dst[route_start[k]:route_start[k + 1]]``."""
        position = {core_id: p for p, core_id in enumerate(self.core_ids)}
        src, dst = [], []
        for p, core in enumerate(cores):
            src.append(p * self.n_neurons + core["route_src"].astype(np.int64))
            dst_pos = np.array([position[int(c)] for c in core["route_dst_core"]], np.int64)
            dst.append(dst_pos * self.n_axons + core["route_dst_axon"].astype(np.int64))
        src_flat, dst_flat = np.concatenate(src), np.concatenate(dst)
        self.route_dst = dst_flat[np.argsort(src_flat, kind="stable")]
        self.route_start = np.zeros(self.n_cores * self.n_neurons + 1, np.int64)
        np.cumsum(
            np.bincount(src_flat, minlength=self.n_cores * self.n_neurons), out=self.route_start[1:]
        )

    # ------------------------------------------------------------------- state
    def reset(self) -> None:
        """Clear membranes, traces, in-flight spikes, encoder phases and the tick counters."""
        C, A, N = self.n_cores, self.n_axons, self.n_neurons
        self.v_mem = np.zeros((C, N), np.int64)
        self.traces = np.zeros((C * A, N), np.int16)
        self.last = np.zeros(C * A, np.int64)
        self.spiked = np.zeros(C * N, bool)
        self.enc_phase = np.zeros(self.enc_rows.size, np.int64)
        self.counts = np.zeros(C * N, np.int64)
        self.tick = 0
        self.steps = 0
        self.t_plastic = 0
        self._traces_zero = True  # every trace is 0: w_eff is W << 8, decay has nothing to do
        self._refresh_faults(force=True)

    def reset_plastic(self) -> None:
        """Zero the plastic traces only (the global-weights baseline starts from here)."""
        self.traces[:] = 0
        self.last[:] = self.t_plastic
        self._traces_zero = True

    def _per_core(self, table: np.ndarray, dtype: type) -> dict[int, np.ndarray]:
        """A stacked ``(cores, neurons)`` or ``(cores, axons, neurons)`` table cut to each core's
        real neurons (and axons), as copies of ``dtype``, by core id."""
        if table.ndim == 2:
            return {
                core_id: table[p, : self.n_neurons_of[p]].astype(dtype)
                for p, core_id in enumerate(self.core_ids)
            }
        return {
            core_id: table[p, : self.n_axons_of[p], : self.n_neurons_of[p]].astype(dtype)
            for p, core_id in enumerate(self.core_ids)
        }

    def _stacked(self, rows: np.ndarray) -> np.ndarray:
        """A ``(cores * axons, neurons)`` table as ``(cores, axons, neurons)``."""
        return rows.reshape(self.n_cores, self.n_axons, self.n_neurons)

    def read_traces(self) -> dict[int, np.ndarray]:
        """Traces per core as of the current tick (lazy decay applied to a copy: no side effect)."""
        age = np.minimum(self.t_plastic - self.last, numeric.AGE_MAX)
        scaled = self.traces.astype(np.int64) * self.lam_pow[self.row_core, age][:, None]
        return self._per_core(self._stacked(scaled >> numeric.LAMBDA_FRAC), np.int16)

    def read_membranes(self) -> dict[int, np.ndarray]:
        return self._per_core(self.v_mem, np.int32)

    def read_counts(self) -> dict[int, np.ndarray]:
        """Spike counts of the last step, per core."""
        return self._per_core(self.counts.reshape(self.n_cores, self.n_neurons), np.int32)

    def read_weights(self) -> dict[int, np.ndarray]:
        return self._per_core(self._stacked(self.weights), np.int8)

    def read_faults(self) -> dict[int, dict[str, np.ndarray]]:
        """The on-chip faults acting now, per core: ``stuck`` synapses (axons, neurons) whose
        ``w_eff`` a fault replaces, ``dead`` and ``always`` (firing) neurons."""
        stuck, _, dead, always, _, has_stuck, _, _ = self._faults
        if not has_stuck:
            stuck = np.zeros((self.n_cores * self.n_axons, self.n_neurons), bool)
        masks = {"stuck": self._stacked(stuck), "dead": dead, "always": always}
        per_kind = {kind: self._per_core(mask, bool) for kind, mask in masks.items()}
        return {core_id: {k: v[core_id] for k, v in per_kind.items()} for core_id in self.core_ids}

    # --------------------------------------------------------------- encode/decode
    def encode(self, obs: np.ndarray) -> np.ndarray:
        """Encoder currents (int8 values) of the encoder axons for one observation."""
        obs = np.asarray(obs, dtype=np.float64)
        if obs.shape != (self.obs_dim,):
            raise BoardError(
                f"an observation has {obs.size} values but the image takes {self.obs_dim}."
            )
        if not np.all(np.isfinite(obs)):
            raise BoardError("an observation holds NaN or infinity; send finite values.")
        obs_q = spec.saturate(np.floor(np.ldexp(obs, numeric.OBS_FRAC)), numeric.OBS_BITS).astype(
            np.int64
        )
        acc = self.enc_gain * obs_q[self.enc_src] + self.enc_bias
        return spec.saturate(acc >> numeric.ENC_SHIFT, numeric.INPUT_BITS)

    def decode(self) -> np.ndarray:
        """Actions (float32) from this step's spike counts or the final membranes."""
        flat = self.counts if self.dec_mode == numeric.DEC_COUNTS else self.v_mem.ravel()
        acc = self.dec_bias.copy()
        np.add.at(acc, self.dec_dst, self.dec_w * flat[self.dec_flat])
        return (acc.astype(np.float64) * self.dec_scale).astype(np.float32)

    # -------------------------------------------------------------------- running
    def step(self, obs: np.ndarray, ticks: int | None = None) -> np.ndarray:
        """One control step: encode ``obs``, run T ticks (or ``ticks``), decode: act_dim float32."""
        obs = np.asarray(obs, dtype=np.float64)
        self._refresh_faults()
        noise = self._input_noise(obs.shape)
        current = self.encode(obs if noise is None else obs + noise)
        self.counts[:] = 0
        for _ in range(self.ticks_per_step if ticks is None else ticks):
            self.run_tick(current)
        self.steps += 1
        self.telemetry.steps += 1
        return self.decode()

    def run_tick(self, current: np.ndarray) -> np.ndarray:
        """One tick for every core; ``current`` is the encoder output. Returns the spikes (C, N)."""
        self.tick += 1
        learning = self.learning
        if learning:
            self.t_plastic += 1
        spikes = np.zeros((self.n_cores, self.n_neurons), bool)
        tel = self.telemetry
        state = (
            self.traces,
            self.last,
            self.v_mem,
            self.spiked,
            self.enc_phase,
            self.counts,
            *self._scratch,
        )
        events = kernels.run_tick(
            kernels.LIMITS,
            self._tables,
            self._routes,
            self._faults,
            state,
            np.ascontiguousarray(current, np.int64),
            learning,
            self.t_plastic,
            self._traces_zero,
            spikes,
            tel.spikes,
        )
        if learning and events:
            self._traces_zero = False
        # 9. send: the routes read ``spiked`` on the next tick
        self.spiked = spikes.reshape(-1)
        if self.faults:
            self._flip_bits()
        tel.ticks += 1
        tel.synaptic_events += events
        if learning:
            tel.plasticity_updates += events
        return spikes

    # --------------------------------------------------------------------- faults
    def inject(self, fault: Fault) -> None:
        """Add a fault; its random choices are drawn now from its seed."""
        if fault.target != ALL_CORES and fault.target not in self.core_ids:
            raise FaultError(
                f"fault {fault.kind} targets core {fault.target}, which this image does not use "
                f"(cores {self.core_ids[0]}..{self.core_ids[-1]})."
            )
        rng = np.random.default_rng(fault.seed)
        self.faults.append(fault)
        self._fault_rngs.append(rng)
        self._fault_masks.append(self._draw_masks(fault, rng))
        self._refresh_faults(force=True)

    def remove_fault(self, index: int) -> None:
        """Remove the ``index``-th injected fault (the others keep their draws)."""
        for table in (self.faults, self._fault_rngs, self._fault_masks):
            del table[index]
        self._refresh_faults(force=True)

    def clear_faults(self) -> None:
        self.faults, self._fault_rngs, self._fault_masks = [], [], []
        self._refresh_faults(force=True)

    def active_faults(self) -> list[Fault]:
        return [fault for fault in self.faults if fault.active(self.steps)]

    def _target_cores(self, fault: Fault) -> np.ndarray:
        if fault.target == ALL_CORES:
            return np.ones(self.n_cores, bool)
        return np.arange(self.n_cores) == self.core_ids.index(int(fault.target))

    def _real_synapses(self, cores: np.ndarray) -> np.ndarray:
        axon_ok = np.arange(self.n_axons)[None, :] < self.n_axons_of[:, None]
        neuron_ok = np.arange(self.n_neurons)[None, :] < self.n_neurons_of[:, None]
        real = axon_ok[:, :, None] & neuron_ok[:, None, :] & cores[:, None, None]
        return real.reshape(self.n_cores * self.n_axons, self.n_neurons)

    def _draw_masks(self, fault: Fault, rng: np.random.Generator) -> dict[str, np.ndarray]:
        cores = self._target_cores(fault)
        if fault.kind in SYNAPSE_KINDS:
            real = self._real_synapses(cores)
            fraction = (
                fault.magnitude
                if fault.kind == "stuck-zero"
                else fault.params.get("fraction", 0.01)
            )
            value = 0 if fault.kind == "stuck-zero" else int(fault.magnitude) << numeric.TRACE_FRAC
            mask = real & (rng.random(real.shape) < fraction)
            return {"stuck": mask, "value": np.int32(spec.saturate(value, numeric.W_EFF_BITS))}
        if fault.kind in NEURON_KINDS:
            real = (np.arange(self.n_neurons)[None, :] < self.n_neurons_of[:, None]) & cores[
                :, None
            ]
            if fault.neuron is not None:
                if fault.neuron >= self.n_neurons:
                    raise FaultError(
                        f"fault {fault.kind} names neuron {fault.neuron}, beyond "
                        f"the {self.n_neurons} neurons of a core."
                    )
                chosen = np.zeros_like(real)
                chosen[:, fault.neuron] = True
                return {"neurons": real & chosen}
            return {"neurons": real & (rng.random(real.shape) < fault.magnitude)}
        return {"cores": cores}

    def _refresh_faults(self, force: bool = False) -> None:
        """Rebuild the combined masks when the set of active faults changes."""
        key = tuple(fault.active(self.steps) for fault in self.faults)
        if not force and key == self._fault_key:
            return
        self._fault_key = key
        C, A, N = self.n_cores, self.n_axons, self.n_neurons
        stuck = stuck_value = None
        dead, always = np.zeros((C, N), bool), np.zeros((C, N), bool)
        self.core_up = np.ones(C, bool)
        for fault, masks, on in zip(self.faults, self._fault_masks, key, strict=True):
            if not on:
                continue
            if fault.kind in SYNAPSE_KINDS:
                if stuck is None:
                    stuck, stuck_value = np.zeros((C * A, N), bool), np.zeros((C * A, N), np.int32)
                stuck |= masks["stuck"]
                stuck_value[masks["stuck"]] = masks["value"]  # a later fault overrides
            elif fault.kind == "dead-neuron":
                dead |= masks["neurons"]
            elif fault.kind == "always-fire":
                always |= masks["neurons"]
            elif fault.kind == "core-down":
                self.core_up &= ~masks["cores"]
        has_stuck = stuck is not None
        stuck, stuck_value = (stuck, stuck_value) if has_stuck else NO_STUCK
        # the kernel's view: masks, then whether each kind is present at all
        self._faults = (
            stuck,
            stuck_value,
            dead,
            always,
            self.core_up,
            has_stuck,
            bool(dead.any()),
            bool(always.any()),
        )
        self.telemetry.faults_active = sum(key)

    def _input_noise(self, shape: tuple[int, ...]) -> np.ndarray | None:
        noise = None
        for fault, rng in zip(self.faults, self._fault_rngs, strict=True):
            if fault.kind == "input-noise" and fault.active(self.steps):
                draw = fault.magnitude * rng.standard_normal(shape)
                noise = draw if noise is None else noise + draw
        return noise

    def _flip_bits(self) -> None:
        """Single-event upsets at the end of the tick: each bit flips with the fault's rate."""
        for fault, rng, masks in zip(self.faults, self._fault_rngs, self._fault_masks, strict=True):
            if fault.kind not in FLIP_KINDS or not fault.active(self.steps):
                continue
            bits = numeric.WEIGHT_BITS if fault.kind == "weight-flip" else numeric.TRACE_BITS
            cells = np.flatnonzero(self._real_synapses(masks["cores"]))
            flips = rng.binomial(cells.size * bits, fault.magnitude)
            if flips == 0:
                continue
            where = rng.integers(0, cells.size * bits, flips)
            cell, bit = cells[where // bits], where % bits
            self.telemetry.bit_flips += int(flips)
            if fault.kind == "weight-flip":
                raw = self.weights.reshape(-1).view(np.uint8)
                np.bitwise_xor.at(raw, cell, (1 << bit).astype(np.uint8))
            else:
                raw = self.traces.reshape(-1).view(np.uint16)
                np.bitwise_xor.at(raw, cell, (1 << bit).astype(np.uint16))
                self._traces_zero = False
