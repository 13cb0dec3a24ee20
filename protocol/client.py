"""The host side: requests with timeouts, retries with backoff, flashing with resume.

A request is sent as one frame and the client waits for the answer with the same ``seq``;
answers with another ``seq`` (late answers to earlier tries) are dropped. When none comes in
time, the *same bytes* go out again: the board answers a repeat from its cache, so a retry
never runs a request twice. The wait for try ``k`` is ``timeout * backoff**k`` (capped at
``max_timeout``) plus the time the request and its answer need on the wire when the link's
rate is known, so a 32 KiB chunk at 921,600 baud is not mistaken for a lost one.

Inside ``with client.deadline(seconds):`` every request must be answered by that moment: tries
go out every few round trips (the retry interval follows the measured round-trip time, as
TCP's retransmission timer does) for as long as the deadline allows, and then
:class:`DeadlineMissedError` says the request missed. That is how a control step keeps its
period over a lossy link.

Every STEP answer carries the board's boot id and its counters of STEPs executed and ticks run
since that boot; :attr:`Client.steps` keeps the host's side of that account, and a STEP answer
from a board whose boot id changed raises :class:`BoardResetError` instead of letting a run go
on against a fresh network state.

:meth:`Client.flash` works like MCUmgr's image upload: FLASH_BEGIN announces size and SHA-256
and the board answers how much of that image it already holds; chunks go out from there; and
FLASH_END makes the board hash what it holds and commit it only if the hash matches, after
which the client compares the board's SHA-256 with its own ("Hash of data verified.").
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from protocol import framing
from protocol.errors import (
    BadBodyError,
    BoardResetError,
    DeadlineMissedError,
    FlashError,
    LinkTimeoutError,
    MessageError,
    RemoteError,
)
from protocol.messages import SEQ_LIMIT, Message, MessageType, check_answer
from protocol.transport import Transport

log = logging.getLogger(__name__)

T = MessageType
Progress = Callable[[int, int], None]
_POLL = 0.005  # seconds per receive call: bounds how late a timeout is noticed
_ANSWER_ALLOWANCE = 64  # bytes assumed for an answer when sizing a timeout
_SILENCE, _DAMAGED = "silence", "damaged"  # why a try got no answer; only silence backs off
MIN_CHUNK = 16
_TRIES_PER_CHUNK = 2
_MIN_RETRY = 0.002  # seconds: the shortest retry interval under a deadline (a pty's jitter)


@dataclass(frozen=True)
class FlashResult:
    """How a flash went: what the board holds now and what it took to get it there."""

    size: int
    sha256: bytes
    slot: int
    resumed_from: int
    bytes_sent: int
    seconds: float
    retries: int


@dataclass
class ClientCounters:
    """What a :class:`Client` has done since it was made."""

    requests: int = 0
    retries: int = 0
    stale_answers: int = 0


@dataclass
class StepLedger:
    """The host's account of STEPs against the board's: ``sent`` and ``delivered`` count this
    client's STEP requests and the answers that came back; ``boot``, ``executed`` and ``ticks``
    are the board's boot id and its counters since that boot, from the latest answer (None
    until a board that reports them answers)."""

    sent: int = 0
    delivered: int = 0
    boot: int | None = None
    executed: int | None = None
    ticks: int | None = None


class RoundTrip:
    """A smoothed round-trip time and the retry interval it implies (RFC 6298's estimator:
    ``srtt + 4 * rttvar``, fed only by answers to first tries, floored at ``_MIN_RETRY``)."""

    def __init__(self, initial: float) -> None:
        self.srtt, self.rttvar = initial, initial / 2

    def update(self, sample: float) -> None:
        self.rttvar += (abs(self.srtt - sample) - self.rttvar) / 4
        self.srtt += (sample - self.srtt) / 8

    @property
    def retry_after(self) -> float:
        return max(_MIN_RETRY, self.srtt + 4 * self.rttvar)


class Client:
    """Talks to one board over an opened :class:`~protocol.transport.Transport`.

    ``seed`` fixes the first seq number (for reproducible tests); leave it None otherwise. Two
    clients with the same seed send identical first requests, and a board answers the second
    from its cache as a retry of the first.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        timeout: float = 0.25,
        retries: int = 8,
        backoff: float = 1.5,
        max_timeout: float = 2.0,
        max_payload: int = framing.MAX_PAYLOAD,
        seed: int | None = None,
    ) -> None:
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_timeout = max_timeout
        self.decoder = framing.FrameDecoder(max_payload)
        self.counters = ClientCounters()
        self.steps = StepLedger()
        self.round_trip = RoundTrip(_MIN_RETRY)
        self._deadline: float | None = None
        self._deadline_tries: int | None = None
        # A fresh starting seq per client keeps a board's answer cache from matching a request
        # of an earlier session that happened to reuse the same seq and bytes; starting below
        # 2**16 keeps seq a 3-byte msgpack integer for a long while.
        self._seq = random.Random(seed).randrange(1 << 16)

    # --- requests ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def deadline(self, seconds: float, tries: int | None = None) -> Iterator[None]:
        """Requests made inside must be answered within ``seconds`` from now, or raise
        :class:`DeadlineMissedError`; tries are then bounded by time, and by ``tries`` if given
        (``tries=1``: best effort, as telemetry is)."""
        outer, self._deadline = (self._deadline, self._deadline_tries), time.monotonic() + seconds
        self._deadline_tries = tries
        try:
            yield
        finally:
            self._deadline, self._deadline_tries = outer

    def request(
        self, kind: MessageType, body: Mapping[str, Any] | None = None, tries: int | None = None
    ) -> dict[str, Any]:
        """Send one request; return the ACK body, raise :class:`RemoteError` on NAK.

        ``tries`` (default: 1 + the client's ``retries``) bounds how often it is sent, unless a
        :meth:`deadline` bounds it by time.
        """
        deadline = self._deadline
        if deadline is not None:
            tries = tries or self._deadline_tries or SEQ_LIMIT  # time is the bound
        tries = self.retries + 1 if tries is None else tries
        seq = self._seq
        self._seq = (self._seq + 1) % SEQ_LIMIT
        frame = framing.encode_frame(bytes(Message(kind, seq, dict(body or {}))))
        self.counters.requests += 1
        wire_time = 0.0
        if self.transport.bytes_per_second:
            wire_time = (len(frame) + _ANSWER_ALLOWANCE) / self.transport.bytes_per_second
        started, silences, attempt = time.monotonic(), 0, 0
        while attempt < tries:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise DeadlineMissedError(
                    f"no answer to {kind.name} (seq {seq}) within its deadline "
                    f"({attempt} tries over {(now - started) * 1e3:.1f} ms)."
                )
            if attempt:
                self.counters.retries += 1
                log.debug("retry %d of %s (seq %d)", attempt, kind.name, seq)
            log.debug("-> %s seq %d: %s", kind.name, seq, frame[:64].hex(" "))
            self.transport.send(frame)
            wait = min(self.timeout * self.backoff**silences, self.max_timeout)
            if deadline is not None and attempt + 1 < tries:
                wait = min(wait, self.round_trip.retry_after)
            until = now + wait + wire_time
            answer = self._await(seq, until if deadline is None else min(until, deadline))
            if isinstance(answer, Message):
                if not attempt:  # Karn: a retried request's round trip is ambiguous
                    self.round_trip.update(time.monotonic() - now)
                return self._result(kind, answer)
            silences += answer == _SILENCE
            attempt += 1
        raise LinkTimeoutError(
            f"no answer to {kind.name} (seq {seq}) after {tries} tries over "
            f"{time.monotonic() - started:.2f} s; check the port and that the board is running."
        )

    def _await(self, seq: int, deadline: float) -> Message | str:
        """The answer to ``seq``; else _DAMAGED on a bad frame or a nil-seq NAK, or _SILENCE at
        ``deadline``. What had arrived by the deadline still counts (a host that was not
        scheduled in time, or a board in this process that answers inside ``send``)."""
        bad_before, damaged = self.decoder.counters.bad_frames, False
        while True:
            remaining = deadline - time.monotonic()
            data = self.transport.receive(1 << 16, min(max(remaining, 0.0), _POLL))
            for payload in self.decoder.feed(data) if data else ():
                try:
                    message = Message.loads(payload)
                except MessageError as error:
                    log.debug("dropped an answer that is not a message: %s", error)
                    continue
                if message.seq == seq and message.type in (T.ACK, T.NAK):
                    return message
                if message.seq is None and message.type is T.NAK:
                    damaged = True  # the board read a damaged frame: most likely this request
                else:
                    self.counters.stale_answers += 1
            if damaged or self.decoder.counters.bad_frames > bad_before:
                # Most likely our request or answer, damaged: ask again now instead of waiting
                # it out. The board answers a repeat from its cache, so this is safe if not.
                return _DAMAGED
            if remaining <= 0:
                return _SILENCE

    @staticmethod
    def _result(kind: MessageType, answer: Message) -> dict[str, Any]:
        body = answer.body
        if answer.type is T.NAK:
            code, sentence = body.get("code"), body.get("error")
            if type(code) is not int or type(sentence) is not str:
                raise BadBodyError(f"the board's NAK to {kind.name} lacks a code or a sentence.")
            raise RemoteError(kind.name, code, sentence)
        check_answer(kind, body)
        return body

    # --- typed requests ----------------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        """Board id, profile, firmware, protocol version, capabilities, max payload; the boot
        id it reports becomes the one later STEP answers must carry."""
        answer = self.request(T.HELLO)
        self.steps.boot = answer.get("boot")
        return answer

    def status(self) -> dict[str, Any]:
        """State, active slot, learning on/off, telemetry counters."""
        return self.request(T.STATUS)

    def flash_begin(self, size: int, sha256: bytes) -> dict[str, Any]:
        return self.request(T.FLASH_BEGIN, {"size": size, "sha256": sha256})

    def flash_data(self, offset: int, data: bytes) -> dict[str, Any]:
        return self.request(T.FLASH_DATA, {"offset": offset, "data": data})

    def flash_end(self) -> dict[str, Any]:
        return self.request(T.FLASH_END)

    def boot(self, slot: int) -> dict[str, Any]:
        """Boot the image in ``slot`` (a new boot: the board's boot id changes)."""
        self.steps.boot = None
        return self.request(T.BOOT, {"slot": slot})

    def erase(self, slot: int) -> dict[str, Any]:
        return self.request(T.ERASE, {"slot": slot})

    def reset(self, hard: bool = False) -> dict[str, Any]:
        """Reset the network state (``hard``: reboot the board, which changes its boot id)."""
        if hard:
            self.steps.boot = None
        return self.request(T.RESET, {"hard": hard})

    def step(self, inputs: np.ndarray, ticks: int | None = None) -> dict[str, Any]:
        """One control step: ``inputs`` in, the board's ``outputs`` (and counters) out.

        Raises :class:`BoardResetError` if the answer comes from another boot than the last one.
        """
        body: dict[str, Any] = {"inputs": np.asarray(inputs)}
        if ticks is not None:
            body["ticks"] = ticks
        self.steps.sent += 1
        answer = self.request(T.STEP, body)
        self.steps.delivered += 1
        boot, known = answer.get("boot"), self.steps.boot
        if boot is not None and known is not None and boot != known:
            raise BoardResetError(
                f"the board restarted (boot id {boot:08x}, was {known:08x}): its network state "
                "and what it learned are gone."
            )
        self.steps.boot = boot
        self.steps.executed, self.steps.ticks = answer.get("executed"), answer.get("ticks")
        return answer

    def read(self, name: str, core: int | None = None) -> Any:
        """A named piece of board state (weights, traces, counters ...)."""
        body: dict[str, Any] = {"name": name}
        if core is not None:
            body["core"] = core
        return self.request(T.READ, body)["value"]

    def inject_fault(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Inject a board fault record; the answer holds its ``fault_id``."""
        return self.request(T.FAULT, {"action": "inject", "record": dict(record)})

    def clear_fault(self, fault_id: int | None = None) -> dict[str, Any]:
        """Clear one fault, or all of them."""
        body: dict[str, Any] = {"action": "clear"}
        if fault_id is not None:
            body["fault_id"] = fault_id
        return self.request(T.FAULT, body)

    def learn(self, enabled: bool) -> dict[str, Any]:
        """Switch on-chip learning on or off."""
        return self.request(T.LEARN, {"enabled": enabled})

    # --- flashing ----------------------------------------------------------------------------

    def flash(
        self, image: bytes, progress: Progress | None = None, chunk_size: int = 4096
    ) -> FlashResult:
        """Send ``image`` to the board's staging area, resuming what it holds, and verify it."""
        started, retries_before = time.monotonic(), self.counters.retries
        size, sha256 = len(image), hashlib.sha256(image).digest()
        begun = self.flash_begin(size, sha256)
        offset = resumed_from = begun["offset"]
        if offset > size:
            raise FlashError(f"the board claims {offset} bytes of a {size}-byte image.")
        if offset:
            log.info("resuming at byte %d of %d (the board holds the rest)", offset, size)
        largest = max(MIN_CHUNK, min(chunk_size, begun["max_chunk"]))
        chunk, clean, sent = largest, 0, 0
        if progress:
            progress(offset, size)
        while offset < size:
            piece = image[offset : offset + chunk]
            retries = self.counters.retries
            # Long frames rarely survive a noisy link: a chunk that does not get through in a
            # few tries is halved, and clean runs double it again (multiplicative backoff).
            try:
                tries = _TRIES_PER_CHUNK if chunk > MIN_CHUNK else None
                held = self.request(T.FLASH_DATA, {"offset": offset, "data": piece}, tries)
            except LinkTimeoutError:
                if chunk == MIN_CHUNK:
                    raise
                chunk, clean = max(MIN_CHUNK, chunk // 2), 0
                continue
            held = held["offset"]
            sent += len(piece)
            if self.counters.retries > retries:
                chunk, clean = max(MIN_CHUNK, chunk // 2), 0
            else:
                clean += 1
                if clean >= 4:
                    chunk, clean = min(largest, chunk * 2), 0
            if not offset < held <= size:
                raise FlashError(f"the board answered offset {held} after a chunk at {offset}.")
            offset = held
            if progress:
                progress(offset, size)
        done = self.flash_end()
        if done["sha256"] != sha256 or done["size"] != size:
            raise FlashError(
                f"the board holds {done['size']} bytes hashing to {done['sha256'].hex()}, "
                f"not the {size} bytes hashing to {sha256.hex()} that were sent."
            )
        log.info("Hash of data verified.")
        return FlashResult(
            size=size,
            sha256=sha256,
            slot=done["slot"],
            resumed_from=resumed_from,
            bytes_sent=sent,
            seconds=time.monotonic() - started,
            retries=self.counters.retries - retries_before,
        )
