"""The board side of the protocol: answer every request once, receive images transactionally.

A real board (``firmware_sim``) builds a :class:`Responder`, registers one handler per message
type it implements and plugs a :class:`SlotStore` into a :class:`FlashReceiver`; this module
does everything between bytes on the wire and those handlers:

* frames are decoded by a :class:`~protocol.framing.FrameDecoder`; bad frames are dropped and
  counted, and answered by one NAK with a nil seq (``MALFORMED``) per read that held any: like a
  CAN error frame, it tells the host at once that a request was damaged, so the host resends
  now instead of waiting out a timeout;
* a payload that passes its CRC but is not a valid request gets a NAK with an
  :class:`~protocol.messages.ErrorCode` and a sentence: never silence, never an exception out
  of :meth:`Responder.feed`;
* a request repeated with the same ``seq`` and the same bytes is answered from a cache without
  running its handler again, so retries are idempotent;
* ACK and NAK frames arriving at the board are ignored (answering them could ping-pong
  forever on a line that echoes).

Handlers take the request body (already checked against :data:`~protocol.messages.REQUESTS`)
and return the ACK body; to refuse, they raise :class:`~protocol.errors.RequestRejected` with a
code and a sentence. Any other exception becomes NAK ``INTERNAL`` and is logged: the board
stays up.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from protocol import framing
from protocol.errors import (
    BadBodyError,
    MessageError,
    ProtocolError,
    RequestRejected,
    UnknownTypeError,
    UnsupportedVersionError,
)
from protocol.messages import ErrorCode, Message, MessageType, ack, check_request, nak
from protocol.transport import Transport

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Mapping[str, Any] | None]

# What a board takes in one request frame unless it says otherwise in HELLO: room for a 32 KiB
# flash chunk with its envelope, small enough for a microcontroller's RAM.
BOARD_MAX_PAYLOAD = 40 * 1024
DEFAULT_MAX_CHUNK = 32 * 1024
_READ_PIECE = 64 * 1024


@dataclass
class ResponderCounters:
    """Telemetry of a :class:`Responder` (frame counters live in its decoder)."""

    requests: int = 0
    duplicates: int = 0
    naks: int = 0
    ignored: int = 0


class Responder:
    """Frames in, answer frames out; dispatches requests to handlers by message type."""

    def __init__(
        self,
        handlers: Mapping[MessageType, Handler] | None = None,
        *,
        max_payload: int = BOARD_MAX_PAYLOAD,
        cache_size: int = 16,
    ) -> None:
        self.max_payload = max_payload
        self.decoder = framing.FrameDecoder(max_payload)
        self.counters = ResponderCounters()
        self._handlers: dict[MessageType, Handler] = dict(handlers or {})
        self._cache: OrderedDict[int, tuple[bytes, bytes]] = OrderedDict()
        self._cache_size = cache_size

    def register(self, kind: MessageType, handler: Handler) -> None:
        """Answer requests of type ``kind`` with ``handler``."""
        if not kind.is_request:
            raise ProtocolError(f"{kind.name} is an answer, not a request; it has no handler.")
        self._handlers[kind] = handler

    def feed(self, data: bytes) -> bytes:
        """The answer frames for every request completed by ``data`` (may be empty), and one
        NAK with a nil seq if ``data`` completed any frame that failed its check."""
        bad = self.decoder.counters.bad_frames
        answers = b"".join(
            frame
            for frame in (self.answer(payload) for payload in self.decoder.feed(data))
            if frame
        )
        if self.decoder.counters.bad_frames > bad:
            self.counters.naks += 1
            answers += _BAD_FRAME_NAK
        return answers

    def answer(self, payload: bytes) -> bytes | None:
        """The answer frame for one payload that passed its CRC; None for a stray ACK/NAK."""
        try:
            request = Message.loads(payload)
        except MessageError as error:
            return self._frame(error.seq, payload, _nak_for(error))
        if not request.type.is_request:
            self.counters.ignored += 1
            return None
        cached = self._cache.get(request.seq) if request.seq is not None else None
        if cached is not None and cached[0] == payload:
            self.counters.duplicates += 1
            return cached[1]
        self.counters.requests += 1
        return self._frame(request.seq, payload, self._dispatch(request))

    def serve(
        self, transport: Transport, stop: threading.Event | None = None, poll: float = 0.05
    ) -> None:
        """Answer requests on ``transport`` until ``stop`` is set (or forever)."""
        while stop is None or not stop.is_set():
            data = transport.receive(1 << 16, poll)
            if data:
                answers = self.feed(data)
                if answers:
                    transport.send(answers)

    def _dispatch(self, request: Message) -> Message:
        seq, kind = request.seq, request.type
        try:
            check_request(request)
        except BadBodyError as error:
            return nak(seq, ErrorCode.BAD_REQUEST, str(error))
        handler = self._handlers.get(kind)
        if handler is None:
            return nak(seq, ErrorCode.NOT_SUPPORTED, f"this board does not implement {kind.name}.")
        try:
            result = handler(request.body)
        except RequestRejected as error:
            return nak(seq, error.code, str(error))
        except Exception as error:  # the board must outlive a bug in one handler
            log.exception("handler for %s failed", kind.name)
            return nak(seq, ErrorCode.INTERNAL, f"{kind.name} failed on the board: {error}")
        return ack(seq, result)

    def _frame(self, seq: int | None, payload: bytes, answer: Message) -> bytes:
        try:
            frame = framing.encode_frame(bytes(answer))
        except ProtocolError as error:
            answer = nak(seq, ErrorCode.TOO_LARGE, f"the answer cannot be sent: {error}")
            frame = framing.encode_frame(bytes(answer))
        if answer.type is MessageType.NAK:
            self.counters.naks += 1
        if seq is not None:
            self._cache[seq] = (payload, frame)
            self._cache.move_to_end(seq)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return frame


_BAD_FRAME_NAK = framing.encode_frame(
    bytes(nak(None, ErrorCode.MALFORMED, "a frame failed its check; send it again."))
)


def _nak_for(error: MessageError) -> Message:
    if isinstance(error, UnsupportedVersionError):
        code = ErrorCode.UNSUPPORTED_VERSION
    elif isinstance(error, UnknownTypeError):
        code = ErrorCode.UNKNOWN_TYPE
    else:
        code = ErrorCode.MALFORMED
    return nak(error.seq, code, str(error))


# --- flashing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Staging:
    """What the staging area holds: the image it is for and how many bytes of it arrived."""

    sha256: bytes
    size: int
    held: int


class SlotStore(Protocol):
    """Where a board keeps images: a staging area that fills up, and slots it commits to.

    A board with persistent storage keeps staging across restarts, which lets a host resume a
    flash after the board itself was reset.
    """

    #: Largest image the store can hold, in bytes.
    capacity: int

    def staging(self) -> Staging | None:
        """The image being received, or None."""
        ...

    def begin(self, sha256: bytes, size: int) -> None:
        """Start staging a new image (forgetting any other staged bytes)."""
        ...

    def write(self, offset: int, data: bytes) -> None:
        """Store ``data`` at ``offset``; offset always equals the bytes held so far."""
        ...

    def read(self, offset: int, size: int) -> bytes:
        """Staged bytes ``[offset, offset + size)``."""
        ...

    def commit(self) -> int:
        """Make the complete, verified staged image a slot's image; return the slot number."""
        ...


class FlashReceiver:
    """The board's flashing state machine over a :class:`SlotStore`.

    ``FLASH_BEGIN {size, sha256}`` answers the offset already held for that image (0 for a new
    one); ``FLASH_DATA {offset, data}`` appends at the held offset and answers the new one
    (chunks already held are acknowledged without writing); ``FLASH_END`` hashes the staged
    bytes, runs ``check`` (decode + design rules on a real board) and only then commits,
    answering the SHA-256 it computed. ``check`` refuses an image by raising; its message
    becomes the NAK's sentence.
    """

    def __init__(
        self,
        store: SlotStore,
        check: Callable[[bytes], None] | None = None,
        max_chunk: int = DEFAULT_MAX_CHUNK,
    ) -> None:
        self.store = store
        self.check = check
        self.max_chunk = max_chunk
        self._session = False

    def register(self, responder: Responder) -> None:
        """Let ``responder`` route FLASH_BEGIN, FLASH_DATA and FLASH_END here."""
        responder.register(MessageType.FLASH_BEGIN, self.begin)
        responder.register(MessageType.FLASH_DATA, self.data)
        responder.register(MessageType.FLASH_END, self.end)

    def begin(self, body: dict[str, Any]) -> dict[str, Any]:
        size, sha256 = body["size"], body["sha256"]
        if size == 0:
            raise RequestRejected(ErrorCode.BAD_REQUEST, "an image cannot be empty.")
        if size > self.store.capacity:
            raise RequestRejected(
                ErrorCode.TOO_LARGE,
                f"image of {size} bytes does not fit the {self.store.capacity}-byte slot.",
            )
        staged = self.store.staging()
        if staged is None or staged.sha256 != sha256 or staged.size != size:
            self.store.begin(sha256, size)
            staged = Staging(sha256, size, 0)
        self._session = True
        return {"offset": staged.held, "max_chunk": self.max_chunk}

    def data(self, body: dict[str, Any]) -> dict[str, Any]:
        staged = self._staged()
        offset, chunk = body["offset"], body["data"]
        end = offset + len(chunk)
        if len(chunk) > self.max_chunk:
            raise RequestRejected(
                ErrorCode.TOO_LARGE, f"chunk of {len(chunk)} bytes exceeds {self.max_chunk}."
            )
        if offset > staged.held:
            raise RequestRejected(
                ErrorCode.BAD_OFFSET,
                f"chunk starts at {offset} but the board holds {staged.held} bytes; "
                f"resume from {staged.held}.",
            )
        if end > staged.size:
            raise RequestRejected(
                ErrorCode.BAD_OFFSET, f"chunk ends at {end}, past the image size {staged.size}."
            )
        if end > staged.held:
            self.store.write(staged.held, chunk[staged.held - offset :])
        return {"offset": max(end, staged.held)}

    def end(self, body: dict[str, Any]) -> dict[str, Any]:
        staged = self._staged()
        if staged.held < staged.size:
            raise RequestRejected(
                ErrorCode.INCOMPLETE,
                f"the board holds {staged.held} of {staged.size} bytes; send the rest first.",
            )
        digest = hashlib.sha256()
        for start in range(0, staged.size, _READ_PIECE):
            digest.update(self.store.read(start, min(_READ_PIECE, staged.size - start)))
        computed = digest.digest()
        self._session = False
        if computed != staged.sha256:
            self.store.begin(staged.sha256, staged.size)  # never resume onto bad bytes
            raise RequestRejected(
                ErrorCode.HASH_MISMATCH,
                f"the {staged.size} bytes held hash to {computed.hex()[:16]}..., not "
                f"{staged.sha256.hex()[:16]}...; they were discarded, flash again.",
            )
        if self.check is not None:
            try:
                self.check(self.store.read(0, staged.size))
            except Exception as error:  # the check speaks for the board's own rules
                self.store.begin(staged.sha256, staged.size)
                raise RequestRejected(ErrorCode.IMAGE_REJECTED, str(error)) from None
        slot = self.store.commit()
        return {"sha256": computed, "size": staged.size, "slot": slot}

    def _staged(self) -> Staging:
        staged = self.store.staging()
        if not self._session or staged is None:
            raise RequestRejected(
                ErrorCode.NO_FLASH_SESSION, "no flash in progress; send FLASH_BEGIN first."
            )
        return staged


class MemorySlotStore:
    """A :class:`SlotStore` in RAM with ``slots`` slots; commits go to the least recent one."""

    def __init__(self, capacity: int = 4 << 20, slots: int = 2) -> None:
        self.capacity = capacity
        self.slots: list[bytes | None] = [None] * slots
        self.bytes_written = 0
        self._staging: Staging | None = None
        self._data = bytearray()
        self._next_slot = 0

    def staging(self) -> Staging | None:
        return self._staging

    def begin(self, sha256: bytes, size: int) -> None:
        self._staging = Staging(sha256, size, 0)
        self._data = bytearray()

    def write(self, offset: int, data: bytes) -> None:
        staged = self._require()
        if offset != staged.held or offset + len(data) > staged.size:
            raise ProtocolError(f"write at {offset} does not continue staging at {staged.held}.")
        self._data += data
        self.bytes_written += len(data)
        self._staging = Staging(staged.sha256, staged.size, staged.held + len(data))

    def read(self, offset: int, size: int) -> bytes:
        return bytes(self._data[offset : offset + size])

    def commit(self) -> int:
        self._require()
        slot = self._next_slot
        self.slots[slot] = bytes(self._data)
        self._next_slot = (slot + 1) % len(self.slots)
        self._staging, self._data = None, bytearray()
        return slot

    def _require(self) -> Staging:
        if self._staging is None:
            raise ProtocolError("nothing is being staged.")
        return self._staging
