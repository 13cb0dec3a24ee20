"""Compiled forward and adjoint of the spiking network's tick, one sample at a time.

The forward is :func:`train.snn.layer_step` for the hidden layer (plastic or not) and the
membrane readout, in float or in the board's integers (``board``), with one change of
bookkeeping that real arithmetic cannot see: the trace decays *lazily*, as on the board. A row is
brought up to date (``H_i <- lambda**k H_i``) only on a tick where its axon carries something;
a silent row is not touched at all. So a tick costs what its active rows cost, and so does its
adjoint, where a silent row's adjoint passes through unchanged. In float the rows are brought up
to date at the end of every control step (the state a step hands on is exact, and a row is never
more than one step stale, so ``lambda**age`` cannot underflow); the board keeps them lazy.

Backward (:func:`window_backward`) walks the window's control steps in reverse. For each it
restores the step's checkpoint (membranes, spikes, trace, ages), runs the step's ticks forward
again while recording what the adjoint needs (the active rows' trace before the tick, the
membranes, the spikes), and then runs the ticks' adjoints in reverse, rolling the trace back row
by row. Only the rows that carry a spike or whose spike could carry a gradient (its source
neuron was inside the surrogate window) are visited: every other row's gradient is zero.

Every function works on one dtype (float32 or float64, the caller's); parameter gradients are
summed per chunk of the batch (``prange``; the weights' in the dtype, the rest in float64), and
the caller adds the chunks.
Constants of the board come in through ``limits`` (``CONSTANTS``), so a cached compilation cannot go
stale when the numeric contract changes.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from protocol import numeric

CONSTANTS = np.array(
    [
        0.0,  # 0, 1: zero and one in the kernels' dtype (a float literal would be float64 and
        1.0,  # turn every float32 loop into conversions)
        numeric.FINE_PER_WEIGHT_LSB,  # 2: w_eff = W << 8
        1.0 / numeric.ALPHA_ONE,  # 3: (alpha * H) >> 8
        numeric.W_EFF_MIN,  # 4
        numeric.W_EFF_MAX,  # 5
        numeric.V_MIN,  # 6
        numeric.V_MAX,  # 7
    ]
)
"""The constants in the order the kernels read them; pass ``CONSTANTS.astype(dtype)``."""

# Flags (the ``flags`` array): integer switches, so one compilation serves every network. Absent
# fault masks are passed as (1, 1, 1) / (1, 1) placeholders with their flag off.
BOARD, SOFT, PLASTIC, MOD, KEEP, KEEP_READ, ALIVE = 0, 1, 2, 3, 4, 5, 6
# Scalars (the ``scalars`` array): alpha, the modulator's levels, the surrogate width.
ALPHA, MOD_LOW, MOD_HIGH, WIDTH = 0, 1, 2, 3
# Gradients of the scalars (``grad_scalars``): alpha, lambda and the modulator's levels.
G_ALPHA, G_LAM, G_LOW, G_HIGH = 0, 1, 2, 3

# Vectorise the reductions (reassociation) but keep inf comparisons (no nnan / ninf).
FAST = {"nsz", "arcp", "contract", "reassoc", "afn"}
JIT = {"cache": True, "nogil": True, "fastmath": FAST}


@numba.njit(inline="always", **JIT)
def _integrate(v, leak, current, board, v_lo, v_hi):
    """``v - v * leak + I`` (the board floors the leak), and that clipped to the membrane's
    range on the board."""
    raw = v - (np.floor(v * leak) if board else v * leak) + current
    return raw, (min(max(raw, v_lo), v_hi) if board else raw)


@numba.njit(**JIT)
def _tick(  # noqa: PLR0913 - one tick of the whole network reads every table
    x_in, v, s, h, age, vr, u_out,
    w, theta, leak, tab, eta, beta, h_max, w_r, leak_r,
    keep, keep_r, alive, scalars, flags, limits,
    x, current, post, current_r, spikes,
    record, tau, t_x, t_k, t_slot, t_age, snap, n_snap, t_v1_raw, t_v1, t_spikes, t_vr_raw,
):  # fmt: skip
    """One tick of one sample, in place on ``v, s, h, age, vr``; ``u_out`` gets ``v - theta``.

    With ``record`` it writes tick ``tau``'s tape (and the active rows' trace before the tick
    into ``snap`` from slot ``n_snap`` on) and returns the next free slot."""
    board, soft, plastic = flags[BOARD] != 0, flags[SOFT] != 0, flags[PLASTIC] != 0
    mod = flags[MOD]
    alpha = scalars[ALPHA]
    zero, one = limits[0], limits[1]
    fine, per_alpha = (limits[2], limits[3]) if board else (one, one)
    w_lo, w_hi, v_lo, v_hi = limits[4], limits[5], limits[6], limits[7]
    n_obs = x_in.shape[0]
    n_pre, n_post = w.shape
    n_read = w_r.shape[1]
    cap = tab.shape[0] - 1
    has_keep, has_keep_r, has_alive = flags[KEEP] != 0, flags[KEEP_READ] != 0, flags[ALIVE] != 0

    for i in range(n_obs):
        x[i] = x_in[i]
    for i in range(n_post):
        x[n_obs + i] = s[i]
    m = one
    if mod >= 0:
        m = scalars[MOD_LOW] + (scalars[MOD_HIGH] - scalars[MOD_LOW]) * s[mod]

    # Integrate: decay each active row lazily, then add its effective weights.
    current[:] = zero
    for i in range(n_pre):
        xi = x[i]
        if plastic:
            age[i] += 1
        if record:
            t_k[tau, i] = 0
            t_slot[tau, i] = -1
        if xi == zero:
            if record:
                t_age[tau, i] = age[i]
            continue
        if not plastic:
            if has_keep:
                for j in range(n_post):
                    current[j] += xi * (w[i, j] * fine * keep[i, j])
            else:
                for j in range(n_post):
                    current[j] += xi * (w[i, j] * fine)
            continue
        k = min(age[i], cap)
        age[i] = 0
        f = tab[k]
        if record:
            t_age[tau, i] = 0
            t_k[tau, i] = k
            t_slot[tau, i] = n_snap
            snap[n_snap, :] = h[i, :]
            n_snap += 1
        if board:  # one pass: bring the row up to date, then add its effective weights
            for j in range(n_post):
                hij = np.floor(h[i, j] * f)
                h[i, j] = hij
                wij = min(max(w[i, j] * fine + np.floor(alpha * hij * per_alpha), w_lo), w_hi)
                current[j] += xi * (wij * keep[i, j] if has_keep else wij)
        else:
            for j in range(n_post):
                hij = h[i, j] * f
                h[i, j] = hij
                wij = w[i, j] + alpha * hij
                current[j] += xi * (wij * keep[i, j] if has_keep else wij)

    # Leak, fire, reset.
    for j in range(n_post):
        raw, vj = _integrate(v[j], leak[j], current[j], board, v_lo, v_hi)
        if record:
            t_v1_raw[tau, j] = raw
            t_v1[tau, j] = vj
        u = vj - theta[j]
        u_out[j] = u
        fired = one if u >= zero else zero
        if has_alive:
            fired *= alive[j]
        if soft:
            vj = vj - theta[j] * fired
            if board:
                vj = min(max(vj, v_lo), v_hi)
        else:
            vj = vj * (one - fired)
        if has_alive:
            vj *= alive[j]
        v[j] = vj
        spikes[j] = fired
        post[j] = min(max(fired - beta[j], -one), one)

    # Learn on the active rows.
    if plastic:
        for i in range(n_pre):
            xi = x[i]
            if xi == zero:
                continue
            pre = eta[i] * xi * m
            bound = h_max[i]
            for j in range(n_post):
                hebb = pre * post[j]
                if board:
                    hebb = np.floor(hebb)
                h[i, j] = min(max(h[i, j] + hebb, -bound), bound)

    # The readout integrates the hidden spikes of the previous tick (x's routed rows).
    current_r[:] = zero
    for i in range(n_post):
        xi = x[n_obs + i]
        if xi == zero:
            continue
        for j in range(n_read):
            wij = w_r[i, j] * fine
            current_r[j] += xi * (wij * keep_r[i, j] if has_keep_r else wij)
    for j in range(n_read):
        raw, vr[j] = _integrate(vr[j], leak_r[j], current_r[j], board, v_lo, v_hi)
        if record:
            t_vr_raw[tau, j] = raw

    if record:
        t_x[tau, :] = x
        t_spikes[tau, :] = spikes
    s[:] = spikes
    return n_snap


@numba.njit(parallel=True, **JIT)
def step_forward(
    x_in, ck_v, ck_s, ck_h, ck_age, ck_vr, ck_u, t, ticks,
    w, theta, leak, tab, eta, beta, h_max, w_r, leak_r,
    keep, keep_r, alive, scalars, flags, limits,
):  # fmt: skip
    """Control step ``t`` (``ticks`` ticks) of every sample: from checkpoint ``ck_*[t]`` into
    ``ck_*[t + 1]`` (copied sample by sample, so the state is in cache when the ticks run).
    ``ck_u`` holds the last tick's ``v - theta`` (which neurons' spikes can carry a gradient)."""
    batch = x_in.shape[0]
    n_pre, n_post = w.shape
    dt = w.dtype
    flush = flags[PLASTIC] != 0 and flags[BOARD] == 0
    fault_row = np.arange(batch) if flags[KEEP] != 0 else np.zeros(batch, np.int64)
    read_row = np.arange(batch) if flags[KEEP_READ] != 0 else np.zeros(batch, np.int64)
    alive_row = np.arange(batch) if flags[ALIVE] != 0 else np.zeros(batch, np.int64)
    for b in prange(batch):
        v, s, h, age = ck_v[t + 1, b], ck_s[t + 1, b], ck_h[t + 1, b], ck_age[t + 1, b]
        v[:] = ck_v[t, b]
        s[:] = ck_s[t, b]
        h[:] = ck_h[t, b]
        age[:] = ck_age[t, b]
        ck_vr[t + 1, b] = ck_vr[t, b]
        x = np.empty(n_pre, dt)
        current = np.empty(n_post, dt)
        post = np.empty(n_post, dt)
        current_r = np.empty(w_r.shape[1], dt)
        spikes = np.empty(n_post, dt)
        t_f = np.zeros((1, 1), dt)
        t_i = np.zeros((1, 1), np.int64)
        for _ in range(ticks):
            _tick(
                x_in[b], v, s, h, age, ck_vr[t + 1, b], ck_u[t + 1, b],
                w, theta, leak, tab, eta, beta, h_max, w_r, leak_r,
                keep[fault_row[b]], keep_r[read_row[b]], alive[alive_row[b]],
                scalars, flags, limits,
                x, current, post, current_r, spikes,
                False, 0, t_f, t_i, t_i, t_i, t_f, 0, t_f, t_f, t_f, t_f,
            )  # fmt: skip
        if flush:  # bring every row up to date (float)
            for i in range(n_pre):
                if age[i] > 0:
                    h[i, :] *= tab[min(age[i], tab.shape[0] - 1)]
                    age[i] = 0


@numba.njit(parallel=True, **JIT)
def window_backward(
    ck_v, ck_s, ck_h, ck_age, ck_vr, ck_u, x_in, g_vr, g_hsq, ticks,
    w, theta, leak, tab, dtab, eta, beta, h_max, w_r, leak_r,
    keep, keep_r, alive, scalars, flags, limits, chunks,
):  # fmt: skip
    """Gradients of a window whose step ``t`` started from checkpoint ``ck_*[t]``.

    ``g_vr`` (steps, B, n_read) is the loss's gradient on the readout membranes after each step,
    ``g_hsq`` (steps, B) on the squared trace ``sum_ij H_ij**2`` of the state each step hands
    on. Returns the gradient on ``x_in`` and, per chunk of the batch, on ``w, theta, eta, beta,
    w_r`` and the scalars (alpha, lambda, mod levels)."""
    steps, batch, n_obs = x_in.shape
    n_pre, n_post = w.shape
    n_read = w_r.shape[1]
    dt = w.dtype
    board, soft, plastic = flags[BOARD] != 0, flags[SOFT] != 0, flags[PLASTIC] != 0
    mod = flags[MOD]
    zero, one = limits[0], limits[1]
    half = one / (one + one)
    fine, per_alpha = (limits[2], limits[3]) if board else (one, one)
    w_lo, w_hi, v_lo, v_hi = limits[4], limits[5], limits[6], limits[7]
    alpha, width = scalars[ALPHA], scalars[WIDTH]
    mod_low, mod_high = scalars[MOD_LOW], scalars[MOD_HIGH]
    cap = tab.shape[0] - 1
    has_keep, has_keep_r, has_alive = flags[KEEP] != 0, flags[KEEP_READ] != 0, flags[ALIVE] != 0

    g_x_in = np.zeros_like(x_in)
    g_w = np.zeros((chunks, n_pre, n_post), dt)
    g_theta = np.zeros((chunks, n_post))  # sums of many terms: float64
    g_eta = np.zeros((chunks, n_pre))
    g_beta = np.zeros((chunks, n_post))
    g_w_r = np.zeros((chunks, n_post, n_read))
    g_scalars = np.zeros((chunks, 4))

    for c in prange(chunks):
        # Forward scratch and the tape of one control step.
        v, s = np.empty(n_post, dt), np.empty(n_post, dt)
        h = np.zeros((n_pre, n_post) if plastic else (1, 1), dt)
        age = np.zeros(n_pre, np.int64)
        vr = np.empty(n_read, dt)
        u = np.empty(n_post, dt)
        x, current, post = np.empty(n_pre, dt), np.empty(n_post, dt), np.empty(n_post, dt)
        current_r, spikes = np.empty(n_read, dt), np.empty(n_post, dt)
        t_x, t_spikes = np.empty((ticks, n_pre), dt), np.empty((ticks, n_post), dt)
        t_k, t_slot = np.empty((ticks, n_pre), np.int64), np.empty((ticks, n_pre), np.int64)
        t_age = np.empty((ticks, n_pre), np.int64)
        snap = np.empty((ticks * n_pre if plastic else 1, n_post), dt)
        t_v1_raw, t_v1 = np.empty((ticks, n_post), dt), np.empty((ticks, n_post), dt)
        t_vr_raw, t_u = np.empty((ticks, n_read), dt), np.empty((ticks + 1, n_post), dt)
        # Adjoints carried from tick to tick (and step to step).
        g_h = np.zeros((n_pre, n_post) if plastic else (1, 1), dt)
        g_v, g_vr_now = np.zeros(n_post, dt), np.zeros(n_read, dt)
        g_spikes, g_spikes_prev = np.zeros(n_post, dt), np.zeros(n_post, dt)
        g_read, g_v1, g_current = np.empty(n_read, dt), np.empty(n_post, dt), np.empty(n_post, dt)
        g_post, g_x = np.empty(n_post, dt), np.empty(n_pre, dt)
        sensitive = np.empty(n_pre, np.bool_)
        gw, gth, geta = g_w[c], g_theta[c], g_eta[c]
        gbeta, gwr, gsc = g_beta[c], g_w_r[c], g_scalars[c]

        for b in range(c * batch // chunks, (c + 1) * batch // chunks):
            kb = keep[b if has_keep else 0]
            kr = keep_r[b if has_keep_r else 0]
            al = alive[b if has_alive else 0]
            g_h[:] = zero
            g_v[:] = zero
            g_vr_now[:] = zero
            g_spikes[:] = zero
            for t in range(steps - 1, -1, -1):
                v[:] = ck_v[t, b]
                s[:] = ck_s[t, b]
                if plastic:
                    h[:] = ck_h[t, b]
                    age[:] = ck_age[t, b]
                vr[:] = ck_vr[t, b]
                t_u[0, :] = ck_u[t, b]  # the spikes at the step's start came from this u
                n_snap = 0
                for tau in range(ticks):
                    n_snap = _tick(
                        x_in[t, b], v, s, h, age, vr, u,
                        w, theta, leak, tab, eta, beta, h_max, w_r, leak_r,
                        kb, kr, al, scalars, flags, limits,
                        x, current, post, current_r, spikes,
                        True, tau, t_x, t_k, t_slot, t_age, snap, n_snap, t_v1_raw, t_v1,
                        t_spikes, t_vr_raw,
                    )  # fmt: skip
                    t_u[tau + 1, :] = u

                # The step's outputs: readout membranes, and the squared trace of the state the
                # step hands on (float: its rows brought up to date, the adjoint of which
                # returns the gradient to the lazy rows the ticks left).
                for j in range(n_read):
                    g_vr_now[j] += g_vr[t, b, j]
                g = g_hsq[t, b]
                if plastic:
                    for i in range(n_pre):
                        k = 0 if board else min(age[i], cap)
                        f = tab[k]
                        if g != zero:
                            scale = (g + g) * f
                            for j in range(n_post):
                                g_h[i, j] += scale * h[i, j]
                        if k > 0:
                            g_lam = zero
                            for j in range(n_post):
                                g_lam += g_h[i, j] * h[i, j]
                                g_h[i, j] *= f
                            gsc[G_LAM] += g_lam * dtab[k]

                for tau in range(ticks - 1, -1, -1):
                    _tick_adjoint(
                        tau, n_obs, t_x[tau], t_spikes[tau], t_v1[tau], t_v1_raw[tau],
                        t_vr_raw[tau], t_u[tau], t_k[tau], t_slot[tau], t_age[tau], snap,
                        h, g_h, g_v, g_vr_now, g_spikes, g_spikes_prev, g_read, g_v1,
                        g_current, g_post, post, g_x, sensitive,
                        w, theta, leak, tab, dtab, eta, beta, h_max, w_r, leak_r, kb, kr, al,
                        gw, gth, geta, gbeta, gwr, gsc,
                        board, soft, plastic, mod, has_keep, has_keep_r, has_alive,
                        zero, one, half, fine, per_alpha, w_lo, w_hi, v_lo, v_hi,
                        alpha, width, mod_low, mod_high,
                    )  # fmt: skip
                    for i in range(n_obs):
                        g_x_in[t, b, i] += g_x[i]
                    g_spikes[:] = g_spikes_prev
    return g_x_in, g_w, g_theta, g_eta, g_beta, g_w_r, g_scalars


@numba.njit(**JIT)
def _tick_adjoint(
    tau, n_obs, xt, sp, v1, v1_raw, vr_raw, u_prev, k_row, slot_row, age_row, snap,
    h, g_h, g_v, g_vr, g_spikes, g_spikes_prev, g_read, g_v1,
    g_current, g_post, post, g_x, sensitive,
    w, theta, leak, tab, dtab, eta, beta, h_max, w_r, leak_r, kb, kr, al,
    gw, gth, geta, gbeta, gwr, gsc,
    board, soft, plastic, mod, has_keep, has_keep_r, has_alive,
    zero, one, half, fine, per_alpha, w_lo, w_hi, v_lo, v_hi,
    alpha, width, mod_low, mod_high,
):  # fmt: skip
    """The adjoint of one :func:`_tick`: ``g_*`` on its outputs in, on its inputs out (the trace
    rolled back to the tick's start in ``h``, ``g_spikes_prev`` on the spikes it read)."""
    n_pre, n_post = w.shape
    n_read = w_r.shape[1]
    # Which rows' inputs can carry a gradient: encoder rows, and spikes whose neuron was
    # inside the surrogate window when it fired (or stayed silent).
    for i in range(n_obs):
        sensitive[i] = True
    for i in range(n_post):
        sensitive[n_obs + i] = abs(u_prev[i]) < half * width and (not has_alive or al[i] != zero)
    g_spikes_prev[:] = zero
    g_x[:] = zero

    # Readout: v_r <- clip(v_r - v_r * leak_r + x_routed . W_r).
    for j in range(n_read):
        gj = g_vr[j]
        if board and not (v_lo <= vr_raw[j] <= v_hi):
            gj = zero
        g_read[j] = gj
        g_vr[j] = gj * (one - leak_r[j])
    for i in range(n_post):
        xi = xt[n_obs + i]
        if xi == zero and not sensitive[n_obs + i]:
            continue
        acc = zero
        for j in range(n_read):
            kp = kr[i, j] if has_keep_r else one
            acc += w_r[i, j] * fine * kp * g_read[j]
            gwr[i, j] += xi * g_read[j] * fine * kp
        g_x[n_obs + i] += acc

    # Reset (and a dead neuron's zero membrane).
    for j in range(n_post):
        gv2 = g_v[j] * al[j] if has_alive else g_v[j]
        if soft:
            raw = v1[j] - theta[j] * sp[j]
            if board and not (v_lo <= raw <= v_hi):
                gv2 = zero
            g_v1[j] = gv2
            gth[j] -= gv2 * sp[j]
            g_spikes[j] -= gv2 * theta[j]
        else:
            g_v1[j] = gv2 * (one - sp[j])
            g_spikes[j] -= gv2 * v1[j]

    # Learn: H <- clip(H1 + floor?(eta_i x_i m * f(s_j - beta_j))).
    if plastic:
        fired = xt[n_obs + mod] if mod >= 0 else zero
        m = mod_low + (mod_high - mod_low) * fired if mod >= 0 else one
        g_post[:] = zero
        for j in range(n_post):
            post[j] = min(max(sp[j] - beta[j], -one), one)
        g_m = zero
        for i in range(n_pre):
            xi = xt[i]
            if xi == zero and not sensitive[i]:
                continue
            g_pre = zero
            if xi != zero:
                f = tab[k_row[i]]
                slot = slot_row[i]
                pre = eta[i] * xi * m
                bound = h_max[i]
                if board:
                    for j in range(n_post):
                        total = np.floor(snap[slot, j] * f) + np.floor(pre * post[j])
                        ga = g_h[i, j] if abs(total) <= bound else zero
                        g_h[i, j] = ga
                        g_pre += ga * post[j]
                        g_post[j] += ga * pre
                else:
                    for j in range(n_post):
                        total = snap[slot, j] * f + pre * post[j]
                        ga = g_h[i, j] if abs(total) <= bound else zero
                        g_h[i, j] = ga
                        g_pre += ga * post[j]
                        g_post[j] += ga * pre
            else:  # a silent row: its trace is lambda**age times the stored one
                for j in range(n_post):
                    g_pre += g_h[i, j] * post[j]
                stale = one if board else tab[age_row[i]]
                g_pre = g_pre / stale if stale > zero else zero
            geta[i] += g_pre * xi * m
            g_x[i] += g_pre * eta[i] * m
            g_m += g_pre * eta[i] * xi
        if mod >= 0:
            gsc[G_LOW] += g_m * (one - fired)
            gsc[G_HIGH] += g_m * fired
            g_x[n_obs + mod] += g_m * (mod_high - mod_low)
        for j in range(n_post):
            if -one <= sp[j] - beta[j] <= one:
                g_spikes[j] += g_post[j]
                gbeta[j] -= g_post[j]

    # Fire (rectangular surrogate), then integrate: v1 = clip(v - v * leak + I).
    for j in range(n_post):
        uj = v1[j] - theta[j]
        gu = g_spikes[j] / width if abs(uj) < half * width else zero
        if has_alive:
            gu *= al[j]
        gth[j] -= gu
        g1 = g_v1[j] + gu
        if board and not (v_lo <= v1_raw[j] <= v_hi):
            g1 = zero
        g_current[j] = g1
        g_v[j] = g1 * (one - leak[j])

    # Integrate: I_j = sum_i x_i w_eff_ij with w_eff = W + alpha * H1 (board: clipped), and
    # for an active row undo its lazy decay, rolling the row back to the tick's start.
    g_alpha = zero
    for i in range(n_pre):
        xi = xt[i]
        if xi == zero and not sensitive[i]:
            continue
        acc = zero
        if not plastic:
            for j in range(n_post):
                kp = kb[i, j] if has_keep else one
                acc += w[i, j] * fine * kp * g_current[j]
                gw[i, j] += xi * g_current[j] * kp * fine
        elif xi == zero:  # silent: only the gradient to its (absent) input
            stale = one if board else tab[age_row[i]]
            for j in range(n_post):
                kp = kb[i, j] if has_keep else one
                if board:
                    raw = w[i, j] * fine + np.floor(alpha * h[i, j] * per_alpha)
                    wij = min(max(raw, w_lo), w_hi)
                else:
                    wij = w[i, j] + alpha * h[i, j] * stale
                acc += wij * kp * g_current[j]
        else:
            f = tab[k_row[i]]
            slot = slot_row[i]
            g_lam = zero
            for j in range(n_post):
                kp = kb[i, j] if has_keep else one
                before = snap[slot, j]
                if board:
                    h1 = np.floor(before * f)
                    raw = w[i, j] * fine + np.floor(alpha * h1 * per_alpha)
                    wij = min(max(raw, w_lo), w_hi)
                    g_eff = xi * g_current[j] * kp if w_lo <= raw <= w_hi else zero
                else:
                    h1 = before * f
                    wij = w[i, j] + alpha * h1
                    g_eff = xi * g_current[j] * kp
                acc += wij * kp * g_current[j]
                gw[i, j] += g_eff * fine
                g_alpha += g_eff * h1 * per_alpha
                gh = g_h[i, j] + g_eff * alpha * per_alpha
                g_lam += gh * before
                g_h[i, j] = gh * f
                h[i, j] = before
            gsc[G_LAM] += g_lam * dtab[k_row[i]]
        g_x[i] += acc
    gsc[G_ALPHA] += g_alpha

    for i in range(n_post):
        if sensitive[n_obs + i]:
            g_spikes_prev[i] += g_x[n_obs + i]
