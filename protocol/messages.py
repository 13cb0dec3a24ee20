"""Messages: one msgpack map per frame payload, one answer per request.

Every payload is a msgpack map with exactly these keys::

    {"v": 1, "s": seq (uint32 or nil), "t": type (uint8), "b": body (map)}

The keys are one letter each because every byte counts on a noisy link: at 1% byte errors a
frame survives with probability 0.99**length. ``v`` is :data:`PROTOCOL_VERSION`. The seq is
chosen by the host and copied into the answer; a request repeated with the same seq and the
same bytes is a retry, and the board answers it from its cache without doing it again. The
type is a :class:`MessageType`; requests go host to board, and the board answers each with
exactly one ACK (body = the result) or NAK (body = ``{"code": ErrorCode, "error": sentence}``).
The seq is nil only in a NAK to a request whose seq could not be read. Numpy arrays in bodies
use the codec of :mod:`protocol.codec`.

:data:`REQUESTS` and :data:`ANSWERS` are the body schemas: the fields each request needs and
the least each ACK must hold. Extra fields are allowed (and ignored) for forward compatibility,
and fields added since version 1 are optional (a STEP answer's ``boot``, ``executed`` and
``ticks``), so boards of either age speak the same version.
``docs/protocol.md`` describes the same tables for board builders; keep the two in step.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocol import codec
from protocol.errors import BadBodyError, MessageError, UnknownTypeError, UnsupportedVersionError

PROTOCOL_VERSION = 1
SEQ_LIMIT = 1 << 32
SHA256_SIZE = 32


class MessageType(enum.IntEnum):
    """Message types; 0x40 and up are answers, the rest requests (all fit one msgpack byte)."""

    HELLO = 0x01
    STATUS = 0x02
    FLASH_BEGIN = 0x10
    FLASH_DATA = 0x11
    FLASH_END = 0x12
    BOOT = 0x13
    ERASE = 0x14
    RESET = 0x20
    STEP = 0x21
    READ = 0x22
    FAULT = 0x23
    LEARN = 0x24
    ACK = 0x40
    NAK = 0x41

    @property
    def is_request(self) -> bool:
        return self < MessageType.ACK


class ErrorCode(enum.IntEnum):
    """Codes a NAK carries; the sentence next to the code says the details."""

    MALFORMED = 1  # not a valid message envelope (not a map, missing keys, bad seq)
    UNSUPPORTED_VERSION = 2
    UNKNOWN_TYPE = 3
    BAD_REQUEST = 4  # body fields missing, of the wrong type, or out of range
    NOT_SUPPORTED = 5  # a known request this board does not implement
    NO_FLASH_SESSION = 6  # FLASH_DATA or FLASH_END without FLASH_BEGIN
    BAD_OFFSET = 7  # FLASH_DATA beyond what the board holds
    TOO_LARGE = 8  # an image or answer larger than the board can hold or send
    INCOMPLETE = 9  # FLASH_END before every byte arrived
    HASH_MISMATCH = 10  # the staged bytes do not hash to the announced SHA-256
    IMAGE_REJECTED = 11  # the image arrived intact but failed decoding or design rules
    NO_IMAGE = 12  # BOOT of an empty slot, STEP or READ with nothing booted
    BAD_STATE = 13  # the request is valid but not now (e.g. ERASE of the running slot)
    INTERNAL = 14  # the board failed while handling a valid request (a firmware bug)


# --- body schemas ------------------------------------------------------------------------------


def _is_uint(value: Any) -> bool:
    return type(value) is int and value >= 0


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "uint": ("a non-negative integer", _is_uint),
    "int": ("an integer", lambda v: type(v) is int),
    "number": ("a finite number", _is_number),
    "bool": ("true or false", lambda v: type(v) is bool),
    "str": ("a string", lambda v: type(v) is str),
    "bytes": ("binary (msgpack bin)", lambda v: type(v) is bytes),
    "sha256": ("32 bytes of SHA-256", lambda v: type(v) is bytes and len(v) == SHA256_SIZE),
    "array": ("an array (ext type 1)", lambda v: isinstance(v, np.ndarray)),
    "map": ("a map", lambda v: isinstance(v, dict)),
    "list": ("a list", lambda v: isinstance(v, list)),
    "uint|nil": ("a non-negative integer or nil", lambda v: v is None or _is_uint(v)),
    "number|nil": ("a finite number or nil", lambda v: v is None or _is_number(v)),
    "map|str": ("a map or a string", lambda v: isinstance(v, dict | str)),
    "onset": (
        "a non-negative integer or [low, high]",
        lambda v: _is_uint(v) or (isinstance(v, list) and len(v) == 2 and all(map(_is_uint, v))),
    ),
    "any": ("any value", lambda v: True),
}


@dataclass(frozen=True)
class Field:
    """One body field: its kind (a key of :data:`KINDS`), whether it must be there, and why."""

    kind: str
    doc: str
    required: bool = True


T = MessageType
REQUESTS: dict[MessageType, dict[str, Field]] = {
    T.HELLO: {},
    T.STATUS: {},
    T.FLASH_BEGIN: {
        "size": Field("uint", "image size in bytes"),
        "sha256": Field("sha256", "SHA-256 of the whole image"),
    },
    T.FLASH_DATA: {
        "offset": Field("uint", "where ``data`` starts in the image"),
        "data": Field("bytes", "the image bytes from ``offset``"),
    },
    T.FLASH_END: {},
    T.BOOT: {"slot": Field("uint", "slot to boot from (A = 0, B = 1)")},
    T.ERASE: {"slot": Field("uint", "slot to erase")},
    T.RESET: {
        "hard": Field("bool", "true: reboot the board; false/absent: reset network state", False)
    },
    T.STEP: {
        "inputs": Field("array", "one control step of inputs, shape (n_inputs,)"),
        "ticks": Field("uint", "ticks to run; absent: the image's ticks per step", False),
    },
    T.READ: {
        "name": Field("str", "what to read: weights, traces, v_mem, counters, ..."),
        "core": Field("uint", "which core, for per-core state", False),
    },
    T.FAULT: {
        "action": Field("str", '"inject" or "clear"'),
        "record": Field("map", "the fault record to inject (see fault records)", False),
        "fault_id": Field("uint", "the fault to clear; absent with clear: clear all", False),
    },
    T.LEARN: {"enabled": Field("bool", "on-chip learning on (true) or off (false)")},
}

ANSWERS: dict[MessageType, dict[str, Field]] = {
    T.HELLO: {
        "board_id": Field("str", "this board's identity"),
        "profile": Field("str", "name of the board profile (resource limits)"),
        "firmware": Field("str", "firmware version"),
        "protocol": Field("uint", "protocol version spoken"),
        "capabilities": Field("list", "names of optional features (strings)"),
        "max_payload": Field("uint", "largest frame payload the board accepts, in bytes"),
        "boot": Field("uint", "boot id: changes whenever the board boots an image", False),
    },
    T.STATUS: {
        "state": Field("str", '"idle" (no image booted), "ready", "running" or "fault"'),
        "active_slot": Field("uint|nil", "booted slot, nil if none"),
        "learning": Field("bool", "on-chip learning on"),
        "counters": Field("map", "telemetry counters (name -> integer)"),
    },
    T.FLASH_BEGIN: {
        "offset": Field("uint", "bytes of this image the board already holds: resume here"),
        "max_chunk": Field("uint", "largest ``data`` the board takes in one FLASH_DATA"),
    },
    T.FLASH_DATA: {"offset": Field("uint", "bytes held now: where the next chunk starts")},
    T.FLASH_END: {
        "sha256": Field("sha256", "SHA-256 the board computed over the bytes it holds"),
        "size": Field("uint", "bytes it holds"),
        "slot": Field("uint", "slot the image was committed to"),
    },
    T.BOOT: {
        "slot": Field("uint", "slot now running"),
        "sha256": Field("sha256", "SHA-256 of the image booted"),
    },
    T.ERASE: {"slot": Field("uint", "slot erased")},
    T.RESET: {},
    T.STEP: {
        "outputs": Field("array", "decoded outputs of this step, shape (n_outputs,)"),
        "step": Field("uint", "steps run since boot or reset"),
        "boot": Field("uint", "boot id, as in HELLO: a change means the board restarted", False),
        "executed": Field("uint", "STEPs executed since boot, this one included", False),
        "ticks": Field("uint", "ticks run since boot, this step's included", False),
    },
    T.READ: {"value": Field("any", "the state read: an array, a number or a map")},
    T.FAULT: {
        "active": Field("list", "ids of the faults active after this request"),
        "fault_id": Field("uint", "id given to an injected fault", False),
    },
    T.LEARN: {"enabled": Field("bool", "learning state now")},
}

# The shared fault record of docs/faults.md; the board validates its own kinds and targets.
FAULT_RECORD: dict[str, Field] = {
    "domain": Field("str", '"robot", "board" or "link"'),
    "kind": Field("str", "what breaks; each domain defines its kinds"),
    "target": Field(
        "map|str", 'where it breaks: {"core": 3, "neuron": 17}, "core=3", "all"', False
    ),
    "magnitude": Field("number|nil", "how badly, in the kind's units; nil: kind has none", False),
    "onset": Field("onset", "control step it starts at, or a [low, high] window", False),
    "duration": Field("uint|nil", "steps it lasts; nil: until cleared", False),
    "seed": Field("int", "seed for every random choice the fault makes", False),
}
FAULT_ACTIONS = ("inject", "clear")


def check_fields(what: str, body: Mapping[str, Any], schema: Mapping[str, Field]) -> None:
    """Raise :class:`BadBodyError` naming the first field of ``body`` that breaks ``schema``."""
    for name, spec in schema.items():
        if name not in body:
            if spec.required:
                raise BadBodyError(f"{what} needs field '{name}' ({spec.doc}).")
            continue
        description, accepts = KINDS[spec.kind]
        if not accepts(body[name]):
            got = type(body[name]).__name__
            raise BadBodyError(f"{what} field '{name}' must be {description}, got {got}.")


def check_request(message: Message) -> None:
    """Raise :class:`BadBodyError` if ``message``'s body does not fit its request schema."""
    name = message.type.name
    check_fields(name, message.body, REQUESTS[message.type])
    if message.type is T.FAULT:
        action = message.body["action"]
        if action not in FAULT_ACTIONS:
            raise BadBodyError(f"FAULT action must be one of {FAULT_ACTIONS}, got {action!r}.")
        if action == "inject":
            if "record" not in message.body:
                raise BadBodyError("FAULT inject needs field 'record'.")
            check_fields("fault record", message.body["record"], FAULT_RECORD)


def check_answer(request: MessageType, body: Mapping[str, Any]) -> None:
    """Raise :class:`BadBodyError` if an ACK ``body`` lacks what ``request``'s answer must hold."""
    check_fields(f"answer to {request.name}", body, ANSWERS[request])


# --- the envelope ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One message. ``bytes(message)`` is its payload; :meth:`loads` reads one back."""

    type: MessageType
    seq: int | None
    body: dict[str, Any] = field(default_factory=dict)
    version: int = PROTOCOL_VERSION

    def __bytes__(self) -> bytes:
        return codec.packb({"v": self.version, "s": self.seq, "t": int(self.type), "b": self.body})

    @classmethod
    def loads(cls, payload: bytes) -> Message:
        """The message in ``payload``; a :class:`MessageError` subclass if it is not one."""
        try:
            value = codec.unpackb(payload)
        except codec.DECODE_ERRORS as error:
            raise MessageError(f"payload is not valid msgpack ({error}).") from None
        if not isinstance(value, dict):
            raise MessageError("payload must be a msgpack map.")
        seq = value.get("s")
        if seq is not None and not (type(seq) is int and 0 <= seq < SEQ_LIMIT):
            raise MessageError("seq must be an unsigned 32-bit integer.")
        missing = {"v", "s", "t", "b"} - value.keys()
        if missing:
            raise MessageError(f"message lacks {sorted(missing)}.", seq)
        if value["v"] != PROTOCOL_VERSION:
            raise UnsupportedVersionError(
                f"protocol version {value['v']!r} is not supported; this side speaks "
                f"{PROTOCOL_VERSION}.",
                seq,
            )
        try:
            kind = MessageType(value["t"])
        except (ValueError, TypeError):
            raise UnknownTypeError(f"message type {value['t']!r} is unknown.", seq) from None
        body = value["b"]
        if not isinstance(body, dict):
            raise MessageError("body must be a map.", seq)
        if seq is None and kind is not T.NAK:
            raise MessageError("only a NAK may have a nil seq.")
        return cls(kind, seq, body, PROTOCOL_VERSION)


def ack(seq: int | None, result: Mapping[str, Any] | None = None) -> Message:
    """The ACK for request ``seq``."""
    return Message(T.ACK, seq, dict(result or {}))


def nak(seq: int | None, code: ErrorCode | int, sentence: str) -> Message:
    """The NAK for request ``seq``."""
    return Message(T.NAK, seq, {"code": int(code), "error": sentence})
