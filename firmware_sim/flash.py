"""Emulated flash: a staging area and two slots (A and B) in a folder, transactional on disk.

Layout of ``--flash-dir``::

    staging.json   {"sha256": hex, "size": n}: the image being received (written atomically)
    staging.bin    its bytes so far, appended in order (a torn append is a shorter prefix)
    slot-A.glc     a complete image that passed hash, decode and design rules
    slot-B.glc
    active.json    {"slot": 0 | 1, "sha256": hex}: the slot that boots (written atomically)

Every file that must never be seen half-written is written to ``NAME.tmp``, fsynced, renamed over
``NAME`` and the folder is fsynced (the rename is atomic on POSIX file systems). A new image is
committed into the slot that is *not* active, and the pointer moves only when the image boots
after passing every check, so killing the board at any byte leaves ``active.json`` naming a
complete, verified image: the previous one until the very last rename.

``FlashStore`` is the ``protocol.board.SlotStore`` the protocol's ``FlashReceiver`` writes into.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from firmware_sim.errors import FlashError
from protocol.board import Staging

SLOT_NAMES = ("A", "B")
DEFAULT_CAPACITY = 64 << 20


class FlashStore:
    """Staging plus A/B slots in ``root``; see the module docstring for the layout."""

    def __init__(self, root: str | os.PathLike, capacity: int = DEFAULT_CAPACITY) -> None:
        self.root = Path(root)
        self.capacity = capacity
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise FlashError(f"cannot use {self.root} as flash: {error.strerror}.") from None
        self.bytes_written = 0
        for leftover in self.root.glob("*.tmp"):  # a rename that never happened
            leftover.unlink()

    # ------------------------------------------------------------------ staging
    def staging(self) -> Staging | None:
        meta = self._read_json("staging.json")
        if meta is None:
            return None
        try:
            sha256, size = bytes.fromhex(meta["sha256"]), int(meta["size"])
        except (KeyError, ValueError, TypeError):
            return None
        path = self.root / "staging.bin"
        held = min(path.stat().st_size, size) if path.exists() else 0
        return Staging(sha256, size, held)

    def begin(self, sha256: bytes, size: int) -> None:
        (self.root / "staging.bin").unlink(missing_ok=True)
        self._write_atomic("staging.json", json.dumps({"sha256": sha256.hex(), "size": size}))
        (self.root / "staging.bin").touch()
        self._sync_dir()

    def write(self, offset: int, data: bytes) -> None:
        staged = self.staging()
        if staged is None or offset != staged.held or offset + len(data) > staged.size:
            raise FlashError("a flash write does not continue the staged image; begin again.")
        path = self.root / "staging.bin"
        # A kill between the steps of begin() or commit() can leave staging.json without its
        # bytes (held = 0): then this append starts the file anew. Bytes past the staged end
        # come from a torn append and are cut off.
        if path.exists() and path.stat().st_size != offset:
            os.truncate(path, offset)
        with open(path, "ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self.bytes_written += len(data)

    def read(self, offset: int, size: int) -> bytes:
        with open(self.root / "staging.bin", "rb") as handle:
            handle.seek(offset)
            return handle.read(size)

    def commit(self) -> int:
        """Move the staged image into the slot that is not active; the active slot is untouched."""
        staged = self.staging()
        if staged is None or staged.held != staged.size:
            raise FlashError("nothing complete is staged to commit.")
        active = self.active_slot()
        slot = 1 - active if active is not None else 0
        os.replace(self.root / "staging.bin", self._slot_path(slot))
        (self.root / "staging.json").unlink(missing_ok=True)
        self._sync_dir()
        return slot

    # -------------------------------------------------------------------- slots
    def slot_image(self, slot: int) -> bytes | None:
        """The bytes in ``slot``, or None if it is empty."""
        path = self._slot_path(slot)
        return path.read_bytes() if path.exists() else None

    def active_slot(self) -> int | None:
        meta = self._read_json("active.json")
        try:
            slot = int(meta["slot"]) if meta else None
        except (KeyError, ValueError, TypeError):
            return None
        return slot if slot in (0, 1) else None

    def active_image(self) -> tuple[int, bytes] | None:
        """(slot, bytes) of the image that boots: present and hashing to what the pointer says."""
        meta = self._read_json("active.json")
        slot = self.active_slot()
        if slot is None:
            return None
        data = self.slot_image(slot)
        if data is None or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            return None
        return slot, data

    def activate(self, slot: int) -> bytes:
        """Point boot at ``slot`` (atomically); returns its SHA-256."""
        data = self.slot_image(slot)
        if data is None:
            raise FlashError(f"slot {SLOT_NAMES[slot]} is empty.")
        digest = hashlib.sha256(data).digest()
        self._write_atomic("active.json", json.dumps({"slot": slot, "sha256": digest.hex()}))
        return digest

    def erase(self, slot: int) -> None:
        if slot == self.active_slot():
            raise FlashError(f"slot {SLOT_NAMES[slot]} is the active slot; boot the other first.")
        self._slot_path(slot).unlink(missing_ok=True)
        self._sync_dir()

    # ------------------------------------------------------------------ helpers
    def _slot_path(self, slot: int) -> Path:
        if slot not in (0, 1):
            raise FlashError(f"slot {slot} does not exist; the board has slots 0 (A) and 1 (B).")
        return self.root / f"slot-{SLOT_NAMES[slot]}.glc"

    def _read_json(self, name: str) -> dict | None:
        try:
            value = json.loads((self.root / name).read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def _write_atomic(self, name: str, text: str) -> None:
        tmp = self.root / f"{name}.tmp"
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.root / name)
        self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
