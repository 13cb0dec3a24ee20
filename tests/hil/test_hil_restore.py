"""``glocal hil`` boots the image that ran before it again at the end, and refuses a board whose
only slot its test image would overwrite (issue 17)."""

from __future__ import annotations

import hashlib
import json
import tempfile

import pytest

from deploy.errors import DeployError
from deploy.flash import connect
from deploy.hil import conformance_image, run_suite
from firmware_sim.server import Board
from firmware_sim.tables_io import pack_tables
from glocal.cli import main
from protocol.client import Client
from protocol.transport import InProcessTransport

pytestmark = pytest.mark.hil


def users_image() -> bytes:
    """An image the suite's own (seed 0) is not."""
    return pack_tables(conformance_image("tianjic", seed=7))


def test_hil_boots_the_image_that_ran_before_and_says_so(board_url, capsys) -> None:
    image = users_image()
    client, transport = connect(board_url)
    try:
        slot = client.flash(image).slot
        client.boot(slot)
    finally:
        transport.close()
    assert main(["hil", "--port", board_url, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    sha = hashlib.sha256(image).hexdigest()
    restored = f"restored the image booted before the suite (slot {slot}, sha256 {sha[:16]}...)."
    assert summary["restored"] == {"ok": True, "detail": restored}
    client, transport = connect(board_url)
    try:
        assert client.status()["sha256"].hex() == sha
    finally:
        transport.close()


def test_hil_on_an_empty_board_says_it_keeps_the_test_image(board_url, capsys) -> None:
    assert main(["hil", "--port", board_url]) == 0
    assert "PASS  restore: no image was booted before the suite" in capsys.readouterr().err


class OneSlotBoard(Client):
    """A board that announces no A/B slots."""

    def hello(self) -> dict:
        hello = super().hello()
        return {**hello, "capabilities": [c for c in hello["capabilities"] if c != "ab-slots"]}


def test_a_board_without_ab_slots_is_refused_unless_reflash_is_allowed() -> None:
    board = Board(tempfile.mkdtemp(), "tianjic")
    link = InProcessTransport(board.responder.feed)
    link.open()
    client = OneSlotBoard(link)
    client.boot(client.flash(users_image()).slot)
    with pytest.raises(DeployError, match="pass --allow-reflash"):
        run_suite(client)
    assert board.active_sha256 == hashlib.sha256(users_image()).digest()  # untouched
    assert run_suite(client, allow_reflash=True)["restored"]["ok"]
