"""Errors of this package: one root type for bad input and expected failures, never bugs.

Every failure a user or a board can cause has its own subclass, so callers (and tests) can tell
them apart, and each carries one sentence that says what is wrong and what to do.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Root of every expected failure in ``protocol``; the CLI prints it as one sentence."""


# --- framing and messages -------------------------------------------------------------------


class FrameError(ProtocolError):
    """A frame cannot be built or read (too large, bad COBS, bad CRC)."""


class MessageError(ProtocolError):
    """A payload passed its CRC but is not a valid message; ``seq`` is set when it was readable."""

    def __init__(self, sentence: str, seq: int | None = None) -> None:
        super().__init__(sentence)
        self.seq = seq


class UnsupportedVersionError(MessageError):
    """The message carries a protocol version this side does not speak."""


class UnknownTypeError(MessageError):
    """The message type number is not one of the defined types."""


class BadBodyError(MessageError):
    """The body misses a field, has a field of the wrong type, or a value out of range."""


class ArrayCodecError(ProtocolError):
    """An encoded array is malformed: unknown dtype, bad shape, or sizes that do not add up."""


# --- link ------------------------------------------------------------------------------------


class TransportError(ProtocolError):
    """A port cannot be opened, read or written."""


class LinkTimeoutError(ProtocolError):
    """No answer arrived after every retry."""


class DeadlineMissedError(LinkTimeoutError):
    """No answer arrived before the request's deadline (a control step's period ran out)."""


class BoardResetError(ProtocolError):
    """The board's boot id changed: it restarted since this client last heard from it."""


class LinkFaultError(ProtocolError):
    """A link fault record is not one the link emulator can apply."""


class RemoteError(ProtocolError):
    """The board answered NAK; ``code`` is the error code, ``sentence`` the board's words."""

    def __init__(self, request: str, code: int, sentence: str) -> None:
        super().__init__(f"board refused {request}: {sentence} (error {code})")
        self.request = request
        self.code = code
        self.sentence = sentence


class FlashError(ProtocolError):
    """A flash did not end with the board holding exactly the bytes that were sent."""


class RequestRejected(ProtocolError):
    """Raised by a board-side handler to answer NAK with ``code`` and this sentence."""

    def __init__(self, code: int, sentence: str) -> None:
        super().__init__(sentence)
        self.code = int(code)


# --- core images -----------------------------------------------------------------------------


class ImageError(ProtocolError):
    """A core image cannot be packed, read or trusted."""


class ImageTruncatedError(ImageError):
    """The image ends before its last field."""


class ImageMagicError(ImageError):
    """The data does not start with the core-image magic."""


class ImageVersionError(ImageError):
    """The image uses a format version newer than this reader."""


class ImageTamperedError(ImageError):
    """The body does not hash to the SHA-256 the image carries."""


class ImageSignatureError(ImageError):
    """The signature is missing where a key requires one, or does not verify."""


class ImageSizeError(ImageError):
    """A size in the image (a section, an array) does not match the bytes behind it."""


class ImageInvalidError(ImageError):
    """The image decodes but its structure is wrong (missing table, shapes that disagree)."""


ROOT_ERROR = ProtocolError
