"""``glocal hil``: a conformance suite for any board that speaks the protocol.

Each check is one function that talks to the board through the protocol's client and either
returns a short detail or raises :class:`CheckFailed` with one sentence. The test image is a
small seeded network built for the board's own profile (from HELLO); the reference for every
STEP is ``firmware_sim``'s engine run in this process on the same image, so a conforming board
must be bit-exact to docs/board-spec.md, not merely answer.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deploy.chain import Chain, Decoder, Encoder, Layer
from deploy.errors import DeployError
from deploy.mapping import map_chain
from firmware_sim.engine import Engine
from firmware_sim.profiles import get_profile
from firmware_sim.tables_io import pack_tables
from protocol.client import Client
from protocol.errors import DeadlineMissedError, ProtocolError, RemoteError
from protocol.messages import PROTOCOL_VERSION
from protocol.transport import LinkEmulator

OBS_DIM, HIDDEN, ACT_DIM, TICKS = 6, 16, 3, 4
STEPS = 20
# The lossy-link check: ArmReach's control period as the deadline, the damage rates, and
# the slack a busy host's scheduler may add to the deadline.
LOSSY_DEADLINE, LOSSY_RATE, LOSSY_REPEATS, LOSSY_SLACK = 0.05, 1e-3, 10, 0.02


class CheckFailed(Exception):
    """One check of the suite did not hold."""


@dataclass
class Suite:
    client: Any
    image: bytes = b""
    board_image: Any = None
    profile: str = ""
    inputs: np.ndarray = field(default_factory=lambda: np.zeros((0, OBS_DIM)))
    reference: np.ndarray = field(default_factory=lambda: np.zeros((0, ACT_DIM)))


def conformance_image(profile_name: str, seed: int = 0) -> Any:
    """A small plastic two-layer network that spikes, built for ``profile_name``."""

    rng = np.random.default_rng(seed)
    layers = [
        Layer(
            weights=rng.integers(-40, 100, (fan_in, fan_out)).astype(np.int8),
            theta=rng.integers(256 * 30, 256 * 120, fan_out),
            decay_shift=2,
            alpha=128,
            lam=60000,
            h_max=8000,
            eta=rng.integers(100, 2000, fan_in),
            beta=64,
        )
        for fan_in, fan_out in ((OBS_DIM, HIDDEN), (HIDDEN, ACT_DIM))
    ]
    encoder = Encoder(src=np.arange(OBS_DIM), gain=40 << 8)
    decoder = Decoder(dst=np.arange(ACT_DIM), w=1, shift=2)
    chain = Chain(layers, encoder, decoder, OBS_DIM, ACT_DIM, ticks_per_step=TICKS)
    return map_chain(chain, get_profile(profile_name))


def expect(condition: bool, sentence: str) -> None:
    if not condition:
        raise CheckFailed(sentence)


def run_steps(client: Any, inputs: np.ndarray) -> np.ndarray:
    return np.array([np.asarray(client.step(x)["outputs"]) for x in inputs])


# --- the checks, in order (later ones rely on the image flashed by earlier ones) -------------


def check_hello(s: Suite) -> str:
    hello = s.client.hello()
    expect(hello["protocol"] == PROTOCOL_VERSION, f"protocol {hello['protocol']} is not ours.")
    s.profile = hello["profile"]
    return f"{hello['board_id']} {hello['firmware']}, profile {s.profile}"


def check_status(s: Suite) -> str:
    status = s.client.status()
    expect(status["state"] in ("idle", "ready", "running", "fault"), "STATUS has no valid state.")
    expect(isinstance(status["counters"], dict), "STATUS carries no counters.")
    return f"state {status['state']}"


def check_flash(s: Suite) -> str:
    s.board_image = conformance_image(s.profile)
    s.image = pack_tables(s.board_image)
    result = s.client.flash(s.image)
    expect(result.size == len(s.image), "the board holds an image of another size.")
    return f"{result.size} bytes, slot {result.slot}, Hash of data verified."


def check_flash_resume(s: Suite) -> str:
    half = len(s.image) // 2
    begun = s.client.flash_begin(len(s.image), hashlib.sha256(s.image).digest())
    offset = begun["offset"]
    while offset < half:
        offset = s.client.flash_data(offset, s.image[offset : offset + 256])["offset"]
    result = s.client.flash(s.image)
    expect(result.resumed_from >= half, f"a second flash resumed at {result.resumed_from}.")
    expect(result.bytes_sent <= len(s.image) - half, "the resumed flash resent held bytes.")
    return f"resumed at byte {result.resumed_from} of {result.size}"


def check_boot(s: Suite) -> str:
    status = s.client.status()
    slot = 1 - status["active_slot"] if status["active_slot"] in (0, 1) else 0
    booted = None
    for candidate in (slot, 1 - slot):
        try:
            booted = s.client.boot(candidate)
        except Exception:  # noqa: BLE001 - the other slot may hold another image
            continue
        if booted["sha256"] == hashlib.sha256(s.image).digest():
            break
    expect(booted is not None, "neither slot boots.")
    expect(
        s.client.status()["sha256"] == hashlib.sha256(s.image).digest(),
        "STATUS does not report the flashed image as active.",
    )
    return f"slot {booted['slot']} active"


def check_step_matches_reference(s: Suite) -> str:
    rng = np.random.default_rng(1)
    s.inputs = rng.uniform(0.0, 3.0, (STEPS, OBS_DIM))
    engine = Engine(s.board_image)
    engine.learning = True
    s.reference = np.array([engine.step(x) for x in s.inputs])
    s.client.reset()
    s.client.learn(True)
    got = run_steps(s.client, s.inputs)
    expect(got.shape == s.reference.shape, f"STEP answered {got.shape} outputs.")
    expect(
        np.array_equal(got, s.reference),
        f"outputs differ from the spec's engine by up to {np.max(np.abs(got - s.reference)):g}.",
    )
    return f"{STEPS} steps bit-exact to firmware_sim"


def check_deterministic_reset(s: Suite) -> str:
    s.client.reset()
    again = run_steps(s.client, s.inputs)
    expect(np.array_equal(again, s.reference), "RESET does not give the same run again.")
    return "RESET repeats the run"


def check_learning_on_off(s: Suite) -> str:
    s.client.reset()
    s.client.learn(False)
    run_steps(s.client, s.inputs)
    frozen = np.asarray(s.client.read("traces", 0))
    expect(not frozen.any(), "traces changed with learning off.")
    s.client.reset()
    s.client.learn(True)
    run_steps(s.client, s.inputs)
    learned = np.asarray(s.client.read("traces", 0))
    expect(learned.any(), "traces never changed with learning on.")
    return f"traces: 0 with learning off, {int(np.count_nonzero(learned))} nonzero with it on"


def check_bad_input(s: Suite) -> str:
    try:
        s.client.step(np.zeros(OBS_DIM + 3))
    except RemoteError as error:
        detail = str(error)
    else:
        raise CheckFailed("a STEP with the wrong input size was accepted.")
    s.client.hello()
    return f"refused: {detail[:60]}"


def check_fault_injection(s: Suite) -> str:
    s.client.reset()
    s.client.learn(True)
    record = {
        "domain": "board",
        "kind": "dead-neuron",
        "target": {"core": 0},
        "magnitude": 1.0,
        "onset": 0,
        "duration": None,
        "seed": 0,
        "params": {},
    }
    s.client.inject_fault(record)
    try:
        status = s.client.status()
        expect(status["state"] == "fault", f"STATUS says {status['state']} under a fault.")
        run_steps(s.client, s.inputs[:5])
        counts = np.asarray(s.client.read("spikes", 0))
        expect(not counts.any(), "dead neurons spiked.")
    finally:
        s.client.clear_fault()
    return "all neurons of core 0 dead: no spikes"


def check_recovery(s: Suite) -> str:
    s.client.reset()
    healthy = run_steps(s.client, s.inputs)
    expect(np.array_equal(healthy, s.reference), "clearing faults does not restore the run.")
    s.client.reset(hard=True)
    deadline = time.monotonic() + 10
    while s.client.status()["state"] == "idle" and time.monotonic() < deadline:
        time.sleep(0.1)
    s.client.learn(True)
    rebooted = run_steps(s.client, s.inputs)
    expect(np.array_equal(rebooted, s.reference), "after a reboot the board runs differently.")
    return "faults cleared and a reboot both give the reference run"


def check_lossy_link(s: Suite) -> str:
    lossy = Client(
        LinkEmulator(s.client.transport, corrupt_rate=LOSSY_RATE, drop_rate=LOSSY_RATE, seed=0)
    )
    before = s.client.read("step_counters")
    slowest, misses = 0.0, 0
    for _ in range(LOSSY_REPEATS):
        s.client.reset()
        s.client.learn(True)
        got = []
        for x in s.inputs:
            started = time.monotonic()
            try:
                with lossy.deadline(LOSSY_DEADLINE):
                    got.append(np.asarray(lossy.step(x)["outputs"]))
            except DeadlineMissedError:
                misses += 1
            slowest = max(slowest, time.monotonic() - started)
        # a STEP run twice would change what the board learned, and every later output with it
        expect(
            len(got) < STEPS or np.array_equal(np.array(got), s.reference),
            "over the lossy link the outputs left the reference: a STEP ran twice.",
        )
    after = s.client.read("step_counters")
    executed, ticks = after["executed"] - before["executed"], after["ticks"] - before["ticks"]
    sent = LOSSY_REPEATS * STEPS
    expect(after["boot"] == before["boot"], "the board restarted during the lossy-link check.")
    expect(executed <= sent, f"the board executed {executed} STEPs of {sent} sent.")
    expect(ticks == TICKS * executed, f"{ticks} ticks for {executed} STEPs of {TICKS} ticks.")
    expect(
        slowest <= LOSSY_DEADLINE + LOSSY_SLACK,
        f"a STEP took {slowest * 1e3:.1f} ms against a {LOSSY_DEADLINE * 1e3:.0f} ms deadline.",
    )
    return (
        f"{sent} STEPs at {LOSSY_RATE:g} corruption and drop: {misses} missed, slowest "
        f"{slowest * 1e3:.1f} ms, {executed} executed once each ({ticks} ticks)"
    )


CHECKS: tuple[tuple[str, Callable[[Suite], str]], ...] = (
    ("hello", check_hello),
    ("status", check_status),
    ("flash", check_flash),
    ("flash resume", check_flash_resume),
    ("boot", check_boot),
    ("step matches reference", check_step_matches_reference),
    ("reset is deterministic", check_deterministic_reset),
    ("learning on/off", check_learning_on_off),
    ("bad input refused", check_bad_input),
    ("fault injection", check_fault_injection),
    ("lossy link", check_lossy_link),
    ("recovery", check_recovery),
)


@dataclass(frozen=True)
class Booted:
    """The image a board ran before the suite (``sha256`` None: none, or STATUS failed)."""

    slot: int | None
    sha256: bytes | None


def image_before(client: Any, allow_reflash: bool) -> Booted:
    """What the board runs now. A board without A/B slots loses it to the suite's test image,
    so that is refused unless ``allow_reflash``."""
    try:
        status, hello = client.status(), client.hello()
    except ProtocolError:
        return Booted(None, None)  # the hello check says what is wrong
    booted = Booted(status.get("active_slot"), status.get("sha256"))
    if booted.sha256 and "ab-slots" not in hello.get("capabilities", []) and not allow_reflash:
        raise DeployError(
            f"the board runs an image (sha256 {booted.sha256.hex()[:16]}...) that the suite's "
            "test image would overwrite, as it has no A/B slots; pass --allow-reflash and flash "
            "your image again afterwards."
        )
    return booted


def restore(client: Any, before: Booted) -> tuple[bool, str]:
    """Boot the image the board ran before the suite, from the slot it still holds; the
    sentence says which image the board runs now."""
    if before.sha256 is None or before.slot is None:
        return True, "no image was booted before the suite; the board keeps its test image."
    name = f"slot {before.slot}, sha256 {before.sha256.hex()[:16]}..."
    try:
        booted = client.boot(before.slot)
    except ProtocolError as error:
        return False, f"could not boot the image of before ({name}): {error}; flash it again."
    if booted["sha256"] != before.sha256:
        return False, f"the image of before ({name}) is gone from its slot; flash it again."
    return True, f"restored the image booted before the suite ({name})."


def run_suite(
    client: Any,
    report: Callable[[str, bool, str], None] | None = None,
    allow_reflash: bool = False,
) -> dict:
    """Run every check in order; a failed check is recorded and the suite goes on where it can.
    The image booted before is booted again at the end (see :func:`restore`)."""

    before = image_before(client, allow_reflash)
    suite = Suite(client)
    results = []
    for name, check in CHECKS:
        try:
            detail, passed = check(suite), True
        except (CheckFailed, ProtocolError) as error:
            detail, passed = str(error), False
        results.append({"check": name, "passed": passed, "detail": detail})
        if report is not None:
            report(name, passed, detail)
        if not passed and name in ("hello", "flash", "boot"):
            break  # nothing after these can run
    failed = sum(not r["passed"] for r in results)
    restored, sentence = restore(client, before)
    if report is not None:
        report("restore", restored, sentence)
    return {
        "checks": results,
        "passed": len(results) - failed,
        "failed": failed,
        "skipped": len(CHECKS) - len(results),
        "restored": {"ok": restored, "detail": sentence},
        "exit_code": 1 if failed or len(results) < len(CHECKS) or not restored else 0,
    }
