"""Frames on a byte stream: COBS-encoded, CRC32-checked, 0x00-delimited. Pure: no port here.

Wire format of one frame::

    0x00 | COBS( payload | CRC32(payload) as 4 bytes little-endian ) | 0x00

COBS (Consistent Overhead Byte Stuffing, Cheshire and Baker 1999) removes every 0x00 from the
encoded bytes, so 0x00 only ever means "end of frame" and a receiver that starts mid-stream or
after line noise is back in step at the next 0x00. The leading 0x00 is optional for a receiver
(empty frames are ignored); senders put it there so that garbage before a frame ends as its own
(bad) frame instead of spoiling the good one behind it.

CRC32 is the IEEE 802.3 polynomial as computed by ``zlib.crc32`` (initial value 0, final xor
0xFFFFFFFF): the same CRC as Ethernet, gzip and PNG, so a board can use its hardware CRC unit.

Buffer arithmetic: COBS adds one code byte per started run of 254 non-zero bytes, so a payload
of ``n`` bytes becomes at most ``n + 4 + ceil((n + 4) / 254) + 2`` bytes on the wire (CRC, codes,
two delimiters); :func:`max_encoded_size` is that bound. A receiver for payloads of up to
``max_payload`` bytes therefore never needs to buffer more than ``max_encoded_size(max_payload)``
bytes; the :class:`FrameDecoder` drops (and counts) anything longer without keeping it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from protocol.errors import FrameError

DELIMITER = 0x00
CRC_SIZE = 4
# The protocol's ceiling for one payload; a board advertises its own (smaller) limit in HELLO.
MAX_PAYLOAD = 1 << 20
_MAX_BLOCK = 254


def max_encoded_size(max_payload: int) -> int:
    """Most bytes a frame with ``max_payload`` payload bytes takes on the wire, delimiters too."""
    stuffed = max_payload + CRC_SIZE
    return stuffed + (stuffed + _MAX_BLOCK - 1) // _MAX_BLOCK + 1 + 2


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data``: the result holds no 0x00 byte."""
    out = bytearray()
    segments = bytes(data).split(b"\x00")
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        start = 0
        while len(segment) - start >= _MAX_BLOCK:
            out.append(0xFF)
            out += segment[start : start + _MAX_BLOCK]
            start += _MAX_BLOCK
        # A run of exactly k*254 bytes at the very end needs no closing code (standard COBS).
        if index == last and start > 0 and start == len(segment):
            break
        out.append(len(segment) - start + 1)
        out += segment[start:]
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Undo :func:`cobs_encode`; raises :class:`FrameError` on bytes no encoder could produce."""
    if b"\x00" in data:
        raise FrameError("COBS data contains a 0x00 byte, which only delimits frames.")
    out = bytearray()
    position, size = 0, len(data)
    while position < size:
        code = data[position]
        end = position + code
        if end > size:
            raise FrameError(f"COBS block of {code - 1} bytes runs past the end of the frame.")
        out += data[position + 1 : end]
        position = end
        if code != 0xFF and position < size:
            out.append(0)
    return bytes(out)


def encode_frame(payload: bytes, max_payload: int = MAX_PAYLOAD) -> bytes:
    """One frame for ``payload``, both delimiters included."""
    if len(payload) > max_payload:
        raise FrameError(
            f"payload of {len(payload)} bytes exceeds the frame limit of {max_payload} bytes; "
            "send it in smaller pieces."
        )
    crc = zlib.crc32(payload).to_bytes(CRC_SIZE, "little")
    return b"\x00" + cobs_encode(payload + crc) + b"\x00"


def decode_frame(body: bytes, max_payload: int = MAX_PAYLOAD) -> bytes:
    """The payload of a frame body (bytes between two delimiters); :class:`FrameError` if bad."""
    if len(body) > max_encoded_size(max_payload):
        raise FrameError(f"frame of {len(body)} bytes is longer than any valid frame.")
    stuffed = cobs_decode(body)
    if len(stuffed) < CRC_SIZE:
        raise FrameError(f"frame of {len(stuffed)} bytes is too short to hold its CRC.")
    payload, crc = stuffed[:-CRC_SIZE], stuffed[-CRC_SIZE:]
    if len(payload) > max_payload:
        raise FrameError(f"payload of {len(payload)} bytes exceeds the limit of {max_payload}.")
    if zlib.crc32(payload).to_bytes(CRC_SIZE, "little") != crc:
        raise FrameError("frame CRC does not match its payload.")
    return payload


@dataclass
class FrameCounters:
    """What a :class:`FrameDecoder` has seen since it was made."""

    frames: int = 0
    bad_frames: int = 0
    oversized: int = 0
    bytes_in: int = 0


class FrameDecoder:
    """Streaming decoder: feed bytes as they arrive, get whole payloads back.

    Bad frames (COBS error, CRC mismatch, too long) are dropped and counted in ``counters``;
    decoding resumes at the next delimiter, so garbage costs at most the frame it touched.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._limit = max_encoded_size(max_payload)
        self._buffer = bytearray()
        self._discarding = False
        self.counters = FrameCounters()
        self.last_error: str | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Payloads of every frame completed by ``data``, in order."""
        self.counters.bytes_in += len(data)
        if b"\x00" not in data:
            self._extend(data)
            return []
        pieces = bytes(data).split(b"\x00")
        payloads: list[bytes] = []
        for index, piece in enumerate(pieces[:-1]):
            body = piece if index else self._take(piece)
            if body is None:
                continue
            payload = self._decode(body)
            if payload is not None:
                payloads.append(payload)
        self._extend(pieces[-1])
        return payloads

    def reset(self) -> None:
        """Forget a partial frame (after reconnecting, say); counters stay."""
        self._buffer.clear()
        self._discarding = False

    def _extend(self, data: bytes) -> None:
        if self._discarding:
            return
        self._buffer += data
        if len(self._buffer) > self._limit:
            # Keep nothing of an over-long frame: its size is bounded by the next delimiter only.
            self._buffer.clear()
            self._discarding = True

    def _take(self, first_piece: bytes) -> bytes | None:
        """The buffered start of a frame joined with ``first_piece``; None if it was over-long."""
        if self._discarding:
            self._discarding = False
            self.counters.oversized += 1
            self.counters.bad_frames += 1
            self.last_error = "frame longer than any valid frame"
            return None
        body = bytes(self._buffer) + first_piece
        self._buffer.clear()
        return body

    def _decode(self, body: bytes) -> bytes | None:
        if not body:
            return None
        try:
            payload = decode_frame(body, self.max_payload)
        except FrameError as error:
            self.counters.bad_frames += 1
            if len(body) > self._limit:
                self.counters.oversized += 1
            self.last_error = str(error)
            return None
        self.counters.frames += 1
        return payload
