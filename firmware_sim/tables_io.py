"""Core image bytes (``.glc``) <-> ``BoardTables``, the tables the board runs.

The container (``protocol.image``: magic, format version, SHA-256 over the body, optional
Ed25519 signature) carries the board's tables as docs/board-spec.md §5 names them:

* ``network`` (scalars): ``ticks_per_step``, ``obs_dim``, ``act_dim``, ``reset_mode``,
  ``enc_mode``, ``dec_mode``;
* ``decoder`` (arrays): ``dec_bias``, ``dec_shift``;
* ``cores``: one table per core (``core_id``, ``n_axons``, ``n_neurons``, ``weights`` and the
  per-core tables of §5); ``scales``, ``provenance`` and ``meta`` are for the host.

Reading refuses bad magic, versions, hashes and signatures (a board with a public key only
takes images signed with its private key); the design rules then check the tables themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from firmware_sim.errors import BoardError
from firmware_sim.tables import BOARD_INTS, BOARD_TABLES, BoardTables
from protocol import image as core_image
from protocol.errors import ImageError


class ImageDecodeError(BoardError):
    """The bytes are not a core image this board can read (or trust)."""


def pack_tables(
    tables: BoardTables,
    signing_key: Any = None,
    provenance: core_image.Provenance | None = None,
) -> bytes:
    """The ``.glc`` bytes of ``tables`` (signed with an Ed25519 key when one is given)."""
    meta = dict(tables.meta)
    image = core_image.CoreImage(
        profile=tables.profile,
        provenance=provenance or core_image.Provenance.now("unknown", 0, "unknown"),
        cores=tuple({k: _plain(v) for k, v in core.items()} for core in tables.cores),
        scales={str(k): float(v) for k, v in tables.scales.items()},
        encoder={},
        decoder={name: np.asarray(tables.board[name]) for name in BOARD_TABLES},
        network={name: int(tables.board[name]) for name in BOARD_INTS},
        meta=meta,
    )
    try:
        return core_image.pack(image, signing_key)
    except ImageError as error:
        raise ImageDecodeError(f"the image cannot be packed: {error}") from None


def tables_from_image(data: bytes, public_key: Any = None) -> BoardTables:
    """Open, verify and convert an image; every refusal is one ``ImageDecodeError`` sentence."""
    try:
        opened = core_image.unpack(data, public_key)
    except ImageError as error:
        raise ImageDecodeError(str(error)) from None
    board: dict[str, Any] = dict(opened.network)
    board.update(opened.decoder)
    return BoardTables(
        profile=opened.profile,
        board=board,
        cores=[dict(core) for core in opened.cores],
        meta=dict(opened.meta),
        scales=dict(opened.scales),
    )


def _plain(value: Any) -> Any:
    """Core ints as Python ints (the container insists), arrays as they are."""
    return int(value) if isinstance(value, int | np.integer) else value
