"""STEPs under a deadline: bounded waits, late and duplicate answers, exactly-once execution, and
a soak through a lossy link."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from protocol import framing
from protocol.board import Responder
from protocol.client import Client
from protocol.errors import BoardResetError, DeadlineMissedError
from protocol.messages import Message, MessageType
from protocol.transport import InProcessTransport, LinkEmulator


class CountingBoard:
    """A STEP handler that echoes its input and counts what it ran: each input value (a step
    index) is recorded once per execution, so a STEP run twice shows up as a repeat."""

    def __init__(self, boot: int = 7) -> None:
        self.responder = Responder()
        self.responder.register(MessageType.STEP, self.step)
        self.boot = boot
        self.ran: list[int] = []

    def step(self, body: dict[str, Any]) -> dict[str, Any]:
        index = int(body["inputs"][0])
        self.ran.append(index)
        return {
            "outputs": np.array([index], np.int64),
            "step": len(self.ran),
            "boot": self.boot,
            "executed": len(self.ran),
        }


class Silent:
    """A port nobody answers on."""

    bytes_per_second = None

    def open(self) -> None: ...

    def send(self, data: bytes) -> None: ...

    def receive(self, max_bytes: int, timeout: float) -> bytes:
        time.sleep(timeout)
        return b""

    def close(self) -> None: ...


class Unreliable(InProcessTransport):
    """The board's answers, with the first ``lose`` of them lost and every later one delivered
    twice, after a stale answer to an older seq."""

    def __init__(self, feed: Any, lose: int) -> None:
        super().__init__(feed)
        self.lose = lose

    def send(self, data: bytes) -> None:
        answer = self._feed(data) or b""
        if self.lose:
            self.lose -= 1
            return
        stale = framing.encode_frame(bytes(Message(MessageType.ACK, 12345, {"outputs": 0})))
        self._pending += stale + answer + answer


def test_a_deadline_bounds_every_try() -> None:
    client = Client(Silent(), timeout=0.25, seed=0)
    started = time.monotonic()
    with pytest.raises(DeadlineMissedError, match="within its deadline"), client.deadline(0.03):
        client.step(np.zeros(1))
    assert time.monotonic() - started < 0.03 + 0.02
    assert client.counters.retries >= 2  # retried at the round-trip pace, not once per 0.25 s


def test_a_lost_answer_is_replayed_from_the_cache_not_run_again() -> None:
    board = CountingBoard()
    transport = Unreliable(board.responder.feed, lose=1)
    client = Client(transport, seed=0)
    with client.deadline(0.5):
        answer = client.step(np.array([3.0]))
    assert int(answer["outputs"][0]) == 3 and board.ran == [3]
    assert board.responder.counters.duplicates >= 1


def test_late_and_duplicate_answers_never_land_on_another_step() -> None:
    board = CountingBoard()
    client = Client(Unreliable(board.responder.feed, lose=0), seed=0)
    outputs = [int(client.step(np.array([float(i)]))["outputs"][0]) for i in range(20)]
    assert outputs == list(range(20)) and board.ran == list(range(20))
    assert client.counters.stale_answers >= 20  # the stale one and the duplicate, dropped
    assert (client.steps.sent, client.steps.delivered, client.steps.executed) == (20, 20, 20)


def test_a_changed_boot_id_is_a_reset_board() -> None:
    board = CountingBoard(boot=1)
    client = Client(InProcessTransport(board.responder.feed), seed=0)
    client.step(np.zeros(1))
    board.boot = 2
    with pytest.raises(BoardResetError, match="restarted"):
        client.step(np.zeros(1))


def soak(steps: int) -> None:
    """``steps`` STEPs through 1e-3 per-byte corruption and 1e-3 byte drop, each under a 50 ms
    deadline: no crash, no STEP run twice, no answer on the wrong step (the board's tick counter
    against its executed STEPs is checked on the real board, in tests/firmware_sim)."""
    board = CountingBoard()
    link = LinkEmulator(
        InProcessTransport(board.responder.feed), corrupt_rate=1e-3, drop_rate=1e-3, seed=5
    )
    link.open()
    client = Client(link, seed=0)
    wrong, misses = 0, 0
    for i in range(steps):
        try:
            with client.deadline(0.05):
                answer = client.step(np.array([float(i)]))
        except DeadlineMissedError:
            misses += 1
            continue
        wrong += int(answer["outputs"][0]) != i
    assert wrong == 0
    assert len(board.ran) == len(set(board.ran))  # no STEP ran twice
    assert client.steps.delivered == steps - misses <= len(board.ran) <= steps
    assert link.corrupted > 0 and link.dropped > 0
    assert misses <= steps // 1000  # the board's NAK makes a damaged try cheap


def test_soak_a_lossy_link_briefly() -> None:
    soak(3_000)


@pytest.mark.slow
def test_soak_a_lossy_link_for_100k_steps() -> None:
    soak(100_000)


def test_a_damaged_frame_gets_a_nil_seq_nak_at_once() -> None:
    damaged = bytearray(framing.encode_frame(bytes(Message(MessageType.STEP, 1, {"inputs": 1}))))
    damaged[3] ^= 0x40
    (payload,) = framing.FrameDecoder().feed(Responder().feed(bytes(damaged)))
    answer = Message.loads(payload)
    assert (
        answer.seq is None
        and answer.body["code"] == 1
        and "failed its check" in answer.body["error"]
    )


def test_an_answer_that_arrived_by_the_deadline_counts_though_read_late() -> None:
    board = CountingBoard()

    def slow(data: bytes) -> bytes:
        time.sleep(0.04)  # a board in this process answers inside send, past the deadline
        return board.responder.feed(data)

    client = Client(InProcessTransport(slow), seed=0)
    with client.deadline(0.02):
        assert int(client.step(np.array([4.0]))["outputs"][0]) == 4
