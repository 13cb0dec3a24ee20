"""Transports, link emulation and the client, in-process (loop://) and over a pty and a socket."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest

from protocol.client import Client
from protocol.errors import LinkFaultError, LinkTimeoutError, RemoteError, TransportError
from protocol.image import pack
from protocol.messages import ErrorCode
from protocol.transport import InProcessTransport, LinkEmulator, SerialTransport, open_transport
from tests.protocol.reference_board import ReferenceBoard

from .conftest import make_image

LOSSY = {"drop_rate": 0.01, "corrupt_rate": 0.01}


def loopback(board: ReferenceBoard, **link: float) -> LinkEmulator | InProcessTransport:
    transport = InProcessTransport(board.responder.feed)
    if link:
        transport = LinkEmulator(transport, **link)
    transport.open()
    return transport


def test_hello_and_status_in_process() -> None:
    board = ReferenceBoard()
    client = Client(loopback(board), seed=0)
    assert client.hello()["board_id"] == "protocol-test-board"
    assert client.status()["counters"]["requests"] == 2


def test_flash_in_process_verifies_and_reports(image_bytes: bytes) -> None:
    board = ReferenceBoard()
    seen: list[tuple[int, int]] = []
    result = Client(loopback(board), seed=0).flash(
        image_bytes, progress=lambda done, total: seen.append((done, total)), chunk_size=128
    )
    assert board.store.slots[result.slot] == image_bytes
    assert result.sha256 == hashlib.sha256(image_bytes).digest()
    assert seen[0] == (0, len(image_bytes)) and seen[-1] == (len(image_bytes), len(image_bytes))
    assert result.bytes_sent == len(image_bytes) and result.retries == 0


def test_nak_becomes_remote_error_with_code() -> None:
    client = Client(loopback(ReferenceBoard()), seed=0)
    with pytest.raises(RemoteError) as caught:
        client.step(np.zeros(3, np.float32))
    assert caught.value.code == ErrorCode.NOT_SUPPORTED
    assert str(caught.value) == (
        "board refused STEP: this board does not implement STEP. (error 5)"
    )


def test_silent_board_times_out_with_one_sentence() -> None:
    client = Client(loopback(ReferenceBoard(), drop_rate=1.0), timeout=0.002, retries=2)
    with pytest.raises(LinkTimeoutError, match=r"no answer to HELLO \(seq \d+\) after 3 tries"):
        client.hello()


def test_link_damage_is_seeded_and_at_the_asked_rate() -> None:
    def damage(seed: int) -> tuple[bytes, int, int]:
        link = LinkEmulator(InProcessTransport(ReferenceBoard().responder.feed), seed=seed, **LOSSY)
        out = link._damage(bytes(200_000))
        return out, link.dropped, link.corrupted

    first, again, other = damage(1), damage(1), damage(2)
    assert first == again and first[0] != other[0]
    assert 1700 < first[1] < 2300 and 1700 < first[2] < 2300  # 1% of 200,000 each


def test_link_fault_records_apply_and_lift() -> None:
    link = LinkEmulator(InProcessTransport(ReferenceBoard().responder.feed), corrupt_rate=0.001)
    record = {"domain": "link", "kind": "corrupt", "magnitude": 0.05}
    link.apply_fault(record)
    assert link.corrupt_rate == 0.05
    link.apply_fault(record, active=False)
    assert link.corrupt_rate == 0.001  # back to the link it was made as
    link.apply_fault({"domain": "link", "kind": "throttle", "magnitude": 9600})
    assert link.bytes_per_second == 960.0
    with pytest.raises(LinkFaultError, match="kind 'jam' is unknown"):
        link.apply_fault({"domain": "link", "kind": "jam", "magnitude": 1})
    with pytest.raises(LinkFaultError, match="between 0.0 and 1.0"):
        link.apply_fault({"domain": "link", "kind": "drop", "magnitude": 2})


def test_throttle_paces_writes_at_baud_over_ten() -> None:
    board = ReferenceBoard()
    link = loopback(board, baud=115_200)  # 11,520 bytes/s
    started = time.monotonic()
    link.send(bytes(2304))  # 0.2 s on the wire
    assert time.monotonic() - started >= 0.19


def test_flash_survives_a_lossy_link_in_process(image_bytes: bytes) -> None:
    board = ReferenceBoard()
    client = Client(loopback(board, seed=5, **LOSSY), timeout=0.002, backoff=1.0, retries=80)
    result = client.flash(image_bytes)
    assert board.store.slots[result.slot] == image_bytes and result.retries > 0


def test_unopenable_port_is_one_sentence() -> None:
    with pytest.raises(TransportError, match="cannot open /dev/nonexistent-glocal"):
        open_transport("/dev/nonexistent-glocal")


# --- a board in another process ----------------------------------------------------------------


@pytest.mark.hil
def test_hello_over_pty_and_socket(board_url: str, socket_board_url: str) -> None:
    for url in (board_url, socket_board_url):
        transport = open_transport(url)
        try:
            assert Client(transport, seed=1).hello()["protocol"] == 1
        finally:
            transport.close()


@pytest.mark.hil
@pytest.mark.slow
def test_flash_over_lossy_pty_verifies_every_time(board_url: str) -> None:
    for seed in range(20):
        image = pack(make_image(seed, n_cores=1))
        transport = open_transport(board_url, seed=seed, **LOSSY)
        try:
            client = Client(transport, timeout=0.002, backoff=1.0, retries=80, seed=seed)
            result = client.flash(image)
            assert result.sha256 == hashlib.sha256(image).digest()
            assert result.retries > 0  # the link really was lossy
        finally:
            transport.close()


class Interrupted(Exception):
    pass


@pytest.mark.hil
def test_interrupted_flash_resumes_without_resending(board_url: str) -> None:
    image = pack(make_image(7, n_cores=24, n_axons=32, n_neurons=32))
    half = len(image) // 2

    def stop_halfway(done: int, total: int) -> None:
        if done >= half:
            raise Interrupted

    transport = open_transport(board_url)
    with pytest.raises(Interrupted):
        Client(transport, seed=1).flash(image, progress=stop_halfway, chunk_size=1024)
    transport.close()

    transport = open_transport(board_url)  # reconnect: a new port, a new client
    try:
        client = Client(transport, seed=2)
        result = client.flash(image, chunk_size=1024)
        written = client.status()["counters"]["flash_bytes_written"]
    finally:
        transport.close()
    assert half <= result.resumed_from < len(image)
    assert result.bytes_sent == len(image) - result.resumed_from
    assert written == len(image)  # the board stored every byte exactly once


def test_serial_transport_rejects_use_before_open() -> None:
    with pytest.raises(TransportError, match="is not open"):
        SerialTransport("loop://").send(b"x")
