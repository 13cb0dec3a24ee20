"""Messages and the value codec: round trips, body schemas, sizes that lie, a binary lock."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from protocol import codec, framing
from protocol.errors import (
    ArrayCodecError,
    BadBodyError,
    MessageError,
    UnknownTypeError,
    UnsupportedVersionError,
)
from protocol.messages import Message, MessageType, check_answer, check_request

GOLDEN = Path(__file__).with_name("golden_messages.jsonl")

dtypes = st.sampled_from(["|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<f4", "<f8"])
arrays = dtypes.flatmap(
    lambda dtype: hnp.arrays(np.dtype(dtype), hnp.array_shapes(min_dims=0, max_dims=3, max_side=5))
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=40)
)
values = st.recursive(
    scalars | arrays,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype.newbyteorder("<") == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


@given(
    st.sampled_from(list(MessageType)),
    st.integers(0, 2**32 - 1),
    st.dictionaries(st.text(max_size=10), values, max_size=5),
)
def test_message_round_trip(kind: MessageType, seq: int, body: dict[str, Any]) -> None:
    message = Message(kind, seq, body)
    frame = framing.encode_frame(bytes(message))
    (payload,) = framing.FrameDecoder().feed(frame)
    back = Message.loads(payload)
    assert (back.type, back.seq, back.version) == (kind, seq, message.version)
    assert same(body, back.body)


@given(arrays)
def test_big_endian_arrays_arrive_little_endian(array: np.ndarray) -> None:
    swapped = array.astype(array.dtype.newbyteorder(">"))
    back = codec.unpackb(codec.packb(swapped))
    assert back.dtype.byteorder in ("<", "|", "=")
    assert np.array_equal(back, array, equal_nan=True)


def _array_ext(dtype: str, shape: list[int], data: bytes) -> bytes:
    inner = msgpack.packb([dtype, shape, data], use_bin_type=True)
    return msgpack.packb(msgpack.ExtType(codec.ARRAY_EXT, inner), use_bin_type=True)


@pytest.mark.parametrize(
    ("dtype", "shape", "data", "reason"),
    [
        ("<i4", [1000, 1000], bytes(16), "needs 4000000 bytes but carries 16"),
        ("<i4", [2**40, 2**40], bytes(16), "but carries 16"),
        ("<i4", [2**63], bytes(16), "non-negative sizes"),
        ("<i4", [-1], bytes(4), "non-negative sizes"),
        ("|O", [1], bytes(8), "is not one of"),
        (">i4", [1], bytes(4), "is not one of"),
        ("<i2", [1] * 9, bytes(2), "at most 8"),
    ],
)
def test_arrays_that_lie_are_refused(
    dtype: str, shape: list[int], data: bytes, reason: str
) -> None:
    with pytest.raises(ArrayCodecError, match=reason):
        codec.unpackb(_array_ext(dtype, shape, data))


def test_unknown_ext_type_is_refused() -> None:
    with pytest.raises(ArrayCodecError, match="unknown msgpack ext type 9"):
        codec.unpackb(msgpack.packb(msgpack.ExtType(9, b"x")))


def test_canonical_packing_ignores_key_order() -> None:
    a = codec.packb({"b": 1, "a": {"y": 2, "x": 3}}, canonical=True)
    b = codec.packb({"a": {"x": 3, "y": 2}, "b": 1}, canonical=True)
    assert a == b


def _raw(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


@pytest.mark.parametrize(
    ("payload", "error", "seq"),
    [
        (b"\xc1", MessageError, None),
        (_raw([1, 2]), MessageError, None),
        (_raw({"v": 1, "s": 5, "t": 1}), MessageError, 5),
        (_raw({"v": 2, "s": 6, "t": 1, "b": {}}), UnsupportedVersionError, 6),
        (_raw({"v": 1, "s": 7, "t": 99, "b": {}}), UnknownTypeError, 7),
        (_raw({"v": 1, "s": 8, "t": 1, "b": []}), MessageError, 8),
        (_raw({"v": 1, "s": -1, "t": 1, "b": {}}), MessageError, None),
        (_raw({"v": 1, "s": None, "t": 1, "b": {}}), MessageError, None),
    ],
)
def test_malformed_messages_name_their_seq(payload: bytes, error: type, seq: int | None) -> None:
    with pytest.raises(error) as caught:
        Message.loads(payload)
    assert caught.value.seq == seq


@pytest.mark.parametrize(
    ("kind", "body", "reason"),
    [
        (MessageType.FLASH_BEGIN, {"size": 3}, "needs field 'sha256'"),
        (MessageType.FLASH_BEGIN, {"size": -3, "sha256": bytes(32)}, "non-negative integer"),
        (MessageType.FLASH_BEGIN, {"size": 3, "sha256": bytes(31)}, "32 bytes of SHA-256"),
        (MessageType.STEP, {"inputs": [1.0, 2.0]}, "must be an array"),
        (MessageType.LEARN, {"enabled": 1}, "must be true or false"),
        (MessageType.FAULT, {"action": "break"}, "must be one of"),
        (MessageType.FAULT, {"action": "inject"}, "needs field 'record'"),
        (MessageType.FAULT, {"action": "inject", "record": {"domain": "board"}}, "'kind'"),
    ],
)
def test_request_bodies_are_checked(kind: MessageType, body: dict, reason: str) -> None:
    with pytest.raises(BadBodyError, match=reason):
        check_request(Message(kind, 1, body))


def test_valid_fault_request_and_answer_pass() -> None:
    record = {
        "domain": "board",
        "kind": "stuck-neuron",
        "target": {"core": 1, "neuron": 3},
        "magnitude": 1.0,
        "onset": 10,
        "duration": None,
        "seed": 4,
    }
    check_request(Message(MessageType.FAULT, 1, {"action": "inject", "record": record}))
    check_answer(MessageType.FAULT, {"active": [0], "fault_id": 0})
    with pytest.raises(BadBodyError, match="answer to HELLO needs field 'board_id'"):
        check_answer(MessageType.HELLO, {})


# --- binary lock: a format change is never silent -------------------------------------------


def _to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, np.ndarray):
        return {"array": value.dtype.str, "shape": list(value.shape), "values": value.tolist()}
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"hex"}:
        return bytes.fromhex(value["hex"])
    if isinstance(value, dict) and "array" in value:
        return np.array(value["values"], dtype=value["array"]).reshape(value["shape"])
    if isinstance(value, dict):
        return {key: _from_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    return value


LOCKED = [
    Message(MessageType.HELLO, 1),
    Message(MessageType.FLASH_BEGIN, 2, {"size": 1024, "sha256": bytes(range(32))}),
    Message(MessageType.FLASH_DATA, 3, {"offset": 512, "data": b"\x00\x01\xfe\xff"}),
    Message(MessageType.STEP, 4, {"inputs": np.array([0.5, -1.0], "<f4"), "ticks": 8}),
    Message(MessageType.ACK, 4, {"outputs": np.array([3, -2], "<i2"), "step": 17}),
    Message(
        MessageType.ACK,
        6,
        {
            "outputs": np.array([0.25], "<f4"),
            "step": 3,
            "boot": 0x9E3779B9,
            "executed": 70000,
            "ticks": 560000,
        },
    ),
    Message(
        MessageType.NAK, None, {"code": 1, "error": "a frame failed its check; send it again."}
    ),
    Message(MessageType.NAK, 5, {"code": 7, "error": "chunk starts at 9."}),
    Message(MessageType.NAK, None, {"code": 1, "error": "payload must be a msgpack map."}),
]


def _lock_record(message: Message) -> dict[str, Any]:
    return {
        "type": message.type.name,
        "seq": message.seq,
        "body": _to_json(message.body),
        "frame": framing.encode_frame(bytes(message)).hex(),
    }


def test_golden_records_hold_in_both_directions() -> None:
    if os.environ.get("GLOCAL_REGENERATE_GOLDEN"):
        GOLDEN.write_text("".join(json.dumps(_lock_record(m)) + "\n" for m in LOCKED))
    records = [json.loads(line) for line in GOLDEN.read_text().splitlines()]
    assert len(records) == len(LOCKED)
    for record in records:
        message = Message(MessageType[record["type"]], record["seq"], _from_json(record["body"]))
        frame = bytes.fromhex(record["frame"])
        assert framing.encode_frame(bytes(message)) == frame, record["type"]
        (payload,) = framing.FrameDecoder().feed(frame)
        back = Message.loads(payload)
        assert back.type.name == record["type"] and back.seq == record["seq"]
        assert _to_json(back.body) == record["body"]


def test_docs_name_every_type_code_and_field() -> None:
    from protocol.messages import ANSWERS, REQUESTS, ErrorCode

    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    for kind in MessageType:
        assert f"| {kind.name} | 0x{int(kind):02X} |" in doc, kind.name
    for code in ErrorCode:
        assert f"| {int(code)} | {code.name} |" in doc, code.name
    for schema in (*REQUESTS.values(), *ANSWERS.values()):
        for name in schema:
            assert f"`{name}`" in doc, name
