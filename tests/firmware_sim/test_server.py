"""The board behind the protocol, in-process over a loopback transport: every message type."""

import hashlib

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from firmware_sim.engine import Engine
from firmware_sim.flash import FlashStore
from firmware_sim.server import Board
from firmware_sim.tables_io import pack_tables, tables_from_image
from protocol import framing
from protocol.client import Client
from protocol.errors import RemoteError
from protocol.messages import ErrorCode, Message, MessageType
from protocol.transport import InProcessTransport, LinkEmulator
from tests.firmware_sim.conftest import board_fault, chain_image, random_layers


def small_image(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return pack_tables(chain_image(random_layers(rng, [6, 20, 3]), ticks_per_step=4))


@pytest.fixture
def board(tmp_path):
    return Board(tmp_path / "flash", "small")


@pytest.fixture
def client(board):
    transport = InProcessTransport(board.responder.feed)
    transport.open()
    yield Client(transport, timeout=0.5, seed=1)
    transport.close()


def flash_and_boot(client, image: bytes) -> dict:
    result = client.flash(image)
    return client.boot(result.slot)


def test_container_round_trip_keeps_every_table():
    image = chain_image(random_layers(np.random.default_rng(0), [6, 20, 3]))
    back = tables_from_image(pack_tables(image))
    assert back.profile == image.profile and back.board["act_dim"] == 3
    for a, b in zip(image.cores, back.cores, strict=True):
        assert a.keys() == b.keys()
        assert all(
            np.array_equal(a[k], b[k]) and np.asarray(a[k]).dtype == np.asarray(b[k]).dtype
            for k in a
        )


def test_hello_and_idle_status(client):
    hello = client.hello()
    assert hello["profile"] == "small" and "plasticity" in hello["capabilities"]
    status = client.status()
    assert status["state"] == "idle" and status["active_slot"] is None


def test_step_before_boot_is_refused(client):
    with pytest.raises(RemoteError) as info:
        client.step(np.zeros(6))
    assert info.value.code == ErrorCode.NO_IMAGE


def test_flash_boot_step_read_learn_fault(client, board):
    image = small_image(0)
    booted = flash_and_boot(client, image)
    assert booted["slot"] == 0
    out = client.step(np.ones(6) * 50)
    assert out["outputs"].shape == (3,) and out["step"] == 1
    assert client.learn(True)["enabled"] is True
    for _ in range(3):
        client.step(np.ones(6) * 50)
    traces = client.read("traces", core=0)
    assert traces.dtype == np.int16 and traces.shape == (6, 20) and traces.any()
    assert client.read("v_mem", core=1).shape == (3,)
    counters = client.read("counters")
    assert counters["ticks"] == 16 and counters["steps"] == 4 and counters["plasticity_updates"] > 0
    injected = client.inject_fault(board_fault("core-down", 1, 0, 0))
    assert injected["active"] == [injected["fault_id"]]
    status = client.status()
    assert status["state"] == "fault" and status["faults"][0]["kind"] == "core-down"
    assert client.step(np.ones(6) * 50)["outputs"].tolist() == [0.0, 0.0, 0.0]
    assert client.clear_fault(injected["fault_id"])["active"] == []
    client.reset()
    assert client.read("counters")["ticks"] == 20  # telemetry survives a network reset
    assert not client.read("traces", core=0).any()


def test_second_image_goes_to_the_other_slot_and_a_bad_one_never_boots(client, board):
    flash_and_boot(client, small_image(0))
    second = client.flash(small_image(1))
    assert second.slot == 1
    assert board.active_slot == 0  # committed, not yet booted
    client.boot(1)
    assert board.active_slot == 1 and board.store.active_slot() == 1
    wrong_profile = chain_image(random_layers(np.random.default_rng(2), [6, 20, 3]))
    wrong_profile.profile = "tianjic"
    with pytest.raises(RemoteError) as info:
        client.flash(pack_tables(wrong_profile))
    assert info.value.code == ErrorCode.IMAGE_REJECTED and "profile" in info.value.sentence
    assert board.active_slot == 1 and board.store.slot_image(0) is not None


def test_erase_refuses_the_active_slot(client):
    flash_and_boot(client, small_image(0))
    with pytest.raises(RemoteError) as info:
        client.erase(0)
    assert info.value.code == ErrorCode.BAD_STATE


def test_board_boots_its_flash_after_a_restart(tmp_path, client, board):
    flash_and_boot(client, small_image(3))
    again = Board(tmp_path / "flash", "small")
    assert again.engine is not None and again.active_slot == 0
    assert again.active_sha256 == board.active_sha256


def test_a_board_with_a_key_takes_only_images_signed_with_it(tmp_path):
    key, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    keyed = Board(tmp_path / "keyed", "small", public_key=public)
    transport = InProcessTransport(keyed.responder.feed)
    transport.open()
    client = Client(transport, timeout=0.5)
    image = chain_image(random_layers(np.random.default_rng(0), [6, 20, 3]))
    for refused in (pack_tables(image), pack_tables(image, stranger)):
        with pytest.raises(RemoteError) as info:
            client.flash(refused)
        assert info.value.code == ErrorCode.IMAGE_REJECTED and "signature" in info.value.sentence
    assert client.boot(client.flash(pack_tables(image, key)).slot)["slot"] == 0


def test_bad_requests_get_one_sentence(client):
    flash_and_boot(client, small_image(0))
    for call in (
        lambda: client.step(np.zeros(5)),
        lambda: client.read("secrets"),
        lambda: client.read("traces", core=9),
        lambda: client.inject_fault(board_fault("melt", 0)),
        lambda: client.boot(1),
    ):
        with pytest.raises(RemoteError) as info:
            call()
        assert info.value.sentence.endswith(".")
    assert client.status()["state"] == "ready"


def test_flash_store_commit_never_touches_the_active_slot(tmp_path):
    store = FlashStore(tmp_path)
    for n, data in enumerate((b"first image", b"second image", b"third image")):
        store.begin(hashlib.sha256(data).digest(), len(data))
        store.write(0, data)
        slot = store.commit()
        store.activate(slot)
        assert store.active_image() == (n % 2, data)


@pytest.mark.parametrize("torn_at", ["begin", "commit"])
def test_flash_store_resumes_after_a_kill_between_the_steps_of_begin_or_commit(tmp_path, torn_at):
    # begin() writes staging.json before it creates staging.bin, and commit() renames
    # staging.bin away before it removes staging.json: a kill in between leaves the metadata
    # without its bytes, which must read as "nothing held yet", not break the next write.
    data = b"an image that was being flashed"
    store = FlashStore(tmp_path)
    store.begin(hashlib.sha256(data).digest(), len(data))
    if torn_at == "commit":
        store.write(0, data)
        (tmp_path / "staging.bin").rename(tmp_path / "slot-A.glc")
    else:
        (tmp_path / "staging.bin").unlink()
    restarted = FlashStore(tmp_path)
    assert restarted.staging().held == 0
    restarted.write(0, data)
    assert restarted.staging().held == len(data)
    assert restarted.slot_image(restarted.commit()) == data


def test_step_answers_carry_the_boot_id_and_the_counters_since_boot(client, board):
    booted = flash_and_boot(client, small_image(0))
    hello = client.hello()
    first, second = (client.step(np.ones(6) * 50) for _ in range(2))
    assert first["boot"] == second["boot"] == hello["boot"] == board.boot_id
    assert (first["executed"], second["executed"]) == (1, 2)
    assert (first["ticks"], second["ticks"]) == (4, 8)  # the image runs 4 ticks per step
    client.reset()  # a soft RESET clears the network, not the counters since boot
    assert client.step(np.ones(6) * 50)["executed"] == 3
    assert client.read("step_counters") == {
        "boot": hello["boot"],
        "executed": 3,
        "ticks": 12,
        "ticks_per_step": 4,
    }
    client.boot(booted["slot"])  # a new boot: a new id, counters from zero
    again = client.step(np.ones(6) * 50)
    assert again["boot"] != hello["boot"] and again["executed"] == 1


def test_a_repeated_step_is_answered_from_the_cache_without_running(client, board):
    flash_and_boot(client, small_image(0))
    frame = framing.encode_frame(bytes(Message(MessageType.STEP, 99, {"inputs": np.ones(6)})))
    answers = [board.responder.feed(frame) for _ in range(3)]
    assert answers[0] == answers[1] == answers[2]
    assert board.engine.telemetry.steps == 1 and board.engine.telemetry.ticks == 4


def test_learning_runs_once_per_step_over_a_lossy_link(client, board):
    """STEPs through 1e-3 corruption and drop, learning on, each under a deadline: every STEP
    delivered runs once (the outputs are bit-exact to the engine stepped once per input) and the
    board's ticks are T per executed STEP."""
    image = small_image(0)
    flash_and_boot(client, image)
    client.learn(True)
    link = LinkEmulator(
        InProcessTransport(board.responder.feed), corrupt_rate=1e-3, drop_rate=1e-3, seed=3
    )
    link.open()
    lossy = Client(link, seed=2)
    inputs = np.random.default_rng(0).uniform(0, 80, (2000, 6))
    got = []
    for x in inputs:
        with lossy.deadline(0.05):
            got.append(lossy.step(x)["outputs"])
    engine = Engine(tables_from_image(image))
    engine.learning = True
    assert np.array_equal(np.array(got), np.array([engine.step(x) for x in inputs]))
    counters = client.read("step_counters")
    assert counters["executed"] == 2000 and counters["ticks"] == 4 * 2000
    assert board.responder.counters.duplicates > 0  # answers were lost and replayed
