"""Core images: round trip, signatures, and one clear refusal per way an image can be wrong."""

from __future__ import annotations

import hashlib
import json

import msgpack
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from glocal import cli
from protocol import codec
from protocol.errors import (
    ImageError,
    ImageInvalidError,
    ImageMagicError,
    ImageSignatureError,
    ImageSizeError,
    ImageTamperedError,
    ImageTruncatedError,
    ImageVersionError,
)
from protocol.image import CoreImage, open_image, pack, unpack, validate

from .conftest import make_image


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(np.random.default_rng(3).bytes(32))


def envelope(data: bytes) -> dict:
    return msgpack.unpackb(data, raw=False)


def repack(fields: dict) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def rehash(fields: dict, body_value: object) -> bytes:
    """An image whose body was rewritten and re-hashed: only structure checks can catch it."""
    body = codec.packb(body_value, canonical=True)
    return repack({**fields, "body": body, "sha256": hashlib.sha256(body).digest()})


def test_round_trip_keeps_every_section(image: CoreImage, image_bytes: bytes) -> None:
    back = unpack(image_bytes)
    assert back.profile == image.profile and back.provenance == image.provenance
    assert back.scales == image.scales and back.network == image.network
    assert back.meta == image.meta
    np.testing.assert_array_equal(back.decoder["readout"], image.decoder["readout"])
    for mine, theirs in zip(image.cores, back.cores, strict=True):
        assert mine.keys() == theirs.keys()
        np.testing.assert_array_equal(mine["weights"], theirs["weights"])
        assert theirs["weights"].dtype == np.int8


def test_packing_is_deterministic(image: CoreImage) -> None:
    assert pack(image) == pack(make_image())


def test_signed_image_verifies_with_its_key(image: CoreImage, key: Ed25519PrivateKey) -> None:
    data = pack(image, signing_key=key)
    assert open_image(data).signature == "signed, not verified"
    assert open_image(data, key.public_key()).signature == "verified"


def test_image_refusals_each_say_what_is_wrong(
    image: CoreImage, image_bytes: bytes, key: Ed25519PrivateKey
) -> None:
    fields = envelope(image_bytes)
    other_key = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    body = fields["body"]
    cases = [
        (image_bytes[: len(image_bytes) // 2], ImageTruncatedError, "cut off"),
        (image_bytes[:7], ImageTruncatedError, "inside its header"),
        (b"PK\x03\x04" + image_bytes, ImageMagicError, "not a glocal core image"),
        (repack({**fields, "format": 2}), ImageVersionError, "format version 2, newer than"),
        (
            repack({**fields, "body": body[:-1] + bytes([body[-1] ^ 1])}),
            ImageTamperedError,
            "does not match its SHA-256",
        ),
        (image_bytes, ImageSignatureError, "unsigned but a signature is required"),
        (pack(image, signing_key=key), ImageSignatureError, "does not verify"),
        (image_bytes + b"\x00", ImageSizeError, "1 stray bytes"),
    ]
    for data, error, sentence in cases:
        public_key = other_key if error is ImageSignatureError else None
        with pytest.raises(error, match=sentence):
            unpack(data, public_key)


def test_a_length_beyond_the_end_of_the_file_is_refused(image_bytes: bytes) -> None:
    at = image_bytes.index(b"body") + 4
    assert image_bytes[at] == 0xC5  # bin 16: a 2-byte length follows
    lying = image_bytes[: at + 1] + b"\xff\xff" + image_bytes[at + 3 :]
    with pytest.raises(ImageTruncatedError, match="'body' entry needs 65535 bytes but only"):
        unpack(lying)


def test_an_array_that_lies_about_its_shape_is_refused(image: CoreImage) -> None:
    fields = envelope(pack(image))
    sections = image.sections()
    weights = sections["cores"][0]["weights"]
    inner = msgpack.packb(["|i1", [64, 64], weights.tobytes()], use_bin_type=True)
    sections["cores"][0]["weights"] = msgpack.ExtType(codec.ARRAY_EXT, inner)
    with pytest.raises(ImageSizeError, match=r"shape \(64, 64\) needs 4096 bytes but carries 48"):
        unpack(rehash(fields, sections))


def test_core_tables_that_disagree_with_their_weights_are_refused(image: CoreImage) -> None:
    fields = envelope(pack(image))
    sections = image.sections()
    sections["cores"][1]["n_axons"] = 300
    with pytest.raises(
        ImageInvalidError, match=r"core 1: weights have shape \(8, 6\) but the table says 300 ax"
    ):
        unpack(rehash(fields, sections))


@pytest.mark.parametrize(
    ("change", "sentence"),
    [
        ({"cores": ()}, "has no cores"),
        ({"profile": ""}, "name of its board profile"),
        ({"scales": {"w": float("nan")}}, "scale 'w' must be a finite number"),
        ({"encoder": {"gain": [1.0]}}, "encoder table 'gain' must be an array"),
    ],
)
def test_validate_names_the_problem(image: CoreImage, change: dict, sentence: str) -> None:
    with pytest.raises(ImageInvalidError, match=sentence):
        validate(CoreImage(**{**image.__dict__, **change}))


def test_weights_must_be_int8(image: CoreImage) -> None:
    cores = (dict(image.cores[0], weights=image.cores[0]["weights"].astype(np.int16)),)
    with pytest.raises(ImageInvalidError, match="core 0: 'weights' must be an int8 array"):
        pack(CoreImage(**{**image.__dict__, "cores": cores}))


def test_inspect_json_summary(tmp_path, capsys, image: CoreImage, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "net.glc"
    path.write_bytes(pack(image, signing_key=key))
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert cli.main(["inspect", str(path), "--json", "--key", str(key_file)]) == 0
    summary = json.loads(capsys.readouterr().out)
    weights = [core["weights"] for core in image.cores]
    assert summary["cores"] == 2 and summary["neurons"] == 12 and summary["axons"] == 16
    assert summary["synapses"] == sum(int(np.count_nonzero(w)) for w in weights)
    assert summary["signature"] == "verified"
    assert summary["sha256"] == hashlib.sha256(envelope(path.read_bytes())["body"]).hexdigest()
    assert summary["bytes"] == path.stat().st_size
    assert set(summary["section_bytes"]) == {
        "profile",
        "provenance",
        "scales",
        "encoder",
        "decoder",
        "network",
        "cores",
        "meta",
    }


def test_inspect_refuses_a_bad_image_in_one_line(tmp_path, capsys) -> None:
    path = tmp_path / "junk.glc"
    path.write_bytes(b"not an image at all")
    assert cli.main(["inspect", str(path)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err == (
        "glocal inspect: error: this is not a glocal core image "
        "(it lacks the 'glocal-core-image' magic)."
    )


@given(
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_damaged_images_are_refused_never_crash(edits: list, inside_body: bool) -> None:
    data = pack(make_image())
    fields = envelope(data)
    target = bytearray(fields["body"] if inside_body else data)
    for position, value in edits:
        target[position % len(target)] = value
    if inside_body:  # re-hashed, so the damage reaches the body decoder and the validator
        body = bytes(target)
        data = repack({**fields, "body": body, "sha256": hashlib.sha256(body).digest()})
    else:
        data = bytes(target)
    try:
        unpack(data)
    except ImageError as error:  # refused with a sentence: the only acceptable failure
        assert str(error).endswith((".", ")"))
