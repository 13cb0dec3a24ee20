"""The board as a device: flash, boot, and one handler per message type behind the protocol.

``Board`` owns the emulated flash (``FlashStore``), the running ``Engine`` and the fault table;
the protocol's ``Responder`` turns frames into handler calls and answers, and its
``FlashReceiver`` runs the flashing state machine over our store. ``serve`` opens a pty, a TCP
socket or any pyserial URL and answers requests until stopped; the first line it prints is the
port to connect to.

The board never dies on bad input: handlers refuse with ``RequestRejected`` (a NAK with a code
and a sentence), and the responder turns anything else into NAK ``INTERNAL``.

Every boot of an image (power-on, BOOT, hard RESET) draws a fresh random boot id; HELLO and every
STEP answer carry it, and a STEP answer also carries the engine's counters since that boot (STEPs
executed, ticks run), so a host can tell a restarted board from a slow one and check that each
STEP ran once: a retried STEP is answered from the responder's cache and never runs again.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from firmware_sim.engine import Engine
from firmware_sim.errors import BoardError, FlashError
from firmware_sim.faults import Fault
from firmware_sim.flash import FlashStore
from firmware_sim.profiles import Profile, get_profile
from firmware_sim.tables_io import tables_from_image
from protocol import numeric
from protocol.board import BOARD_MAX_PAYLOAD, FlashReceiver, Responder
from protocol.errors import MessageError, RequestRejected
from protocol.framing import FrameDecoder
from protocol.messages import PROTOCOL_VERSION, ErrorCode, Message, MessageType

log = logging.getLogger(__name__)

FIRMWARE = "firmware_sim 0.1"
READABLE = ("weights", "traces", "v_mem", "counters", "faults", "spikes", "image", "step_counters")


class Board:
    """One emulated board: flash in ``flash_dir``, a profile, optionally a public key."""

    def __init__(
        self,
        flash_dir: str | Path,
        profile: Profile | str = "tianjic",
        public_key: Any = None,
        board_id: str = "glocal-board",
        max_payload: int = BOARD_MAX_PAYLOAD,
        startup_faults: list[Fault] | None = None,
        log_session: bool = False,
    ) -> None:
        self.startup_faults = list(startup_faults or [])
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self.public_key = public_key
        self.board_id = board_id
        self.store = FlashStore(flash_dir)
        # a board of its own (`glocal board`) logs its session; one inside a host process is quiet
        self.responder = (SessionLog if log_session else Responder)(max_payload=max_payload)
        self.flash = FlashReceiver(self.store, self.check_image, max_chunk=max_payload - 1024)
        self.flash.register(self.responder)
        handlers: dict[MessageType, Callable[[dict[str, Any]], dict[str, Any]]] = {
            MessageType.HELLO: self.hello,
            MessageType.STATUS: self.status,
            MessageType.BOOT: self.boot,
            MessageType.ERASE: self.erase,
            MessageType.RESET: self.reset,
            MessageType.STEP: self.step,
            MessageType.READ: self.read,
            MessageType.FAULT: self.fault,
            MessageType.LEARN: self.learn,
        }
        for kind, handler in handlers.items():
            self.responder.register(kind, handler)
        self.engine: Engine | None = None
        self.active_slot: int | None = None
        self.active_sha256: bytes | None = None
        self.faults: dict[int, Fault] = {}
        self._next_fault_id = 1
        self.boot_id = secrets.randbits(32)
        self.boot_from_flash()

    # ----------------------------------------------------------------- images
    def check_image(self, data: bytes) -> None:
        """Decode and design-rule check (FlashReceiver runs this before committing)."""
        Engine(tables_from_image(data, self.public_key), self.profile)

    def boot_from_flash(self) -> bool:
        """Boot the active slot's image if there is a good one; stay idle otherwise."""
        found = self.store.active_image()
        if found is None:
            return False
        slot, data = found
        try:
            self._start(slot, data)
        except BoardError as error:
            log.warning("active slot %d does not boot: %s", slot, error)
            return False
        return True

    def _start(self, slot: int, data: bytes) -> None:
        engine = Engine(tables_from_image(data, self.public_key), self.profile)
        learning = self.engine.learning if self.engine is not None else False
        self.engine, self.active_slot = engine, slot
        self.engine.learning = learning
        self.boot_id = secrets.randbits(32)
        self.active_sha256 = hashlib.sha256(data).digest()
        self.faults, self._next_fault_id = {}, 1
        for fault in self.startup_faults:
            try:
                self._add_fault(fault)
            except BoardError as error:  # a CLI fault that does not fit this image
                log.warning("fault %s not applied: %s", fault.kind, error)

    def _add_fault(self, fault: Fault) -> int:
        self._require_engine().inject(fault)
        fault_id, self._next_fault_id = self._next_fault_id, self._next_fault_id + 1
        self.faults[fault_id] = fault
        return fault_id

    def _require_engine(self) -> Engine:
        if self.engine is None:
            raise RequestRejected(ErrorCode.NO_IMAGE, "no image is booted; flash and BOOT first.")
        return self.engine

    # --------------------------------------------------------------- handlers
    def hello(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "board_id": self.board_id,
            "profile": self.profile.name,
            "firmware": FIRMWARE,
            "protocol": PROTOCOL_VERSION,
            "capabilities": ["flash", "plasticity", "faults", "ab-slots"]
            + (["signed-images"] if self.public_key else []),
            "max_payload": self.responder.max_payload,
            "boot": self.boot_id,
            "cores": self.profile.n_cores,
            "axons_per_core": self.profile.axons_per_core,
            "neurons_per_core": self.profile.neurons_per_core,
        }

    def status(self, body: dict[str, Any]) -> dict[str, Any]:
        engine = self.engine
        active = engine.active_faults() if engine is not None else []
        if engine is None:
            state = "idle"
        elif active:
            state = "fault"
        else:
            state = "running" if engine.steps else "ready"
        return {
            "state": state,
            "active_slot": self.active_slot,
            "learning": bool(engine and engine.learning),
            "counters": self.counters(),
            "faults": [
                {
                    "fault_id": i,
                    **f.to_dict(),
                    "active": f in active,
                }
                for i, f in self.faults.items()
            ],
            "sha256": self.active_sha256,
        }

    def counters(self) -> dict[str, int]:
        frames = asdict(self.responder.decoder.counters)
        out = {f"link_{k}": int(v) for k, v in frames.items()}
        out.update({f"requests_{k}": int(v) for k, v in asdict(self.responder.counters).items()})
        out["flash_bytes_written"] = self.store.bytes_written
        if self.engine is not None:
            tel = self.engine.telemetry
            tel.bad_frames = int(frames["bad_frames"] + frames["oversized"])
            summary = tel.to_dict(self.engine.core_ids)
            spikes = summary.pop("spikes")
            out.update({k: int(v) for k, v in summary.items()})
            out["spikes"] = sum(spikes.values())
        return out

    def boot(self, body: dict[str, Any]) -> dict[str, Any]:
        slot = body["slot"]
        if slot not in (0, 1):
            raise RequestRejected(ErrorCode.BAD_REQUEST, "slot must be 0 (A) or 1 (B).")
        data = self.store.slot_image(slot)
        if data is None:
            raise RequestRejected(ErrorCode.NO_IMAGE, f"slot {slot} is empty; flash it first.")
        try:
            self._start(slot, data)
        except BoardError as error:
            raise RequestRejected(ErrorCode.IMAGE_REJECTED, str(error)) from None
        # the pointer moves only now: the image decoded and passed every rule
        digest = self.store.activate(slot)
        return {"slot": slot, "sha256": digest}

    def erase(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            self.store.erase(body["slot"])
        except FlashError as error:
            raise RequestRejected(ErrorCode.BAD_STATE, str(error)) from None
        return {"slot": body["slot"]}

    def reset(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("hard"):
            self.engine = None
            self.active_slot = self.active_sha256 = None
            self.boot_from_flash()
        elif self.engine is not None:
            self.engine.reset()
        return {}

    def step(self, body: dict[str, Any]) -> dict[str, Any]:
        engine = self._require_engine()
        inputs = body["inputs"]
        if inputs.dtype.kind not in "fiu" or inputs.shape != (engine.obs_dim,):
            raise RequestRejected(
                ErrorCode.BAD_REQUEST,
                f"STEP inputs must be {engine.obs_dim} numbers, got {inputs.dtype} {inputs.shape}.",
            )
        ticks = body.get("ticks")
        if ticks is not None and not 1 <= ticks <= numeric.MAX_TICKS_PER_STEP:
            raise RequestRejected(ErrorCode.BAD_REQUEST, "ticks must lie in 1..255.")
        try:
            outputs = engine.step(inputs, ticks)
        except BoardError as error:
            raise RequestRejected(ErrorCode.BAD_REQUEST, str(error)) from None
        return {
            "outputs": outputs,
            "step": engine.steps,
            "boot": self.boot_id,
            "executed": engine.telemetry.steps,
            "ticks": engine.telemetry.ticks,
        }

    def read(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["name"]
        if name not in READABLE:
            raise RequestRejected(
                ErrorCode.BAD_REQUEST, f"cannot read {name!r}; readable: {', '.join(READABLE)}."
            )
        if name == "counters":
            return {"value": self.counters()}
        engine = self._require_engine()
        if name == "faults":
            return {"value": [{"fault_id": i, **f.to_dict()} for i, f in self.faults.items()]}
        if name == "step_counters":  # small enough to get through a noisy link
            return {
                "value": {
                    "boot": self.boot_id,
                    "executed": engine.telemetry.steps,
                    "ticks": engine.telemetry.ticks,
                    "ticks_per_step": engine.ticks_per_step,
                }
            }
        if name == "image":
            return {
                "value": {
                    "slot": self.active_slot,
                    "sha256": self.active_sha256,
                    "profile": engine.profile.name,
                    "cores": engine.core_ids,
                    "meta": engine.image.meta,  # the host's provenance: checkpoint, trace unit
                }
            }
        per_core = {
            "weights": engine.read_weights,
            "traces": engine.read_traces,
            "v_mem": engine.read_membranes,
            "spikes": engine.read_counts,
        }[name]()
        if "core" not in body:
            return {"value": {str(core): value for core, value in per_core.items()}}
        if body["core"] not in per_core:
            raise RequestRejected(
                ErrorCode.BAD_REQUEST, f"core {body['core']} is not in the booted image."
            )
        return {"value": per_core[body["core"]]}

    def fault(self, body: dict[str, Any]) -> dict[str, Any]:
        engine = self._require_engine()
        if body["action"] == "inject":
            try:
                fault_id = self._add_fault(Fault.from_dict(body["record"]))
            except BoardError as error:
                raise RequestRejected(ErrorCode.BAD_REQUEST, str(error)) from None
            return {"active": sorted(self.faults), "fault_id": fault_id}
        fault_id = body.get("fault_id")
        if fault_id is None:
            engine.clear_faults()
            self.faults = {}
        elif fault_id not in self.faults:
            raise RequestRejected(ErrorCode.BAD_REQUEST, f"there is no fault {fault_id}.")
        else:
            engine.remove_fault(list(self.faults).index(fault_id))
            del self.faults[fault_id]
        return {"active": sorted(self.faults)}

    def learn(self, body: dict[str, Any]) -> dict[str, Any]:
        engine = self._require_engine()
        engine.learning = bool(body["enabled"])
        return {"enabled": engine.learning}


class SessionLog(Responder):
    """The protocol's responder with one INFO line per session event (HELLO, FLASH begin and
    end, BOOT, RESET, ERASE, FAULT, every refusal with its reason) and, at DEBUG, the
    hex of every frame in and out; STEP, READ, STATUS, LEARN and FLASH_DATA are too many to log."""

    def register(self, kind: MessageType, handler: Callable[[dict[str, Any]], Any]) -> None:
        def logged(body: dict[str, Any]) -> Any:
            result = handler(body)
            event = describe_event(kind, body, result)
            if event:
                log.info("%s", event)
            return result

        super().register(kind, logged)

    def feed(self, data: bytes) -> bytes:
        log.debug("<- %s", data.hex(" "))
        counters = self.decoder.counters
        dropped = counters.bad_frames + counters.oversized
        answers = super().feed(data)
        if counters.bad_frames + counters.oversized > dropped:
            log.info("refused a frame: bad COBS, CRC or size (dropped, no answer)")
        if answers:
            log.debug("-> %s", answers.hex(" "))
        return answers

    def answer(self, payload: bytes) -> bytes | None:
        naks = self.counters.naks
        frame = super().answer(payload)
        if frame and self.counters.naks > naks:
            try:
                kind = Message.loads(payload).type.name
            except MessageError:
                kind = "a malformed request"
            reason = Message.loads(FrameDecoder(self.max_payload).feed(frame)[0]).body["error"]
            log.info("refused %s: %s", kind, reason)
        return frame


def describe_event(kind: MessageType, body: dict[str, Any], result: dict[str, Any]) -> str | None:
    """The log line of one answered request, or None for the frequent ones."""
    if kind is MessageType.HELLO:
        return (
            f"HELLO: answered as {result['board_id']} ({result['firmware']}, {result['profile']})"
        )
    if kind is MessageType.FLASH_BEGIN:
        return (
            f"FLASH begin: {body['size']} bytes, sha256 {body['sha256'].hex()[:16]}..., "
            f"resuming at byte {result['offset']}"
        )
    if kind is MessageType.FLASH_END:
        return (
            f"FLASH end: {result['size']} bytes, sha256 {result['sha256'].hex()[:16]}... "
            f"verified, written to slot {result['slot']}"
        )
    if kind is MessageType.BOOT:
        return f"BOOT: slot {result['slot']}, sha256 {result['sha256'].hex()[:16]}..."
    if kind is MessageType.RESET:
        return "RESET: hard (reboot from flash)" if body.get("hard") else "RESET"
    if kind is MessageType.ERASE:
        return f"ERASE: slot {result['slot']}"
    if kind is MessageType.FAULT:
        if body["action"] == "inject":
            return f"FAULT: injected {body['record'].get('kind')} as fault {result['fault_id']}"
        return f"FAULT: cleared, active {result['active']}"
    return None


def serve(
    board: Board,
    port: str = "pty",
    baud: int = 921_600,
    announce: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> None:
    """Open ``port`` (``pty``, ``socket://127.0.0.1:PORT`` or a pyserial URL), announce the URL
    to connect to, then answer requests until ``stop`` is set."""
    from protocol.transport import PtyServer, SerialTransport, SocketServer

    if port == "pty":
        transport: Any = PtyServer()
    elif port.startswith("socket://"):
        host, _, number = port[len("socket://") :].rpartition(":")
        try:
            transport = SocketServer(host or "127.0.0.1", int(number))
        except ValueError:
            raise BoardError(
                f"cannot read the port in {port!r}; write socket://HOST:PORT."
            ) from None
    else:
        transport = SerialTransport(port, baud)
    transport.open()
    announce(getattr(transport, "url", port))
    try:
        board.responder.serve(transport, stop)
    finally:
        transport.close()
