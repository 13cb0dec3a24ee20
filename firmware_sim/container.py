"""Bytes <-> ``BoardImage``: how the board reads an image out of flash.

The project's core-image container (magic, version, SHA-256, Ed25519 signature) belongs to
``protocol``. Until it lands, images travel here as one canonical msgpack map written with
``protocol.codec`` (arrays as the codec's typed ext values)::

    {"format": "glocal-board-image", "profile": str, "board": {...}, "cores": [{...}, ...],
     "meta": {...}}

A board configured with a public key refuses these images: they carry no signature.
Every value is checked before use; anything malformed is one ``ImageDecodeError`` sentence.
"""

from __future__ import annotations

from typing import Any

from firmware_sim.errors import BoardError
from firmware_sim.image import BoardImage

FORMAT = "glocal-board-image"


class ImageDecodeError(BoardError):
    """The bytes are not a board image this firmware can read."""


def image_to_bytes(image: BoardImage) -> bytes:
    from protocol import codec

    body = {
        "format": FORMAT,
        "profile": image.profile,
        "board": image.board,
        "cores": image.cores,
        "meta": image.meta,
    }
    return codec.packb(body, canonical=True)


def image_from_bytes(data: bytes, public_key: bytes | None = None) -> BoardImage:
    """Decode an image; with ``public_key`` set, only a verified signature is accepted."""
    from protocol import codec

    if public_key is not None:
        raise ImageDecodeError(
            "this board requires signed images and the image carries no signature."
        )
    try:
        body: Any = codec.unpackb(data)
    except codec.DECODE_ERRORS as error:
        raise ImageDecodeError(f"the image is not readable ({error}).") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ImageDecodeError("the data is not a glocal board image.")
    profile, board, cores = body.get("profile"), body.get("board"), body.get("cores")
    if not isinstance(profile, str) or not isinstance(board, dict) or not isinstance(cores, list):
        raise ImageDecodeError("the image lacks its profile, board section or core list.")
    if not all(isinstance(core, dict) for core in cores):
        raise ImageDecodeError("every core of the image must be a map of tables.")
    meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
    return BoardImage(profile, board, cores, meta)
