"""Board side: one answer per request, NAKs with reasons, idempotent retries, flashing."""

from __future__ import annotations

import hashlib

import msgpack
import numpy as np
import pytest

from protocol import framing
from protocol.board import FlashReceiver, MemorySlotStore, Responder
from protocol.errors import RequestRejected
from protocol.messages import ErrorCode, Message, MessageType
from tests.protocol.reference_board import ReferenceBoard

T = MessageType


def ask(responder: Responder, payload: bytes) -> Message | None:
    out = responder.feed(framing.encode_frame(payload))
    answers = framing.FrameDecoder().feed(out)
    assert len(answers) <= 1
    return Message.loads(answers[0]) if answers else None


def request(responder: Responder, kind: T, seq: int, body: dict | None = None) -> Message:
    answer = ask(responder, bytes(Message(kind, seq, body or {})))
    assert answer is not None and answer.seq == seq
    return answer


@pytest.fixture
def board() -> ReferenceBoard:
    return ReferenceBoard(capacity=4096)


def raw(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


@pytest.mark.parametrize(
    ("payload", "code", "seq"),
    [
        (b"\xc1\xc1", ErrorCode.MALFORMED, None),
        (raw({"v": 1, "s": 3, "t": 77, "b": {}}), ErrorCode.UNKNOWN_TYPE, 3),
        (raw({"v": 9, "s": 4, "t": 1, "b": {}}), ErrorCode.UNSUPPORTED_VERSION, 4),
        (raw({"v": 1, "s": 5, "t": 0x10, "b": {"size": "big"}}), ErrorCode.BAD_REQUEST, 5),
        (raw({"v": 1, "s": 6, "t": 0x21, "b": {"inputs": [0.5]}}), ErrorCode.BAD_REQUEST, 6),
    ],
)
def test_bad_requests_get_one_nak_with_code_and_sentence(
    board: ReferenceBoard, payload: bytes, code: int, seq: int | None
) -> None:
    answer = ask(board.responder, payload)
    assert answer is not None and answer.type is T.NAK
    assert answer.seq == seq and answer.body["code"] == code
    assert answer.body["error"].endswith(".")


def test_unimplemented_request_is_refused_not_ignored(board: ReferenceBoard) -> None:
    answer = request(board.responder, T.STEP, 9, {"inputs": np.zeros(3, np.float32)})
    assert answer.body == {
        "code": ErrorCode.NOT_SUPPORTED,
        "error": "this board does not implement STEP.",
    }


def test_answers_arriving_at_the_board_are_ignored(board: ReferenceBoard) -> None:
    assert ask(board.responder, bytes(Message(T.ACK, 3, {}))) is None
    assert board.responder.counters.ignored == 1


def test_repeated_seq_is_answered_from_cache_without_running_again() -> None:
    calls = []
    responder = Responder({T.STATUS: lambda body: calls.append(1) or {"n": len(calls)}})
    first = request(responder, T.STATUS, 40)
    again = request(responder, T.STATUS, 40)
    assert first.body == again.body == {"n": 1} and len(calls) == 1
    assert responder.counters.duplicates == 1
    # Same seq but other bytes is a new request (a restarted host), not a retry.
    assert request(responder, T.STATUS, 40, {"x": 1}).body == {"n": 2}


def test_handler_bug_becomes_internal_nak_and_board_lives_on() -> None:
    def broken(body: dict) -> dict:
        raise ZeroDivisionError("division by zero")

    responder = Responder({T.STATUS: broken, T.HELLO: lambda body: {"ok": True}})
    answer = request(responder, T.STATUS, 1)
    assert answer.body["code"] == ErrorCode.INTERNAL
    assert "division by zero" in answer.body["error"]
    assert request(responder, T.HELLO, 2).body == {"ok": True}


def test_handler_can_refuse_with_its_own_code() -> None:
    def refuse(body: dict) -> dict:
        raise RequestRejected(ErrorCode.NO_IMAGE, "no image is booted.")

    responder = Responder({T.READ: refuse})
    answer = request(responder, T.READ, 1, {"name": "weights"})
    assert answer.body == {"code": ErrorCode.NO_IMAGE, "error": "no image is booted."}


# --- flashing state machine --------------------------------------------------------------------


def begin(board: ReferenceBoard, seq: int, image: bytes) -> Message:
    body = {"size": len(image), "sha256": hashlib.sha256(image).digest()}
    return request(board.responder, T.FLASH_BEGIN, seq, body)


def test_flash_state_machine_resumes_and_commits(board: ReferenceBoard) -> None:
    image = bytes(range(256)) * 4
    assert begin(board, 1, image).body["offset"] == 0
    data = request(board.responder, T.FLASH_DATA, 2, {"offset": 0, "data": image[:300]})
    assert data.body == {"offset": 300}
    # A new session for the same image resumes where the board stands.
    assert begin(board, 3, image).body["offset"] == 300
    # An overlapping chunk only adds its new part.
    assert request(board.responder, T.FLASH_DATA, 4, {"offset": 200, "data": image[200:1024]})
    done = request(board.responder, T.FLASH_END, 5)
    assert done.body == {"sha256": hashlib.sha256(image).digest(), "size": 1024, "slot": 0}
    assert board.store.slots[0] == image and board.store.bytes_written == 1024


@pytest.mark.parametrize(
    ("session", "steps", "code"),
    [
        (False, [(T.FLASH_DATA, {"offset": 0, "data": b"x"})], ErrorCode.NO_FLASH_SESSION),
        (False, [(T.FLASH_END, {})], ErrorCode.NO_FLASH_SESSION),
        (True, [(T.FLASH_DATA, {"offset": 5, "data": b"x"})], ErrorCode.BAD_OFFSET),
        (True, [(T.FLASH_DATA, {"offset": 0, "data": bytes(11)})], ErrorCode.BAD_OFFSET),
        (True, [(T.FLASH_END, {})], ErrorCode.INCOMPLETE),
        (True, [(T.FLASH_BEGIN, {"size": 0, "sha256": bytes(32)})], ErrorCode.BAD_REQUEST),
    ],
)
def test_flash_refusals(board: ReferenceBoard, session: bool, steps: list, code: int) -> None:
    if session:
        begin(board, 100, b"abcdefghij")
    answers = [
        request(board.responder, kind, 200 + i, body) for i, (kind, body) in enumerate(steps)
    ]
    assert answers[-1].type is T.NAK and answers[-1].body["code"] == code


def test_hash_mismatch_discards_staging(board: ReferenceBoard) -> None:
    image = b"abcdefghij"
    begin(board, 1, image)
    request(board.responder, T.FLASH_DATA, 2, {"offset": 0, "data": b"abcdefghiX"})
    answer = request(board.responder, T.FLASH_END, 3)
    assert answer.body["code"] == ErrorCode.HASH_MISMATCH
    assert begin(board, 4, image).body["offset"] == 0  # never resumes onto bad bytes
    assert board.store.slots == [None, None]


def test_image_too_large_for_slot(board: ReferenceBoard) -> None:
    answer = begin(board, 1, bytes(5000))
    assert answer.body["code"] == ErrorCode.TOO_LARGE
    assert "does not fit the 4096-byte slot" in answer.body["error"]


def test_pre_commit_check_can_reject_an_intact_image() -> None:
    def design_rules(image: bytes) -> None:
        raise ValueError("core 3: 300 axons used, profile allows 256")

    store = MemorySlotStore()
    responder = Responder()
    FlashReceiver(store, check=design_rules).register(responder)
    image = b"image"
    digest = hashlib.sha256(image).digest()
    request(responder, T.FLASH_BEGIN, 1, {"size": 5, "sha256": digest})
    request(responder, T.FLASH_DATA, 2, {"offset": 0, "data": image})
    answer = request(responder, T.FLASH_END, 3)
    assert answer.body == {
        "code": ErrorCode.IMAGE_REJECTED,
        "error": "core 3: 300 axons used, profile allows 256",
    }
    assert store.slots == [None, None]


# --- fuzz --------------------------------------------------------------------------------------


def _seed_payloads() -> list[bytes]:
    digest = hashlib.sha256(b"x" * 64).digest()
    return [
        bytes(Message(T.HELLO, 1)),
        bytes(Message(T.STATUS, 2)),
        bytes(Message(T.FLASH_BEGIN, 3, {"size": 64, "sha256": digest})),
        bytes(Message(T.FLASH_DATA, 4, {"offset": 0, "data": b"x" * 64})),
        bytes(Message(T.FLASH_END, 5)),
        bytes(Message(T.STEP, 6, {"inputs": np.arange(4, dtype=np.float32), "ticks": 8})),
        bytes(Message(T.READ, 7, {"name": "weights", "core": 1})),
    ]


@pytest.mark.slow
def test_fuzz_board_decoder_with_100k_random_and_mutated_frames() -> None:
    rng = np.random.default_rng(2024)
    board = ReferenceBoard(capacity=1 << 16)
    responder = board.responder
    seeds = _seed_payloads()
    answers_expected = 0
    for index in range(100_000):
        kind = index % 4
        if kind == 0:  # random bytes, sometimes with zeros
            frame = rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8).tobytes()
        else:
            payload = bytearray(seeds[int(rng.integers(len(seeds)))])
            for _ in range(int(rng.integers(1, 6))):
                spot = int(rng.integers(len(payload)))
                action = int(rng.integers(3))
                if action == 0:
                    payload[spot] = int(rng.integers(256))
                elif action == 1:
                    del payload[spot]
                else:
                    payload.insert(spot, int(rng.integers(256)))
            if kind == 3:  # valid CRC around a mutated payload: reaches the message layer
                frame = framing.encode_frame(bytes(payload))
                answers_expected += 1
            else:  # mutated payload, stale CRC
                frame = framing.encode_frame(bytes(seeds[0]))[:-1] + bytes(payload) + b"\x00"
        frames, ignored = responder.decoder.counters.frames, responder.counters.ignored
        bad = responder.decoder.counters.bad_frames
        out = responder.feed(frame + b"\x00")
        completed = responder.decoder.counters.frames - frames
        stray = responder.counters.ignored - ignored
        damaged = responder.decoder.counters.bad_frames > bad
        # Exactly one answer per frame that passed its CRC, unless it decoded as an ACK/NAK,
        # and one nil-seq NAK for the damaged frames among them.
        assert len(framing.FrameDecoder().feed(out)) == completed - stray + damaged
    counters = responder.decoder.counters
    assert counters.frames >= answers_expected
    assert counters.bad_frames > 10_000
    assert responder.counters.naks > answers_expected / 2
