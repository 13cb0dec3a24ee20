"""The board's numeric contract: every width, Q format and limit, written once.

``docs/board-spec.md`` says how a tick uses them.

It lives in ``protocol`` because it is part of the contract between host and board, like the frame
codec and the image format: the board (``firmware_sim``) computes with these numbers, the host
quantises to them (``deploy``) and trains against them (``train``). Keeping them here rather than
in the engine lets ``train`` mirror the board without importing it. Pure Python (standard library
only): the numpy helpers over these numbers are the engine's (``firmware_sim.spec``).

Names ending in ``_BITS`` are signed widths, ``_FRAC`` fraction bits of a fixed-point value, and
``_ONE`` the integer that stands for 1.0 in that format.
"""

from __future__ import annotations

from functools import lru_cache

WEIGHT_BITS = 8
"""Synaptic weight ``W``: int8, read-only at run time (only bit-flip faults change it)."""
TRACE_BITS = 16
"""Plastic trace ``H``: int16."""
TRACE_FRAC = 8
"""One trace unit is 2^-8 weight LSB; also the fraction of ``w_eff``: ``W << 8``."""
W_EFF_BITS = 16
"""Effective weight ``(W << 8) + (alpha * H >> 8)``, Q7.8, saturates."""
ALPHA_FRAC = 8
"""``alpha`` is int16 Q7.8."""
LAMBDA_FRAC = 16
"""``lam`` is Q0.16 in ``[0, 65536]``; 65536 is exactly 1.0."""
AGE_MAX = 4095
"""Lazy-decay age saturates here (a 12-bit per-row age counter)."""
BETA_FRAC = 8
"""``beta_post`` is int16 Q7.8 in spike units."""
F_TABLE_SIZE = 1024
"""Length of the bounded-``f`` lookup table."""
MOD_FRAC = 8
"""Modulatory factor ``m`` is int16 Q7.8; 256 means 1.0 (no modulator)."""
PLASTIC_SHIFT = 16
"""Hebbian term is ``(m * eta * pre * f) >> 16``."""
PARAM_BITS = 16
"""The per-layer and per-row parameter tables (alpha, eta, beta, mod_levels, enc_gain, enc_bias,
dec_w) are int16."""
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
"""``enc_gain`` is int16 Q7.8 (input units per observation unit)."""
DEC_BIAS_BITS = 32
"""The decoder's bias per action is int32."""
DELTA_LEVEL = 128
"""Spike level of the delta (sigma-delta) encoder."""
MAX_TICKS_PER_STEP = 255
"""Spike counts per step fit in uint8."""

RESET_SOFT, RESET_HARD = 0, 1
ENC_CURRENT, ENC_DELTA = 0, 1
DEC_COUNTS, DEC_MEMBRANE = 0, 1

ENC_SHIFT = OBS_FRAC + ENC_GAIN_FRAC
LAMBDA_ONE = 1 << LAMBDA_FRAC
MOD_ONE = 1 << MOD_FRAC
ALPHA_ONE = 1 << ALPHA_FRAC
BETA_ONE = 1 << BETA_FRAC
"""One spike in ``beta_post`` units."""
OBS_ONE = 1 << OBS_FRAC
ENC_GAIN_ONE = 1 << ENC_GAIN_FRAC
FINE_PER_WEIGHT_LSB = 1 << TRACE_FRAC
"""Membrane (fine) units that one weight LSB adds per unit of input: ``w_eff = W << 8``."""
F_INDEX_MIN = -(F_TABLE_SIZE // 2)
F_INDEX_MAX = F_TABLE_SIZE // 2 - 1


def int_min(bits: int) -> int:
    """Smallest signed value of ``bits`` bits: -2^(bits-1)."""
    return -(1 << (bits - 1))


def int_max(bits: int) -> int:
    """Largest signed value of ``bits`` bits: 2^(bits-1) - 1."""
    return (1 << (bits - 1)) - 1


WEIGHT_MIN, WEIGHT_MAX = int_min(WEIGHT_BITS), int_max(WEIGHT_BITS)
TRACE_MIN, TRACE_MAX = int_min(TRACE_BITS), int_max(TRACE_BITS)
W_EFF_MIN, W_EFF_MAX = int_min(W_EFF_BITS), int_max(W_EFF_BITS)
V_MIN, V_MAX = int_min(MEMBRANE_BITS), int_max(MEMBRANE_BITS)
INPUT_MIN, INPUT_MAX = int_min(INPUT_BITS), int_max(INPUT_BITS)
PARAM_MIN, PARAM_MAX = int_min(PARAM_BITS), int_max(PARAM_BITS)
OBS_MIN, OBS_MAX = int_min(OBS_BITS), int_max(OBS_BITS)
DEC_BIAS_MAX = int_max(DEC_BIAS_BITS)


@lru_cache(maxsize=64)
def lambda_powers(lam: int) -> tuple[int, ...]:
    """The lazy-decay table of ``lam`` (Q0.16), ``AGE_MAX + 1`` long: ``p[0] = 65536``,
    ``p[k] = (p[k-1] * lam) >> 16`` (floor). The board builds it at load time; the host's mirror
    reads the same one."""
    powers = [LAMBDA_ONE]
    # once a power reaches 0 (or stays at 1.0) it never changes again: pad and stop
    while len(powers) <= AGE_MAX and powers[-1] != 0 and lam != LAMBDA_ONE:
        powers.append((powers[-1] * lam) >> LAMBDA_FRAC)
    return tuple(powers) + (powers[-1],) * (AGE_MAX + 1 - len(powers))
