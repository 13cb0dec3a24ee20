"""The compiled hot path of the engine: one tick of docs/board-spec.md §3 steps 1-9, all cores.

One kernel, ``run_tick``, loops over the cores, their active rows and each row's synapses once per
pass (integration, then plasticity once the spikes are known); nothing outside it implements the
tick. Every width, shift and limit comes from ``protocol.numeric`` through the ``limits`` tuple
(``LIMITS``), so the compiled code never carries a constant of its own and a cached compilation
cannot go stale when the spec changes. Arithmetic is int64 throughout (numba widens every integer
operand), so every product of the spec is formed wide, then shifted, then saturated once.

``cache=True``: the machine code is kept next to this file (or in ``NUMBA_CACHE_DIR``), so a board
process that starts after the first one loads it instead of compiling (see docs/board-spec.md).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from protocol import numeric

PREFETCH_ROWS = 8
"""How many active rows ahead the kernel asks for a row's synapses: the active rows of a large
image lie scattered in tens of megabytes, and one row at a time waits on memory for each."""
CACHE_LINE = 64

LIMITS = np.array(
    [
        numeric.TRACE_FRAC,  # 0: W << 8
        numeric.ALPHA_FRAC,  # 1: (alpha * H) >> 8
        numeric.LAMBDA_FRAC,  # 2: (H * lam^k) >> 16, and lam^k = 65536 is 1.0
        numeric.AGE_MAX,  # 3
        numeric.W_EFF_MIN,  # 4
        numeric.W_EFF_MAX,  # 5
        numeric.V_MIN,  # 6
        numeric.V_MAX,  # 7
        numeric.PLASTIC_SHIFT,  # 8
        numeric.MOD_ONE,  # 9
        numeric.DELTA_LEVEL,  # 10
        numeric.RESET_SOFT,  # 11
        numeric.ENC_DELTA,  # 12
    ],
    np.int64,
)
"""The spec's constants in the order the kernel reads them."""


@intrinsic
def _prefetch(typingctx, table, row, col):  # pragma: no cover - compiled
    """Hint the CPU to load ``table[row, col]``'s cache line (LLVM's prefetch: read, keep)."""

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        pointer = cgutils.get_item_pointer(
            context, builder, signature.args[0], array, [args[1], args[2]], wraparound=False
        )
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        hint = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0"
        )
        flags = [ir.Constant(i32, v) for v in (0, 3, 1)]  # read, high locality, data cache
        builder.call(hint, [builder.bitcast(pointer, i8p), *flags])
        return context.get_dummy_value()

    return types.void(table, row, col), codegen


@numba.njit(cache=True)
def _prefetch_row(table, row, n):  # pragma: no cover - compiled
    for col in range(0, n, CACHE_LINE // table.itemsize):
        _prefetch(table, row, col)


@numba.njit(cache=True, nogil=True)
def run_tick(
    limits,
    tables,
    routes,
    faults,
    state,
    current,
    learning,
    t_plastic,
    traces_zero,
    spikes,
    tel_spikes,
):  # pragma: no cover - compiled; the tests run it through Engine
    """One tick. ``tables``: the image's load-time arrays; ``routes``: (enc_rows, route_start,
    route_dst) with route_dst[route_start[k]:route_start[k + 1]] the axons neuron k feeds;
    ``faults``: (stuck, stuck_value, dead, always, core_up, has_stuck, has_dead, has_always);
    ``state``: the arrays the tick changes, plus scratch. ``spikes`` (C, N) is written, its
    padding left as given (False). Returns the synaptic events of the tick."""
    (
        weights,
        lam_pow,
        core_alpha,
        row_eta,
        row_h_max,
        theta,
        leak,
        f_post,
        mod_neuron,
        mod_levels,
        n_axons_of,
        n_neurons_of,
        reset_mode,
        enc_mode,
    ) = tables
    enc_rows, route_start, route_dst = routes
    stuck, stuck_value, dead, always, core_up, has_stuck, has_dead, has_always = faults
    traces, last, v_mem, spiked, enc_phase, counts, x, acc, g, term, active, first = state
    w_shift, alpha_frac, lam_frac, age_max = limits[0], limits[1], limits[2], limits[3]
    w_lo, w_hi, v_lo, v_hi = limits[4], limits[5], limits[6], limits[7]
    plastic_shift, mod_one, delta_level = limits[8], limits[9], limits[10]
    lam_one = np.int64(1) << lam_frac
    n_cores, n_neurons = v_mem.shape
    n_axons = weights.shape[0] // n_cores

    # 1. receive: last tick's routed spikes (one tick late), then the encoder
    x[:] = 0
    for k in range(spiked.size):
        if spiked[k]:
            for e in range(route_start[k], route_start[k + 1]):
                x[route_dst[e]] = 1
    if enc_mode == limits[12]:
        for k in range(enc_rows.size):
            phase = enc_phase[k] + max(current[k], 0)
            fire = phase >= delta_level
            enc_phase[k] = phase - delta_level if fire else phase
            x[enc_rows[k]] = 1 if fire else 0
    else:
        for k in range(enc_rows.size):
            x[enc_rows[k]] = current[k]

    # 2. active rows of every core that is up, grouped by core: first[p] .. first[p + 1] - 1.
    # Padding axons have no source, so they are never active; a core that is down has none.
    n_active = 0
    events = 0
    for p in range(n_cores):
        first[p] = n_active
        if core_up[p]:
            base = p * n_axons
            for i in range(n_axons_of[p]):
                if x[base + i] != 0:
                    active[n_active] = base + i
                    n_active += 1
            events += (n_active - first[p]) * n_neurons_of[p]
    first[n_cores] = n_active

    for p in range(n_cores):
        if not core_up[p]:  # a core that is down skips its tick: no spikes, no state change
            continue
        n = n_neurons_of[p]
        alpha = core_alpha[p]
        acc[:n] = 0
        for a in range(first[p], first[p + 1]):
            if a + PREFETCH_ROWS < n_active:
                ahead = active[a + PREFETCH_ROWS]
                _prefetch_row(weights, ahead, n)
                if not traces_zero:
                    _prefetch_row(traces, ahead, n)
            r = active[a]
            xi = x[r]
            w_row = weights[r]
            if traces_zero:  # every H is 0: w_eff = W << 8, and decay has nothing to do
                for j in range(n):
                    w = np.int64(w_row[j]) << w_shift
                    if has_stuck and stuck[r, j]:
                        w = np.int64(stuck_value[r, j])
                    acc[j] += xi * w
                continue
            h_row = traces[r]
            lam = lam_one
            if learning:  # 3. lazy decay: one multiply by lam^k, k = min(age, AGE_MAX)
                lam = lam_pow[p, min(t_plastic - last[r], age_max)]
            if lam != lam_one:
                for j in range(n):
                    h_row[j] = (np.int64(h_row[j]) * lam) >> lam_frac
            # 4. w_eff = sat((W << 8) + ((alpha * H) >> 8), 16), stuck synapses replace it
            for j in range(n):
                w = (np.int64(w_row[j]) << w_shift) + ((alpha * h_row[j]) >> alpha_frac)
                w = min(max(w, w_lo), w_hi)
                if has_stuck and stuck[r, j]:
                    w = np.int64(stuck_value[r, j])
                acc[j] += xi * w

        # 5. leak and add, 6. fire (>=) with neuron faults, 7. reset
        n_fired = 0
        for j in range(n):
            v = v_mem[p, j]
            v = min(max(v - (v >> leak[p, j]) + acc[j], v_lo), v_hi)
            fired = v >= theta[p, j]
            if has_dead and dead[p, j]:
                fired = False
                v = 0
            if has_always and always[p, j]:
                fired = True
            if fired:
                v = min(max(v - theta[p, j], v_lo), v_hi) if reset_mode == limits[11] else 0
                n_fired += 1
                counts[p * n_neurons + j] += 1
            v_mem[p, j] = v
            spikes[p, j] = fired
        tel_spikes[p] += n_fired

        # 8. plasticity: H <- clip(H + ((m * eta * x * f(post - beta)) >> 16), -h_max, h_max)
        if not learning or first[p] == first[p + 1]:
            continue
        m = mod_one
        if mod_neuron[p] >= 0:
            m = mod_levels[p, 1] if spiked[mod_neuron[p]] else mod_levels[p, 0]
        for j in range(n):
            g[j] = f_post[1, p, j] if spikes[p, j] else f_post[0, p, j]
        made = False
        made_pre = np.int64(0)
        for a in range(first[p], first[p + 1]):
            r = active[a]
            pre = m * row_eta[r] * x[r]
            if not made or pre != made_pre:  # one eta per layer: one term row per core
                for j in range(n):
                    term[j] = (pre * g[j]) >> plastic_shift
                made, made_pre = True, pre
            h_max = row_h_max[r]
            h_row = traces[r]
            for j in range(n):
                h_row[j] = min(max(h_row[j] + term[j], -h_max), h_max)
            last[r] = t_plastic
    return events
