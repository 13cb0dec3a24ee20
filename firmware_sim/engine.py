"""The bit-exact integer engine: one tick of docs/board-spec.md §3, for all cores at once.

Cores are stacked and padded to the widest core of the image, so one numpy operation serves all
cores: synaptic memory is ``(cores * axons, neurons)`` with row ``core * axons + axon``, neuron
state is ``(cores, neurons)``. A tick touches only the *active rows* (axons with a nonzero input):
their weights and traces are gathered, decayed lazily with one power of lambda, summed per core and
written back. Padding neurons get a threshold above the membrane range, so they never fire;
padding axons have no source, so they are never active.

State is explicit (``EngineState``); widths come from ``firmware_sim.spec`` only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from firmware_sim import spec
from firmware_sim.errors import BoardError, FaultError
from firmware_sim.faults import (
    ALL_CORES,
    FLIP_KINDS,
    NEURON_KINDS,
    SYNAPSE_KINDS,
    Fault,
)
from firmware_sim.image import BoardImage
from firmware_sim.profiles import Profile, get_profile
from firmware_sim.rules import check

SELECTOR_LIMIT = 1 << 16
"""Sum active rows per core with a float selector matmul (exact: every partial sum is an integer
below 2^24 in float32 or 2^31 in float64) while cores * rows stays below this; above it the rows
are laid out per core and summed by halving (``_fold_per_core``), which needs no BLAS threads."""
TRACE_LIMIT = -spec.TRACE_MIN  # the largest |H| an int16 trace can hold
V_MIN, V_MAX = np.int64(spec.V_MIN), np.int64(spec.V_MAX)  # typed: np.clip is quicker so

FOLD_WIDTH = 16
"""Rows per chunk of ``_fold_per_core``: small enough that padding stays cheap on cores with a
few active rows, large enough that few chunk sums are left to fold again."""


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

    def __init__(self, image: BoardImage, profile: Profile | None = None) -> None:
        self.profile = profile or get_profile(image.profile)
        check(image, self.profile)
        self.image = image
        self.learning = False
        self._load_tables(image)
        self.faults: list[Fault] = []
        self._fault_rngs: list[np.random.Generator] = []
        self._fault_masks: list[dict[str, np.ndarray]] = []
        self.telemetry = Telemetry(spikes=np.zeros(self.n_cores, np.int64))
        self._scratch: dict[str, np.ndarray] = {}
        self.reset()

    # ----------------------------------------------------------------- loading
    def _load_tables(self, image: BoardImage) -> None:
        cores = sorted(image.cores, key=lambda core: int(core["core_id"]))
        self.core_ids = [int(core["core_id"]) for core in cores]
        position = {core_id: p for p, core_id in enumerate(self.core_ids)}
        C = self.n_cores = len(cores)
        A = self.n_axons = max(int(core["n_axons"]) for core in cores)
        N = self.n_neurons = max(int(core["n_neurons"]) for core in cores)
        board = image.board
        self.ticks_per_step = int(board["ticks_per_step"])
        self.obs_dim, self.act_dim = int(board["obs_dim"]), int(board["act_dim"])
        self.reset_mode = int(board["reset_mode"])
        self.enc_mode, self.dec_mode = int(board["enc_mode"]), int(board["dec_mode"])
        self.dec_bias = board["dec_bias"].astype(np.int64)
        self.dec_scale = np.ldexp(1.0, -board["dec_shift"].astype(np.int64))

        self.weights = np.zeros((C * A, N), np.int8)
        self.theta = np.full((C, N), spec.V_MAX + 1, np.int64)  # padding never fires
        self.decay_shift = np.zeros((C, N), np.int64)
        self.beta = np.zeros((C, N), np.int64)
        self.f_table = np.zeros((C, spec.F_TABLE_SIZE), np.int64)
        self.lam_pow = np.zeros((C, spec.AGE_MAX + 1), np.int32)
        self.row_alpha = np.zeros(C * A, np.int32)
        self.row_eta = np.zeros(C * A, np.int64)
        self.row_h_max = np.zeros(C * A, np.int32)
        self.row_core = np.repeat(np.arange(C), A)
        self.row_neurons = np.zeros(C * A, np.int64)
        self.mod_neuron = np.full(C, -1, np.int64)  # flat index into (C * N), -1: none
        self.mod_levels = np.full((C, 2), spec.MOD_ONE, np.int64)
        self.n_neurons_of = np.zeros(C, np.int64)
        self.n_axons_of = np.zeros(C, np.int64)
        enc_rows, enc_src, enc_gain, enc_bias = [], [], [], []
        dec_flat, dec_dst, dec_w = [], [], []
        route_src, route_dst = [], []
        for p, core in enumerate(cores):
            a, n = int(core["n_axons"]), int(core["n_neurons"])
            rows = slice(p * A, p * A + a)
            self.n_axons_of[p], self.n_neurons_of[p] = a, n
            self.weights[rows, :n] = core["weights"]
            self.theta[p, :n] = core["theta"]
            self.decay_shift[p, :n] = core["decay_shift"]
            self.beta[p, :n] = core["beta"]
            self.f_table[p] = core["f_table"]
            self.lam_pow[p] = spec.lambda_powers(int(core["lam"][0]))
            self.row_alpha[rows] = int(core["alpha"][0])
            self.row_eta[rows] = core["eta"]
            self.row_h_max[rows] = int(core["h_max"][0])
            self.row_neurons[rows] = n
            mod_core, mod_j = (int(v) for v in core["mod_src"])
            if mod_core >= 0:
                self.mod_neuron[p] = position[mod_core] * N + mod_j
                self.mod_levels[p] = core["mod_levels"]
            enc = np.flatnonzero(core["enc_src"] >= 0)
            enc_rows.append(p * A + enc)
            enc_src.append(core["enc_src"][enc])
            enc_gain.append(core["enc_gain"][enc])
            enc_bias.append(core["enc_bias"][enc])
            dec = np.flatnonzero(core["dec_dst"] >= 0)
            dec_flat.append(p * N + dec)
            dec_dst.append(core["dec_dst"][dec])
            dec_w.append(core["dec_w"][dec])
            route_src.append(p * N + core["route_src"].astype(np.int64))
            dst_pos = np.array([position[int(c)] for c in core["route_dst_core"]], np.int64)
            route_dst.append(dst_pos * A + core["route_dst_axon"].astype(np.int64))
        # W << 8 spans -2^15 .. 2^15 - 2^8, so int16 holds it: half the bytes to gather, then one
        # cast copy to int32 (numpy's mixed-width ufuncs cost about 3x a same-width pass)
        self.weights_q8 = self.weights.astype(np.int16) << spec.TRACE_FRAC
        self.alpha_top = max(abs(int(core["alpha"][0])) for core in cores)
        self.h_max_top = max(int(core["h_max"][0]) for core in cores)
        self.row_w_hi = np.zeros(C * A, np.int64)
        self.row_w_lo = np.zeros(C * A, np.int64)
        self.row_safe = np.zeros(C * A, bool)
        self._weight_ranges(np.arange(C * A))

        # f(post - beta) for post = 0 and 1, and the narrowest exact type for m * eta * x * f:
        # |m| <= max level, |x| <= 128; it needs int64 in general (2^52), int32 often suffices
        def f_of(post: int) -> np.ndarray:
            d = np.clip((post << spec.BETA_FRAC) - self.beta, spec.F_INDEX_MIN, spec.F_INDEX_MAX)
            return self.f_table[np.arange(C)[:, None], d - spec.F_INDEX_MIN]

        f_post0, f_post1 = f_of(0), f_of(1)
        self.has_modulator = bool((self.mod_neuron >= 0).any())
        bound = (
            int(np.abs(self.mod_levels).max())
            * int(np.abs(self.row_eta).max(initial=0))
            * (1 << (spec.INPUT_BITS - 1))
            * int(np.abs(self.f_table).max())
        )
        self.plastic_dtype = np.int32 if bound < (1 << 31) else np.int64
        self.f_post0 = f_post0.astype(self.plastic_dtype)
        self.f_post1 = f_post1.astype(self.plastic_dtype)
        self.row_eta = self.row_eta.astype(self.plastic_dtype)
        # one eta per core (per layer): with binary inputs the Hebbian term is a per-core table
        self.eta_per_core = all(len(set(core["eta"].tolist())) <= 1 for core in cores)
        lams = {int(core["lam"][0]) for core in cores}
        self.lam_one = lams == {spec.LAMBDA_ONE}  # lambda = 1.0: decay changes nothing
        self.lam_table = self.lam_pow[0] if len(lams) == 1 else None  # one lambda: 1-D lookup
        self.uniform_neurons = bool((self.n_neurons_of == N).all())
        # without a modulator, one eta per core and binary inputs, the Hebbian term of every row
        # of core c is (eta_c << 8) * f(post - beta) >> 16: two (cores, neurons) tables, one per
        # post value, made once (clipped to +-2^16, which changes nothing: see _plasticity)
        self.hebb_tables = None
        if self.eta_per_core and not self.has_modulator:
            first_eta = self.row_eta.reshape(C, A)[:, :1].astype(np.int64) << spec.MOD_FRAC
            self.hebb_tables = tuple(
                np.clip((first_eta * f) >> spec.PLASTIC_SHIFT, -(1 << 16), 1 << 16).astype(np.int32)
                for f in (f_post0, f_post1)
            )
        self.h_max_uniform = len({int(core["h_max"][0]) for core in cores}) == 1
        alphas = {int(core["alpha"][0]) for core in cores}
        # one alpha for the whole image lets |alpha * H| <= 2^30 be a scalar multiply
        self.alpha_uniform = np.int32(alphas.pop()) if len(alphas) == 1 else None
        # alpha = 2^a (a <= 8): (alpha * H) >> 8 == H >> (8 - a), one shift instead of two passes
        a = int(self.alpha_uniform) if self.alpha_uniform is not None else -1
        self.alpha_shift = (
            spec.ALPHA_FRAC - a.bit_length() + 1
            if 0 < a <= 1 << spec.ALPHA_FRAC and a & (a - 1) == 0
            else None
        )
        self.enc_rows = np.concatenate(enc_rows).astype(np.int64)
        first = int(self.enc_rows[0]) if self.enc_rows.size else 0
        contiguous = np.array_equal(self.enc_rows, np.arange(first, first + self.enc_rows.size))
        # the usual encoder feeds one core's first axons: a slice is cheaper than an index
        self.enc_at = slice(first, first + self.enc_rows.size) if contiguous else self.enc_rows
        self.enc_src = np.concatenate(enc_src).astype(np.int64)
        self.enc_gain = np.concatenate(enc_gain).astype(np.int64)
        self.enc_bias = np.concatenate(enc_bias).astype(np.int64) << spec.OBS_FRAC
        self.dec_flat = np.concatenate(dec_flat).astype(np.int64)
        self.dec_dst = np.concatenate(dec_dst).astype(np.int64)
        self.dec_w = np.concatenate(dec_w).astype(np.int64)
        self.route_src = np.concatenate(route_src)
        self.route_dst = np.concatenate(route_dst)
        # a source neuron with at most one route (a layer that fits one core): a lookup from the
        # neurons that spiked to their target axon replaces a pass over every route; neurons
        # without a route point at one spare axon past the end
        self.route_of = None
        if np.unique(self.route_src).size == self.route_src.size:
            self.route_of = np.full(C * N, C * A, np.int64)
            self.route_of[self.route_src] = self.route_dst
        # padding neurons get no input and stay at 0 under any shift: only real ones decide
        shifts = {int(d) for core in cores for d in core["decay_shift"]}
        self.leak_shift = shifts.pop() if len(shifts) == 1 else self.decay_shift
        self.core_column = np.arange(C)[:, None]
        self.core_up = np.ones(C, bool)
        self.all_up = True
        self._fault_key: tuple[bool, ...] = ()

    @property
    def _traces_zero(self) -> bool:
        """Every trace is 0 (w_eff is W << 8 then, and decay has nothing to do)."""
        return self._trace_bound == 0

    @_traces_zero.setter
    def _traces_zero(self, zero: bool) -> None:
        # traces written from outside (or flipped) may hold any int16 value
        self._trace_bound = 0 if zero else TRACE_LIMIT

    def _rows_buffer(self, name: str, n_rows: int, dtype: type) -> np.ndarray:
        """A reused (n_rows, neurons) scratch array: fresh multi-megabyte temporaries every tick
        cost page faults; these grow to the largest active set seen and stay."""
        buffer = self._scratch.get(name)
        if buffer is None or buffer.shape[0] < n_rows:
            size = max(n_rows, 2 * (0 if buffer is None else buffer.shape[0]))
            buffer = self._scratch[name] = np.empty((size, self.n_neurons), dtype)
        return buffer[:n_rows]

    def _weight_ranges(self, rows: np.ndarray) -> None:
        """Per-row max and min of W << 8 (for _may_saturate), refreshed after weight flips."""
        self.row_w_hi[rows] = self.weights_q8[rows].max(axis=1)
        self.row_w_lo[rows] = self.weights_q8[rows].min(axis=1)
        # rows that cannot saturate while every |H| <= h_max (the engine's own updates)
        plastic = self._plastic_bound(self.h_max_top)
        self.row_safe[rows] = (self.row_w_hi[rows] + plastic <= spec.W_EFF_MAX) & (
            self.row_w_lo[rows] - plastic >= spec.W_EFF_MIN
        )

    def _plastic_bound(self, trace_bound: int) -> int:
        """The largest |(alpha * H) >> 8| when |H| <= trace_bound (+1: the floor of a negative)."""
        return ((self.alpha_top * trace_bound) >> spec.ALPHA_FRAC) + 1

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
        self._trace_bound = 0  # no trace is larger in magnitude: 0 lets w_eff skip alpha * H
        self._refresh_faults(force=True)

    def reset_plastic(self) -> None:
        """Zero the plastic traces only (the global-weights baseline starts from here)."""
        self.traces[:] = 0
        self.last[:] = self.t_plastic
        self._traces_zero = True

    def read_traces(self) -> dict[int, np.ndarray]:
        """Traces per core as of the current tick (lazy decay applied to a copy: no side effect)."""
        age = np.minimum(self.t_plastic - self.last, spec.AGE_MAX)
        scaled = self.traces.astype(np.int64) * self.lam_pow[self.row_core, age][:, None]
        current = (scaled >> spec.LAMBDA_FRAC).reshape(self.n_cores, self.n_axons, self.n_neurons)
        return {
            core_id: current[p, : self.n_axons_of[p], : self.n_neurons_of[p]].astype(np.int16)
            for p, core_id in enumerate(self.core_ids)
        }

    def read_membranes(self) -> dict[int, np.ndarray]:
        return {
            core_id: self.v_mem[p, : self.n_neurons_of[p]].astype(np.int32)
            for p, core_id in enumerate(self.core_ids)
        }

    def read_counts(self) -> dict[int, np.ndarray]:
        """Spike counts of the last step, per core."""
        counts = self.counts.reshape(self.n_cores, self.n_neurons)
        return {
            core_id: counts[p, : self.n_neurons_of[p]].astype(np.int32)
            for p, core_id in enumerate(self.core_ids)
        }

    def read_weights(self) -> dict[int, np.ndarray]:
        W = self.weights.reshape(self.n_cores, self.n_axons, self.n_neurons)
        return {
            core_id: W[p, : self.n_axons_of[p], : self.n_neurons_of[p]].copy()
            for p, core_id in enumerate(self.core_ids)
        }

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
        obs_q = spec.saturate(np.floor(np.ldexp(obs, spec.OBS_FRAC)), spec.OBS_BITS).astype(
            np.int64
        )
        acc = self.enc_gain * obs_q[self.enc_src] + self.enc_bias
        return spec.saturate(acc >> spec.ENC_SHIFT, spec.INPUT_BITS)

    def decode(self) -> np.ndarray:
        """Actions (float32) from this step's spike counts or the final membranes."""
        flat = self.counts if self.dec_mode == spec.DEC_COUNTS else self.v_mem.ravel()
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
        x = self._receive(current)
        rows = x.nonzero()[0]  # 2. active rows, sorted, hence grouped by core
        x_rows = x[rows]
        binary = bool((x_rows == 1).all())  # spikes only: x drops out of every product
        core = self.row_core[rows]
        w_eff, h_rows = self._effective_weights(rows, core, learning)
        spikes = self._fire(self._sum_per_core(w_eff, x_rows, core, binary))
        if learning and rows.size:
            self._plasticity(rows, x_rows, core, h_rows, spikes, binary)
        # 9. send: the routes read ``spiked`` on the next tick
        self.spiked = spikes.ravel()
        self.counts += self.spiked
        if self.faults:
            self._flip_bits()
        tel = self.telemetry
        tel.ticks += 1
        tel.spikes += spikes.sum(axis=1)
        events = (
            rows.size * self.n_neurons
            if self.uniform_neurons
            else int(self.row_neurons[rows].sum())
        )
        tel.synaptic_events += events
        if learning:
            tel.plasticity_updates += events
        return spikes

    def _receive(self, current: np.ndarray) -> np.ndarray:
        """1. Axon inputs of this tick: last tick's routed spikes, then the encoder."""
        if self.route_of is None:
            x = np.zeros(self.n_cores * self.n_axons, np.int32)
            x[self.route_dst[self.spiked[self.route_src]]] = 1
        else:
            x = np.zeros(self.n_cores * self.n_axons + 1, np.int32)
            x[self.route_of[self.spiked.nonzero()[0]]] = 1
            x = x[:-1]
        if self.enc_mode == spec.ENC_CURRENT:
            x[self.enc_at] = current
        else:
            self.enc_phase += np.maximum(current, 0)
            fire = self.enc_phase >= spec.DELTA_LEVEL
            self.enc_phase[fire] -= spec.DELTA_LEVEL
            x[self.enc_at] = fire
        if not self.all_up:
            x.reshape(self.n_cores, self.n_axons)[~self.core_up] = 0
        return x

    def _effective_weights(
        self, rows: np.ndarray, core: np.ndarray, learning: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """3. Lazy decay of the active rows' traces (returned as int32, or None while every trace
        is 0), 4. their effective weights (int32, saturated to 16 bits). Both are scratch."""
        R = rows.size
        w_eff = self._rows_buffer("w_eff", R, np.int32)
        w_eff[...] = self._gather(self.weights_q8, rows, "w16")
        if self._traces_zero:  # every power of lambda maps 0 to 0, and alpha * 0 = 0
            return self._stick(w_eff, rows), None
        h_rows = self._rows_buffer("h", R, np.int32)
        h_rows[...] = self._gather(self.traces, rows, "h16")  # a cast copy: cheaper than mixed
        if learning and not self.lam_one:
            age = self.t_plastic - self.last[rows]  # >= 0
            if self.lam_table is None:
                lam = self.lam_pow[core, np.minimum(age, spec.AGE_MAX, out=age)]
            else:  # mode="clip" clamps the index to AGE_MAX: k = min(age, AGE_MAX)
                lam = np.take(self.lam_table, age, mode="clip")
            # |H| <= 2^15 and lam^k <= 2^16: the product fits int32
            h_rows *= lam[:, None]
            h_rows >>= spec.LAMBDA_FRAC
        alpha = self.alpha_uniform
        if alpha is None or alpha != 0:
            plastic = self._rows_buffer("plastic", R, np.int32)
            if self.alpha_shift is not None:
                np.right_shift(h_rows, self.alpha_shift, out=plastic)
            else:  # |alpha * H| <= 2^30
                scale = self.row_alpha[rows][:, None] if alpha is None else alpha
                np.multiply(h_rows, scale, out=plastic)
                plastic >>= spec.ALPHA_FRAC
            w_eff += plastic
            # two reductions read where a clamp would also write, and only where it can matter
            if (
                R
                and self._may_saturate(rows)
                and (w_eff.max() > spec.W_EFF_MAX or w_eff.min() < spec.W_EFF_MIN)
            ):
                np.clip(w_eff, spec.W_EFF_MIN, spec.W_EFF_MAX, out=w_eff)
        return self._stick(w_eff, rows), h_rows

    def _stick(self, w_eff: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Stuck-synapse faults replace w_eff (in place)."""
        if self._stuck is not None:
            np.copyto(w_eff, self._stuck_value[rows], where=self._stuck[rows])
        return w_eff

    def _may_saturate(self, rows: np.ndarray) -> bool:
        """Whether (W << 8) + ((alpha * H) >> 8) can leave 16 bits on these rows, from each row's
        weight range and the bound on |H| (cheap: one value per row, not per synapse)."""
        if self._trace_bound <= self.h_max_top:
            return not self.row_safe[rows].all()
        plastic = self._plastic_bound(self._trace_bound)
        return bool(
            self.row_w_hi[rows].max() + plastic > spec.W_EFF_MAX
            or self.row_w_lo[rows].min() - plastic < spec.W_EFF_MIN
        )

    def _gather(self, table: np.ndarray, rows: np.ndarray, name: str) -> np.ndarray:
        """``table[rows]`` into scratch (``mode="clip"``: the default mode buffers ``out``)."""
        out = self._rows_buffer(name, rows.size, table.dtype)
        return np.take(table, rows, axis=0, out=out, mode="clip")

    def _sum_per_core(
        self, w_eff: np.ndarray, x_rows: np.ndarray, core: np.ndarray, binary: bool
    ) -> np.ndarray:
        """4. I_j = sum_i x_i * w_eff_ij per core, exactly (|I| <= 2^30), as float (C, N) with
        integer values or int64. ``w_eff`` is scratch and may be overwritten."""
        if core.size == 0:
            return np.zeros((self.n_cores, self.n_neurons), np.int64)
        if self.n_cores * core.size <= SELECTOR_LIMIT:
            # BLAS sums in one call and exactly: each |x * w_eff| <= 2^22 and every partial sum
            # is an integer below 2^24 (float32) when sum |x| < 2^9, below 2^31 (float64) always
            exact32 = binary and core.size < (1 << 9) or int(np.abs(x_rows).sum()) < (1 << 9)
            kind = np.float32 if exact32 else np.float64
            selector = (self.core_column == core).astype(kind)  # (cores, rows) one-hot
            if not binary:
                selector *= x_rows
            return selector @ w_eff.astype(kind)
        if not binary:
            w_eff *= x_rows[:, None]  # |x * w_eff| <= 2^22
        out = np.zeros((self.n_cores, self.n_neurons), np.int64)
        present, counts = np.unique(core, return_counts=True)
        out[present] = _fold_per_core(w_eff, counts, self._rows_buffer)
        return out

    def _fire(self, current_in: np.ndarray) -> np.ndarray:
        """5. leak and add, 6. fire (>=) with neuron faults, 7. reset; returns the spikes."""
        v_old = self.v_mem
        v = v_old >> self.leak_shift  # a scalar when every neuron leaks alike
        np.subtract(v_old, v, out=v)
        np.add(v, current_in, out=v, casting="unsafe")  # integer-valued floats: exact
        _clamp(v, V_MIN, V_MAX)
        spikes = v >= self.theta
        if self._dead is not None:
            spikes &= ~self._dead
            v[self._dead] = 0
        if self._always is not None:
            spikes |= self._always
        if not self.all_up:
            spikes[~self.core_up] = False
            v[~self.core_up] = v_old[~self.core_up]
        if self.reset_mode == spec.RESET_SOFT:
            np.subtract(v, self.theta, out=v, where=spikes)
            # theta <= v <= V_MAX where a neuron fired on its own, so v - theta stays in range;
            # only a forced (always-firing) neuron can fall below V_MIN
            if self._always is not None:
                _clamp(v, V_MIN, V_MAX)
        else:
            v[spikes] = 0
        self.v_mem = v
        return spikes

    def _plasticity(
        self,
        rows: np.ndarray,
        x_rows: np.ndarray,
        core: np.ndarray,
        h_rows: np.ndarray | None,
        spikes: np.ndarray,
        binary: bool,
    ) -> None:
        """8. H <- clip(lam^k H + (m * eta * pre * f(post - beta)) >> 16, -h_max, h_max)."""
        if binary and self.hebb_tables is not None:
            table = np.where(spikes, self.hebb_tables[1], self.hebb_tables[0])
            self._update_traces(rows, self._gather(table, core, "term"), h_rows)
            return
        # post is 0 or 1, so f(post - beta) is one of two tables made at load time
        g = np.where(spikes, self.f_post1, self.f_post0)
        pre = self.row_eta[rows] if binary else self.row_eta[rows] * x_rows
        if self.has_modulator:
            m = self.mod_levels[np.arange(self.n_cores), self._mod_spiked()]
            pre = pre * m[core].astype(self.plastic_dtype)
        else:
            pre = pre << spec.MOD_FRAC  # m = 1.0
        per_core = np.zeros(self.n_cores, self.plastic_dtype)
        per_core[core] = pre
        if (binary and self.eta_per_core) or np.array_equal(per_core[core], pre):
            # one pre value per core (one eta per layer, binary spikes): the Hebbian term is a
            # (cores, neurons) table and each active row takes its core's row of it. Clipping
            # the term to +-2^16 changes nothing (|lam^k H| <= 2^15 and the result is clipped to
            # h_max < 2^15) and lets it live in int32.
            table = per_core[:, None] * g
            table >>= spec.PLASTIC_SHIFT
            if table.dtype != np.int32:
                table = np.clip(table, -(1 << 16), 1 << 16).astype(np.int32)
            term = self._gather(table, core, "term")
        else:
            term = pre[:, None] * np.take(g, core, axis=0)
            term >>= spec.PLASTIC_SHIFT
        self._update_traces(rows, term, h_rows)

    def _update_traces(self, rows: np.ndarray, term: np.ndarray, h_rows: np.ndarray | None) -> None:
        """H <- clip(h_rows + term, -h_max, h_max) on the active rows (``term`` is scratch)."""
        if h_rows is not None:
            term += h_rows
        if self.h_max_uniform:
            # one layer per core and usually one h_max for the whole image: a scalar clip
            bound = term.dtype.type(self.row_h_max[rows[0]])
            np.clip(term, -bound, bound, out=term)
        else:
            bound = self.row_h_max[rows][:, None]
            np.clip(term, -bound, bound, out=term)
        self.traces[rows] = term
        self.last[rows] = self.t_plastic
        # the clip bounds every row written now; decay never grows a trace
        self._trace_bound = max(self._trace_bound, self.h_max_top)

    def _mod_spiked(self) -> np.ndarray:
        """Per core: 1 if its modulator spiked on the previous tick, else 0 (cores without a
        modulator keep both levels at 1.0)."""
        fired = self.spiked[np.maximum(self.mod_neuron, 0)] & (self.mod_neuron >= 0)
        return fired.astype(np.int64)

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
            value = 0 if fault.kind == "stuck-zero" else int(fault.magnitude) << spec.TRACE_FRAC
            mask = real & (rng.random(real.shape) < fraction)
            return {"stuck": mask, "value": np.int32(spec.saturate(value, spec.W_EFF_BITS))}
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
        self._stuck = self._stuck_value = self._dead = self._always = None
        self.core_up = np.ones(C, bool)
        for fault, masks, on in zip(self.faults, self._fault_masks, key, strict=True):
            if not on:
                continue
            if fault.kind in SYNAPSE_KINDS:
                if self._stuck is None:
                    self._stuck = np.zeros((C * A, N), bool)
                    self._stuck_value = np.zeros((C * A, N), np.int32)
                self._stuck |= masks["stuck"]
                self._stuck_value[masks["stuck"]] = masks["value"]
            elif fault.kind == "dead-neuron":
                self._dead = masks["neurons"] | (False if self._dead is None else self._dead)
            elif fault.kind == "always-fire":
                self._always = masks["neurons"] | (False if self._always is None else self._always)
            elif fault.kind == "core-down":
                self.core_up &= ~masks["cores"]
        self.all_up = bool(self.core_up.all())
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
            bits = spec.WEIGHT_BITS if fault.kind == "weight-flip" else spec.TRACE_BITS
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
                flat_q8 = self.weights_q8.reshape(-1)
                flat_q8[cell] = self.weights.reshape(-1)[cell].astype(np.int16) << spec.TRACE_FRAC
                self._weight_ranges(np.unique(cell // self.n_neurons))
            else:
                raw = self.traces.reshape(-1).view(np.uint16)
                np.bitwise_xor.at(raw, cell, (1 << bit).astype(np.uint16))
                self._traces_zero = False


def _clamp(x: np.ndarray, lo: np.generic, hi: np.generic) -> None:
    """Clamp in place with two ufuncs (``np.clip`` costs a few microseconds more per call)."""
    np.minimum(x, hi, out=x)
    np.maximum(x, lo, out=x)


def _fold_per_core(
    rows: np.ndarray,
    counts: np.ndarray,
    scratch: Callable[[str, int, type], np.ndarray],
    level: int = 0,
) -> np.ndarray:
    """Sum consecutive groups of rows (group g: the next ``counts[g] > 0`` rows) in int32.

    Each group is cut into chunks of ``FOLD_WIDTH`` rows, zero-padded to whole chunks, and every
    chunk is halved until one row is left: each add is a contiguous elementwise pass (a reduction
    along the rows, ``np.add.reduceat`` or ``sum(axis=0)``, walks the long axis with a stride and
    is many times slower). The chunk sums are folded the same way until one row per group is
    left. Padding costs at most ``FOLD_WIDTH - 1`` rows per group, however uneven the groups.
    Exact: the sums are the per-core accumulators, below 2^30 by design rule."""
    width = min(FOLD_WIDTH, int(counts.max()))
    chunks = -(-counts // width)
    n_slots = int(chunks.sum()) * width
    first_row = np.cumsum(counts) - counts
    rank = np.arange(rows.shape[0]) - np.repeat(first_row, counts)
    first_slot = np.repeat((np.cumsum(chunks) - chunks) * width, counts)
    block = scratch(f"fold{level}", n_slots, np.int32)
    if n_slots > rows.shape[0]:  # zero the padding slots only: the rows fill all the others
        filled = np.zeros(n_slots, bool)
        filled[first_slot + rank] = True
        block[~filled] = 0
    block[first_slot + rank] = rows
    block = block.reshape(-1, width, rows.shape[1])
    left = width
    while left > 1:
        half = left // 2
        block[:, :half] += block[:, left - half : left]
        left -= half
    sums = block[:, 0]
    return sums if chunks.max() == 1 else _fold_per_core(sums, chunks, scratch, level + 1)
