"""Every width, shift and limit of the board, declared once (see ``docs/board-spec.md``).

The two overflow helpers live here too: ``saturate`` (clamp to a signed width) and ``wrap`` (keep
the low bits as two's complement). Nothing else in the engine invents its own overflow rule.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

WEIGHT_BITS = 8
"""Synaptic weight ``W``: int8, read-only at run time (only bit-flip faults change it)."""
TRACE_BITS = 16
"""Plastic trace ``H``: int16."""
TRACE_FRAC = 8
"""One trace unit is 2^-8 weight LSB."""
W_EFF_BITS = 16
"""Effective weight ``(W << 8) + (alpha * H >> 8)``, Q7.8, saturates."""
ALPHA_FRAC = 8
"""``alpha`` is int16 Q7.8."""
LAMBDA_FRAC = 16
"""``lam`` is Q0.16 in ``[0, 65536]``; 65536 is exactly 1.0."""
LAMBDA_ONE = 1 << LAMBDA_FRAC
AGE_MAX = 4095
"""Lazy-decay age saturates here (a 12-bit per-row age counter)."""
BETA_FRAC = 8
"""``beta_post`` is int16 Q7.8 in spike units."""
F_TABLE_SIZE = 1024
"""Length of the bounded-``f`` lookup table."""
F_INDEX_MIN = -(F_TABLE_SIZE // 2)
F_INDEX_MAX = F_TABLE_SIZE // 2 - 1
MOD_FRAC = 8
"""Modulatory factor ``m`` is int16 Q7.8; 256 means 1.0 (no modulator)."""
MOD_ONE = 1 << MOD_FRAC
PLASTIC_SHIFT = 16
"""Hebbian term is ``(m * eta * pre * f) >> 16``."""
INPUT_BITS = 8
"""Graded axon input (encoder current) is int8; a spike is ``x = 1``."""
MEMBRANE_BITS = 24
"""Membrane potential and threshold, in fine units (2^-8 weight LSB per input unit); saturates."""
ACC_BITS = 32
"""Per-tick synaptic accumulator; the design rules keep it from overflowing."""
OBS_FRAC = 16
"""Observations become Q15.16 int32 on arrival (saturating)."""
OBS_BITS = 32
ENC_GAIN_FRAC = 8
ENC_SHIFT = OBS_FRAC + ENC_GAIN_FRAC
DELTA_LEVEL = 128
"""Spike level of the delta (sigma-delta) encoder."""
MAX_TICKS_PER_STEP = 255
"""Spike counts per step fit in uint8."""

RESET_SOFT, RESET_HARD = 0, 1
ENC_CURRENT, ENC_DELTA = 0, 1
DEC_COUNTS, DEC_MEMBRANE = 0, 1


def int_min(bits: int) -> int:
    """Smallest signed value of ``bits`` bits: -2^(bits-1)."""
    return -(1 << (bits - 1))


def int_max(bits: int) -> int:
    """Largest signed value of ``bits`` bits: 2^(bits-1) - 1."""
    return (1 << (bits - 1)) - 1


V_MIN, V_MAX = int_min(MEMBRANE_BITS), int_max(MEMBRANE_BITS)
W_EFF_MIN, W_EFF_MAX = int_min(W_EFF_BITS), int_max(W_EFF_BITS)
TRACE_MIN, TRACE_MAX = int_min(TRACE_BITS), int_max(TRACE_BITS)


def saturate(x: np.ndarray | int, bits: int, out: np.ndarray | None = None) -> np.ndarray:
    """Clamp ``x`` to the signed range of ``bits`` bits (in place when ``out`` is given)."""
    lo, hi = int_min(bits), int_max(bits)
    if out is None:
        return np.clip(x, lo, hi)
    # most ticks overflow nothing: two cheap reductions often spare the clamp pass
    if out.size and (out.max() > hi or out.min() < lo):
        np.clip(x, out.dtype.type(lo), out.dtype.type(hi), out=out)
    return out


def clip_symmetric(x: np.ndarray, bound: np.ndarray | int) -> np.ndarray:
    """Clamp ``x`` to ``[-bound, bound]`` in place (the trace clip; ``bound`` broadcasts)."""
    if np.ndim(bound) == 0:
        if x.size and (x.max() > bound or x.min() < -bound):
            np.clip(x, x.dtype.type(-bound), x.dtype.type(bound), out=x)
        return x
    return np.clip(x, -bound, bound, out=x)


def wrap(x: np.ndarray | int, bits: int) -> np.ndarray:
    """Keep the low ``bits`` bits of ``x`` as a signed two's-complement number."""
    half = 1 << (bits - 1)
    return ((np.asarray(x, dtype=np.int64) + half) & ((1 << bits) - 1)) - half


@lru_cache(maxsize=64)
def lambda_powers(lam: int, length: int = AGE_MAX + 1) -> np.ndarray:
    """Lazy-decay table: ``p[0] = 65536``, ``p[k] = (p[k-1] * lam) >> 16`` (floor); read-only."""
    powers = np.empty(length, dtype=np.int64)
    value = LAMBDA_ONE
    for k in range(length):
        powers[k] = value
        # once the power reaches 0 (or stays at 1.0) it never changes again: fill and stop
        if value == 0 or lam == LAMBDA_ONE:
            powers[k:] = value
            break
        value = (value * lam) >> LAMBDA_FRAC
    powers.flags.writeable = False
    return powers
