"""Hardware-in-the-loop style: a board in its own process, spoken to over a pty like a USB board.

``GLOCAL_HIL_PORT=/dev/ttyX`` points the protocol-level tests at a board that is already running
(a real one, say); the kill test always starts its own board processes, since it kills them.
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np
import pytest

from firmware_sim.process import BoardProcess
from firmware_sim.tables_io import pack_tables
from protocol.client import Client
from protocol.framing import encode_frame
from protocol.messages import Message, MessageType
from protocol.transport import SerialTransport
from tests.firmware_sim.conftest import board_fault, chain_image, random_layers

pytestmark = pytest.mark.hil


def make_image(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return pack_tables(chain_image(random_layers(rng, [6, 32, 32, 3]), ticks_per_step=4))


def client_of(board: BoardProcess) -> Client:
    transport = SerialTransport(board.url)
    transport.open()
    return Client(transport, timeout=0.5, retries=6, seed=int(time.time()))


@pytest.fixture
def board(tmp_path):
    external = os.environ.get("GLOCAL_HIL_PORT")
    if external:
        transport = SerialTransport(external)
        transport.open()
        yield Client(transport, timeout=0.5, retries=6)
        transport.close()
        return
    process = BoardProcess("small", tmp_path / "flash")
    client = client_of(process)
    yield client
    client.transport.close()
    process.stop()


def test_flash_boot_step_read_fault_over_a_pty(board):
    result = board.flash(make_image(0))
    assert board.boot(result.slot)["sha256"] == result.sha256
    board.learn(True)
    outputs = [board.step(np.full(6, 40.0))["outputs"] for _ in range(5)]
    assert all(o.shape == (3,) and o.dtype == np.float32 for o in outputs)
    assert board.read("traces", core=0).any()
    fault = board.inject_fault(board_fault("dead-neuron", 2, 1.0, 3))
    assert board.status()["state"] == "fault"
    silent = board.step(np.full(6, 40.0))["outputs"]
    assert silent.tolist() == [0.0, 0.0, 0.0]  # every output neuron is dead
    board.clear_fault(fault["fault_id"])
    assert board.read("counters")["ticks"] == 24


@pytest.mark.slow
def test_killed_during_flash_the_previous_image_boots_every_time(tmp_path):
    flash_dir = tmp_path / "flash"
    first, second = make_image(1), make_image(2)
    process = BoardProcess("small", flash_dir)
    client = client_of(process)
    client.boot(client.flash(first).slot)
    good = client.status()["sha256"]
    client.transport.close()
    process.stop()
    rng = np.random.default_rng(20)
    chunk = 512
    # the requests of one flash: BEGIN, DATA..., END; kill after a random one of them, after a
    # random short delay (mid-write, mid-hash, mid-commit)
    data_requests = [(o, second[o : o + chunk]) for o in range(0, len(second), chunk)]
    sha = hashlib.sha256(second).digest()
    points = rng.integers(0, len(data_requests) + 2, 20)
    for point in points:
        process = BoardProcess("small", flash_dir)
        client = client_of(process)
        assert client.status()["sha256"] == good  # the previous image booted
        client.request(MessageType.FLASH_BEGIN, {"size": len(second), "sha256": sha})
        transport = client.transport
        requests = [
            Message(MessageType.FLASH_DATA, 10_000 + k, {"offset": o, "data": d})
            for k, (o, d) in enumerate(data_requests)
        ]
        requests.append(Message(MessageType.FLASH_END, 20_000, {}))
        for message in requests[: int(point) + 1]:
            transport.send(encode_frame(bytes(message)))
        time.sleep(float(rng.uniform(0, 0.02)))
        process.kill()
        transport.close()
    process = BoardProcess("small", flash_dir)
    client = client_of(process)
    status = client.status()
    assert status["sha256"] == good and status["state"] in ("ready", "running")
    # and what survived in staging is resumed, verified and boots
    result = client.flash(second)
    assert client.boot(result.slot)["sha256"] == sha
    client.transport.close()
    process.stop()


@pytest.mark.slow
def test_fuzz_the_real_board_server_stays_up_with_its_image(board):
    result = board.flash(make_image(4))
    board.boot(result.slot)
    before = board.status()
    rng = np.random.default_rng(7)
    valid = [
        bytes(Message(MessageType.STEP, 5, {"inputs": np.ones(6)})),
        bytes(Message(MessageType.READ, 6, {"name": "traces", "core": 0})),
        bytes(Message(MessageType.FAULT, 7, {"action": "inject", "record": {}})),
        bytes(Message(MessageType.BOOT, 8, {"slot": 1})),
        bytes(Message(MessageType.FLASH_DATA, 9, {"offset": 3, "data": b"xyz"})),
    ]
    transport = board.transport
    for round_ in range(300):
        kind = round_ % 3
        if kind == 0:  # line noise
            junk = rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8).tobytes()
            transport.send(junk)
        elif kind == 1:  # well-framed random payloads (they pass the CRC)
            payload = rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8).tobytes()
            transport.send(encode_frame(payload))
        else:  # real requests with a few bytes changed
            payload = bytearray(valid[int(rng.integers(len(valid)))])
            for at in rng.integers(0, len(payload), int(rng.integers(1, 4))):
                payload[at] = int(rng.integers(0, 256))
            transport.send(encode_frame(bytes(payload)))
        if round_ % 50 == 49:
            assert board.hello()["profile"] == "small"
    transport.send(b"\x00")  # end any half-sent frame
    after = board.status()
    assert after["sha256"] == before["sha256"] and after["active_slot"] == before["active_slot"]
    counters = after["counters"]
    assert counters["bad_frames"] > 0 and counters["requests_naks"] > 0
