"""Frame codec: COBS vectors, round trips, resynchronisation after garbage, limits."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import framing
from protocol.errors import FrameError

# Cheshire-Baker COBS examples as published (encoded form without the delimiter).
COBS_VECTORS = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize(("plain", "encoded"), COBS_VECTORS)
def test_cobs_matches_published_vectors(plain: bytes, encoded: bytes) -> None:
    assert framing.cobs_encode(plain) == encoded
    assert framing.cobs_decode(encoded) == plain


@given(st.binary(max_size=2000))
def test_cobs_round_trip_has_no_zero(data: bytes) -> None:
    encoded = framing.cobs_encode(data)
    assert b"\x00" not in encoded
    assert framing.cobs_decode(encoded) == data
    assert len(encoded) <= len(data) + len(data) // 254 + 1


@given(st.binary(max_size=3000))
def test_frame_round_trip_and_size_bound(payload: bytes) -> None:
    frame = framing.encode_frame(payload)
    assert frame[0] == 0 and frame[-1] == 0
    assert len(frame) <= framing.max_encoded_size(len(payload))
    assert framing.FrameDecoder().feed(frame) == [payload]


@given(
    st.lists(st.tuples(st.binary(max_size=300), st.binary(max_size=40)), min_size=1, max_size=8),
    st.integers(min_value=1, max_value=64),
)
def test_decoder_resyncs_after_garbage_between_frames(
    pieces: list[tuple[bytes, bytes]], split: int
) -> None:
    stream = b"".join(garbage + framing.encode_frame(payload) for payload, garbage in pieces)
    decoder = framing.FrameDecoder()
    received = []
    for start in range(0, len(stream), split):  # arrives in arbitrary slices
        received += decoder.feed(stream[start : start + split])
    # Garbage can only ever add frames that fail their CRC (or, rarely, pass it by chance);
    # it never costs a real frame, because every frame starts with its own delimiter.
    expected = [payload for payload, _ in pieces]
    assert [p for p in received if p in expected] == expected
    assert decoder.counters.frames == len(received)


def test_bad_crc_is_dropped_and_counted() -> None:
    good = framing.encode_frame(b"hello")
    payload = b"hello"
    wrong = (zlib.crc32(payload) ^ 1).to_bytes(4, "little")
    bad = b"\x00" + framing.cobs_encode(payload + wrong) + b"\x00"
    decoder = framing.FrameDecoder()
    assert decoder.feed(bad + good) == [b"hello"]
    assert decoder.counters.bad_frames == 1
    assert decoder.last_error == "frame CRC does not match its payload."


def test_oversized_frame_is_dropped_without_buffering_it() -> None:
    decoder = framing.FrameDecoder(max_payload=64)
    limit = framing.max_encoded_size(64)
    for _ in range(100):  # 100 x 100 bytes without a delimiter
        decoder.feed(b"\x01" * 100)
        assert len(decoder._buffer) <= limit
    assert decoder.feed(b"\x00" + framing.encode_frame(b"ok")) == [b"ok"]
    assert decoder.counters.oversized == 1 and decoder.counters.bad_frames == 1


def test_encoder_refuses_payload_over_the_limit() -> None:
    with pytest.raises(FrameError, match="exceeds the frame limit of 16 bytes"):
        framing.encode_frame(bytes(17), max_payload=16)


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"\x05\x01", "runs past the end"), (b"\x03\x01\x02", "too short"), (b"\x01\x00", "0x00")],
)
def test_decode_frame_says_what_is_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        framing.decode_frame(body)
