"""msgpack with numpy arrays: the one value codec for messages and core images.

An array travels as msgpack ext type 1 whose data is itself a msgpack array of three items::

    [dtype: str, shape: [int, ...], data: bin]

``dtype`` is a numpy type string with explicit byte order (``"|i1"``, ``"<i2"``, ``"<f4"``, see
:data:`DTYPES`); ``data`` is the C-order element bytes, little-endian. A decoder checks that the
dtype is allowed, the shape has at most :data:`MAX_NDIM` non-negative dimensions and that
``prod(shape) * itemsize == len(data)`` before it allocates anything, so a size that lies is
refused instead of trusted. msgpack itself bounds every str, bin, array and map by the bytes
actually present. numpy scalars are sent as plain msgpack numbers.

``canonical=True`` sorts map keys at every level, so equal values always pack to equal bytes
(the core image hashes its body this way).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgpack
import numpy as np

from protocol.errors import ArrayCodecError

ARRAY_EXT = 1
MAX_NDIM = 8
DTYPES = frozenset(
    ["|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8"]
)
# Every exception msgpack (or a hook) raises on input that is not what it claims to be.
DECODE_ERRORS = (ValueError, TypeError, OverflowError, msgpack.UnpackException, ArrayCodecError)


def encode_array(array: np.ndarray) -> msgpack.ExtType:
    """The ext value for one numpy array."""
    little = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    if little.str not in DTYPES:
        raise ArrayCodecError(
            f"arrays of dtype {array.dtype} cannot travel; use one of {sorted(DTYPES)}."
        )
    data = np.ascontiguousarray(array, dtype=little).tobytes()
    inner = msgpack.packb([little.str, list(array.shape), data], use_bin_type=True)
    return msgpack.ExtType(ARRAY_EXT, inner)


def decode_array(data: bytes) -> np.ndarray:
    """The array inside one ext value; checks every size before it allocates."""
    try:
        items = msgpack.unpackb(data, raw=False)
    except DECODE_ERRORS as error:
        raise ArrayCodecError(f"array header is not valid msgpack ({error}).") from None
    if not isinstance(items, list) or len(items) != 3:
        raise ArrayCodecError("array header must be [dtype, shape, data].")
    dtype, shape, raw = items
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ArrayCodecError(f"array dtype {dtype!r} is not one of {sorted(DTYPES)}.")
    if not isinstance(raw, bytes):
        raise ArrayCodecError("array data must be msgpack bin.")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_NDIM
        or not all(type(d) is int and 0 <= d < 2**63 for d in shape)
    ):
        raise ArrayCodecError(
            f"array shape {shape!r} must be a list of at most {MAX_NDIM} non-negative sizes."
        )
    itemsize = np.dtype(dtype).itemsize
    expected = math.prod(shape) * itemsize
    if expected != len(raw):
        raise ArrayCodecError(
            f"array of dtype {dtype} and shape {tuple(shape)} needs {expected} bytes "
            f"but carries {len(raw)}."
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return encode_array(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot encode a value of type {type(value).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code != ARRAY_EXT:
        raise ArrayCodecError(f"unknown msgpack ext type {code}; only {ARRAY_EXT} (array) exists.")
    return decode_array(data)


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if type(value) in (list, tuple):  # not ExtType, which is a namedtuple
        return [_sorted(item) for item in value]
    return value


def packb(value: Any, canonical: bool = False) -> bytes:
    """msgpack bytes of ``value`` (dicts, lists, scalars, str, bytes, numpy arrays)."""
    try:
        if canonical:
            value = _sorted(value)
        return msgpack.packb(value, default=_default, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as error:
        raise ArrayCodecError(f"value cannot be encoded: {error}.") from None


def unpackb(data: bytes) -> Any:
    """The value in ``data``; raises one of :data:`DECODE_ERRORS` on anything malformed."""
    return msgpack.unpackb(data, raw=False, ext_hook=_ext_hook, strict_map_key=True)
