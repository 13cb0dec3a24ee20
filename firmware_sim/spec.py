"""The engine's numpy helpers over the board's numeric contract (``docs/board-spec.md``).

The numbers themselves (every width, shift and limit) are declared once, in
:mod:`protocol.numeric`, the contract that host and board share, and read from there. What
lives here is what needs numpy: the two overflow helpers, ``saturate`` (clamp to a signed width)
and ``wrap`` (keep the low bits as two's complement), and the lazy-decay table as a read-only
array. Nothing else in the engine
invents its own overflow rule.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from protocol import numeric
from protocol.numeric import int_max, int_min


def saturate(x: np.ndarray | int, bits: int, out: np.ndarray | None = None) -> np.ndarray:
    """Clamp ``x`` to the signed range of ``bits`` bits (in place when ``out`` is given)."""
    lo, hi = int_min(bits), int_max(bits)
    if out is None:
        return np.clip(x, lo, hi)
    # most ticks overflow nothing: two cheap reductions often spare the clamp pass
    if out.size and (out.max() > hi or out.min() < lo):
        np.clip(x, out.dtype.type(lo), out.dtype.type(hi), out=out)
    return out


def wrap(x: np.ndarray | int, bits: int) -> np.ndarray:
    """Keep the low ``bits`` bits of ``x`` as a signed two's-complement number."""
    half = 1 << (bits - 1)
    return ((np.asarray(x, dtype=np.int64) + half) & ((1 << bits) - 1)) - half


@lru_cache(maxsize=64)
def lambda_table(lam: int) -> np.ndarray:
    """:func:`protocol.numeric.lambda_powers` of ``lam`` as a read-only int64 array."""
    powers = np.array(numeric.lambda_powers(lam), dtype=np.int64)
    powers.flags.writeable = False
    return powers
