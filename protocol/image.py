"""Core images (``.glc``): a versioned, self-describing, hashed and optionally signed container.

A file is one msgpack map with five entries, always in this order::

    {"magic": "glocal-core-image", "format": 1, "body": bin, "sha256": bin(32),
     "signature": bin(64) | nil}

``body`` is the canonical msgpack (map keys sorted at every level) of::

    {"profile": str,                       # board profile the image needs
     "provenance": {"task": str, "seed": int, "git_revision": str, "created": str},
     "scales": {name: float},              # quantisation scales
     "encoder": {name: array}, "decoder": {name: array},
     "network": {name: scalar},            # ticks per step, reset mode, ...
     "cores": [{name: array | scalar}, ...],
     "meta": {...}}

``sha256`` is SHA-256 over the body bytes exactly as stored; ``signature`` is Ed25519 over
those 32 hash bytes. Arrays use :mod:`protocol.codec` (dtype, shape, raw little-endian bytes).
Each core table has at least the ints ``core_id``, ``n_axons``, ``n_neurons`` and an int8
array ``weights`` of shape ``(n_axons, n_neurons)`` (a synapse is a nonzero weight); every other
name belongs to the board spec (``docs/board-spec.md``) and is opaque here. Profile limits
(axons per core and so on) are design rules of ``firmware_sim``, not of this container.

Reading checks, in order, and refuses with its own error: the magic, the format version, that
nothing is cut off (no declared length runs past the end of the file), the hash, the signature
(when a key is given), every array size, and the structure above.
"""

from __future__ import annotations

import datetime
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol import codec
from protocol.errors import (
    ArrayCodecError,
    ImageError,
    ImageInvalidError,
    ImageMagicError,
    ImageSignatureError,
    ImageSizeError,
    ImageTamperedError,
    ImageTruncatedError,
    ImageVersionError,
)

MAGIC = "glocal-core-image"
FORMAT_VERSION = 1
ENVELOPE = ("magic", "format", "body", "sha256", "signature")
SECTIONS = ("profile", "provenance", "scales", "encoder", "decoder", "network", "cores", "meta")
CORE_INTS = ("core_id", "n_axons", "n_neurons")
SIGNATURE_SIZE = 64
# Every image starts with these bytes: a 5-entry map, then "magic": MAGIC.
_HEADER = b"\x85" + msgpack.packb("magic") + msgpack.packb(MAGIC)

PrivateKeyLike = Ed25519PrivateKey | bytes
PublicKeyLike = Ed25519PublicKey | bytes


@dataclass(frozen=True)
class Provenance:
    """Where an image came from: enough to rebuild it."""

    task: str
    seed: int
    git_revision: str
    created: str  # ISO 8601, UTC

    @classmethod
    def now(cls, task: str, seed: int, git_revision: str) -> Provenance:
        created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        return cls(task, seed, git_revision, created)


@dataclass(frozen=True)
class CoreImage:
    """Everything a board needs to run one network."""

    profile: str
    provenance: Provenance
    cores: tuple[dict[str, Any], ...]
    scales: dict[str, float] = field(default_factory=dict)
    encoder: dict[str, np.ndarray] = field(default_factory=dict)
    decoder: dict[str, np.ndarray] = field(default_factory=dict)
    network: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def sections(self) -> dict[str, Any]:
        """The body as plain values, one entry per section."""
        return {
            "profile": self.profile,
            "provenance": {
                "task": self.provenance.task,
                "seed": self.provenance.seed,
                "git_revision": self.provenance.git_revision,
                "created": self.provenance.created,
            },
            "scales": dict(self.scales),
            "encoder": dict(self.encoder),
            "decoder": dict(self.decoder),
            "network": dict(self.network),
            "cores": [dict(core) for core in self.cores],
            "meta": dict(self.meta),
        }


@dataclass(frozen=True)
class OpenedImage:
    """An image read from bytes, with what its envelope says about it."""

    image: CoreImage
    format: int
    sha256: bytes
    signature: str  # "unsigned", "signed, not verified" or "verified"
    size: int
    body: bytes


# --- packing -----------------------------------------------------------------------------------


def pack(image: CoreImage, signing_key: PrivateKeyLike | None = None) -> bytes:
    """The ``.glc`` bytes of ``image``, signed when ``signing_key`` is given."""
    validate(image)
    body = codec.packb(image.sections(), canonical=True)
    digest = hashlib.sha256(body).digest()
    signature = _private_key(signing_key).sign(digest) if signing_key is not None else None
    envelope = dict(zip(ENVELOPE, (MAGIC, FORMAT_VERSION, body, digest, signature), strict=True))
    return msgpack.packb(envelope, use_bin_type=True)


def unpack(data: bytes, public_key: PublicKeyLike | None = None) -> CoreImage:
    """The image in ``data``; with ``public_key``, only if it carries a valid signature."""
    return open_image(data, public_key).image


def open_image(data: bytes, public_key: PublicKeyLike | None = None) -> OpenedImage:
    """Read and check ``data``; every refusal is its own :class:`ImageError` subclass."""
    data = bytes(data)
    envelope = _read_envelope(data)
    body, digest, signature = envelope["body"], envelope["sha256"], envelope["signature"]
    if not isinstance(body, bytes) or not isinstance(digest, bytes) or len(digest) != 32:
        raise ImageInvalidError("the image envelope needs a binary body and a 32-byte SHA-256.")
    if hashlib.sha256(body).digest() != digest:
        raise ImageTamperedError(
            "the image body does not match its SHA-256: it was changed or damaged after packing."
        )
    status = _check_signature(digest, signature, public_key)
    try:
        sections = codec.unpackb(body)
    except ArrayCodecError as error:
        raise ImageSizeError(f"an array in the image lies about its size: {error}") from None
    except codec.DECODE_ERRORS as error:
        raise ImageInvalidError(f"the image body is not valid msgpack ({error}).") from None
    image = _from_sections(sections)
    validate(image)
    return OpenedImage(image, envelope["format"], digest, status, len(data), body)


def _read_envelope(data: bytes) -> dict[str, Any]:
    if not data.startswith(_HEADER):
        if _HEADER.startswith(data):
            raise ImageTruncatedError(
                f"the image ends after {len(data)} bytes, inside its header; the file was cut off."
            )
        raise ImageMagicError(f"this is not a glocal core image (it lacks the '{MAGIC}' magic).")
    # Read entry by entry so the version is judged before anything else, and cap every length
    # at the file size so a lying header cannot make us allocate.
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(data))
    unpacker.feed(data)
    unpacker.read_map_header()
    values: dict[str, Any] = {}
    try:
        for name in ENVELOPE:
            key = unpacker.unpack()
            if key != name:
                raise ImageInvalidError(f"the image envelope has {key!r} where '{name}' belongs.")
            start = unpacker.tell()
            declared, follow = _declared_bin_size(data, start), len(data) - start
            if declared > follow:
                raise ImageTruncatedError(
                    f"the image's '{name}' entry needs {declared} bytes but only {follow} "
                    "follow; the file was cut off (or that size is wrong)."
                )
            values[name] = unpacker.unpack()
            if name == "format":
                _check_version(values["format"])
    except msgpack.OutOfData:
        raise ImageTruncatedError(
            f"the image ends after {len(data)} bytes, before its '{_next(values)}' entry is "
            "complete; the file was cut off."
        ) from None
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise ImageInvalidError(f"the image envelope is not valid msgpack ({error}).") from None
    extra = len(data) - unpacker.tell()
    if extra:
        raise ImageSizeError(f"the image has {extra} stray bytes after its end.")
    return values


def _declared_bin_size(data: bytes, position: int) -> int:
    """The length a msgpack bin header at ``position`` declares (0 if there is none)."""
    width = {0xC4: 1, 0xC5: 2, 0xC6: 4}.get(data[position] if position < len(data) else 0)
    if width is None:
        return 0
    return int.from_bytes(data[position + 1 : position + 1 + width], "big")


def _next(values: Mapping[str, Any]) -> str:
    return ENVELOPE[min(len(values), len(ENVELOPE) - 1)]


def _check_version(version: Any) -> None:
    if type(version) is not int or version < 1:
        raise ImageInvalidError(f"the image format version {version!r} is not a version number.")
    if version > FORMAT_VERSION:
        raise ImageVersionError(
            f"the image uses format version {version}, newer than this reader "
            f"({FORMAT_VERSION}); update glocal to read it."
        )


def _check_signature(digest: bytes, signature: Any, public_key: PublicKeyLike | None) -> str:
    malformed = not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE
    if signature is not None and malformed:
        raise ImageSignatureError("the image signature is not 64 bytes of Ed25519.")
    if public_key is None:
        return "unsigned" if signature is None else "signed, not verified"
    if signature is None:
        raise ImageSignatureError("the image is unsigned but a signature is required.")
    try:
        _public_key(public_key).verify(signature, digest)
    except InvalidSignature:
        raise ImageSignatureError(
            "the image signature does not verify with the given public key."
        ) from None
    return "verified"


# --- structure ---------------------------------------------------------------------------------


def _from_sections(sections: Any) -> CoreImage:
    if not isinstance(sections, dict):
        raise ImageInvalidError("the image body must be a map of sections.")
    missing = [name for name in SECTIONS if name not in sections]
    if missing:
        raise ImageInvalidError(f"the image body lacks the section(s) {', '.join(missing)}.")
    provenance = sections["provenance"]
    if not isinstance(provenance, dict) or set(provenance) != {
        "task",
        "seed",
        "git_revision",
        "created",
    }:
        raise ImageInvalidError("provenance needs exactly task, seed, git_revision and created.")
    cores = sections["cores"]
    if not isinstance(cores, list):
        raise ImageInvalidError("the cores section must be a list of core tables.")
    for name in ("scales", "encoder", "decoder", "network", "meta"):
        if not isinstance(sections[name], dict):
            raise ImageInvalidError(f"the {name} section must be a map.")
    return CoreImage(
        profile=sections["profile"],
        provenance=Provenance(**provenance),
        cores=tuple(cores),
        scales=sections["scales"],
        encoder=sections["encoder"],
        decoder=sections["decoder"],
        network=sections["network"],
        meta=sections["meta"],
    )


def _is_scalar(value: Any) -> bool:
    return type(value) in (int, float, bool, str) or isinstance(value, np.generic)


def validate(image: CoreImage) -> None:
    """Raise :class:`ImageInvalidError` with an exact sentence if ``image`` is malformed."""
    if not isinstance(image.profile, str) or not image.profile:
        raise ImageInvalidError("the image needs the name of its board profile.")
    p = image.provenance
    if not (
        isinstance(p.task, str)
        and type(p.seed) is int
        and isinstance(p.git_revision, str)
        and isinstance(p.created, str)
    ):
        raise ImageInvalidError("provenance needs str task, int seed, str git_revision, created.")
    for name, scale in image.scales.items():
        if type(scale) not in (int, float) or not math.isfinite(scale):
            raise ImageInvalidError(f"scale '{name}' must be a finite number, got {scale!r}.")
    for section in ("encoder", "decoder"):
        for name, table in getattr(image, section).items():
            if not isinstance(table, np.ndarray):
                raise ImageInvalidError(f"{section} table '{name}' must be an array.")
    for name, value in image.network.items():
        if not _is_scalar(value):
            raise ImageInvalidError(f"network setting '{name}' must be a scalar.")
    if not image.cores:
        raise ImageInvalidError("the image has no cores.")
    seen: set[int] = set()
    for index, core in enumerate(image.cores):
        _validate_core(index, core)
        if core["core_id"] in seen:
            raise ImageInvalidError(f"core {core['core_id']} appears twice.")
        seen.add(core["core_id"])


def _validate_core(index: int, core: Any) -> None:
    if not isinstance(core, dict):
        raise ImageInvalidError(f"core table {index} must be a map.")
    for name in CORE_INTS:
        value = core.get(name)
        if type(value) is not int or value < 0:
            raise ImageInvalidError(f"core table {index} needs a non-negative int '{name}'.")
    label = f"core {core['core_id']}"
    weights = core.get("weights")
    if not isinstance(weights, np.ndarray) or weights.dtype != np.int8:
        raise ImageInvalidError(f"{label}: 'weights' must be an int8 array.")
    expected = (core["n_axons"], core["n_neurons"])
    if weights.shape != expected:
        raise ImageInvalidError(
            f"{label}: weights have shape {weights.shape} but the table says "
            f"{expected[0]} axons x {expected[1]} neurons."
        )
    for name, value in core.items():
        if not (isinstance(value, np.ndarray) or _is_scalar(value)):
            raise ImageInvalidError(f"{label}: '{name}' must be an array or a scalar.")


# --- keys and summaries ------------------------------------------------------------------------


def _private_key(key: PrivateKeyLike) -> Ed25519PrivateKey:
    if isinstance(key, Ed25519PrivateKey):
        return key
    if isinstance(key, bytes) and len(key) == 32:
        return Ed25519PrivateKey.from_private_bytes(key)
    raise ImageError("a signing key must be an Ed25519 private key or its 32 raw bytes.")


def _public_key(key: PublicKeyLike) -> Ed25519PublicKey:
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, bytes) and len(key) == 32:
        return Ed25519PublicKey.from_public_bytes(key)
    raise ImageError("a public key must be an Ed25519 public key or its 32 raw bytes.")


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file, 32 raw bytes, or 64 hex digits."""
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, Ed25519PublicKey):
            raise ImageError(f"{path} holds a public key that is not Ed25519.")
        return key
    text = data.strip()
    if len(text) == 64:
        try:
            return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.decode("ascii")))
        except (ValueError, UnicodeDecodeError):
            pass
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    raise ImageError(f"{path} is not an Ed25519 public key (PEM, 32 raw bytes or 64 hex digits).")


def summarize(opened: OpenedImage) -> dict[str, Any]:
    """What ``glocal inspect`` shows: cores, neurons, synapses, bytes per section, hash."""
    image = opened.image
    per_core = [
        {
            "core_id": core["core_id"],
            "n_axons": core["n_axons"],
            "n_neurons": core["n_neurons"],
            "synapses": int(np.count_nonzero(core["weights"])),
            "bytes": len(codec.packb(core, canonical=True)),
        }
        for core in image.cores
    ]
    sections = image.sections()
    return {
        "bytes": opened.size,
        "format": opened.format,
        "profile": image.profile,
        "provenance": sections["provenance"],
        "cores": len(per_core),
        "neurons": sum(core["n_neurons"] for core in per_core),
        "axons": sum(core["n_axons"] for core in per_core),
        "synapses": sum(core["synapses"] for core in per_core),
        "per_core": per_core,
        "section_bytes": {
            name: len(codec.packb(value, canonical=True)) for name, value in sections.items()
        },
        "sha256": opened.sha256.hex(),
        "signature": opened.signature,
    }
