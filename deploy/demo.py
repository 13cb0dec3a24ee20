"""``glocal demo``: the whole path in one command, with nothing to choose.

Starts an emulated board in a child process on a pty, packs the shipped checkpoint
(``train/checkpoints/armreach_hp``) for the Tianjic-like profile, flashes it over the pty (hash
verified) and boots it, then drives ArmReach with a mid-episode actuator fault, first with the
on-chip learning on, then off on the same image, and writes a report with plots and a GIF.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import train
from deploy.engines import TeacherController
from deploy.errors import DeployError
from deploy.faults import route_faults
from deploy.flash import connect, flash_and_boot, wait_for_board
from deploy.mapping import render_resources
from deploy.pack import pack_checkpoint
from deploy.report import learning_findings
from deploy.runner import RunResult, run
from deploy.session import board_session
from firmware_sim.process import BoardProcess

DEMO_ENV = "glocal/ArmReach-v0"
DEMO_FAULT = "robot:bias-torque:joint=1,bias=0.35,onset=150"  # a held-out magnitude
# Enough episodes that learning on vs off shows the table's average, not one seed's luck: with
# 6, the shipped checkpoint read -0.302 against -0.314 per step after onset; with 20, -0.285
# against -0.308 (the 100-episode board table: -0.228 against -0.270 on held-out bias torques).
DEMO_EPISODES = 20
DEMO_STEPS = 300
DEMO_PROFILE = "tianjic"


def shipped_checkpoint() -> Path:
    """The demo checkpoint that ships with ``train``."""

    path = Path(train.__file__).resolve().parent / "checkpoints" / "armreach_hp" / "model.pt"
    if not path.exists():
        raise DeployError(
            f"the shipped checkpoint {path} is missing; train one with `glocal train --model hp "
            "--out train/checkpoints/armreach_hp` or pass --checkpoint."
        )
    return path


def run_demo(
    out: Path,
    checkpoint: str | Path | None = None,
    episodes: int = DEMO_EPISODES,
    steps: int = DEMO_STEPS,
    fault: str = DEMO_FAULT,
) -> dict[str, Any]:
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    source = Path(checkpoint) if checkpoint else shipped_checkpoint()
    print(f"packing {source} for the {DEMO_PROFILE} profile", file=sys.stderr)
    packed = pack_checkpoint(source, DEMO_PROFILE)
    (out / "model.glc").write_bytes(packed.data)
    (out / "resources.txt").write_text(render_resources(packed.resources) + "\n")
    (out / "quantisation.json").write_text(json.dumps(packed.network.report, indent=2) + "\n")
    with BoardProcess(DEMO_PROFILE) as board:
        print(f"board on {board.url}", file=sys.stderr)
        client, transport = connect(board.url)
        try:
            hello = wait_for_board(client)
            flashed = flash_and_boot(client, packed.data)
            intro = (
                f"Checkpoint `{source}` packed for the `{DEMO_PROFILE}` profile "
                f"({packed.resources['cores']} cores, {packed.resources['synapses']} synapses, "
                f"{packed.network.ticks} ticks per control step), flashed over `{board.url}` to "
                f"a board running {hello['firmware']} (hash verified), then driven through "
                f"`{DEMO_ENV}` with the fault `{fault}`."
            )
            summary = board_session(
                client,
                DEMO_ENV,
                episodes,
                [fault],
                out,
                learning="both",
                steps=steps,
                image_meta=packed.image.meta,
                gif=True,
                title="glocal demo",
                intro=intro,
                port=board.url,
                findings=partial(explain, episodes=episodes, steps=steps, fault=fault),
            )
        finally:
            transport.close()
    summary["flash"] = flashed
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["out"] = str(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def explain(results: Sequence[RunResult], episodes: int, steps: int, fault: str) -> str:
    """The report's findings, with both teachers run on the same episodes for scale (after the
    board's runs, and on the host only: they change none of the board's numbers)."""
    plan = route_faults([fault])
    teachers = [
        run(TeacherController(aware), DEMO_ENV, plan, episodes, steps=steps, label=name)
        for aware, name in ((False, "teacher-blind"), (True, "teacher-aware"))
    ]
    return learning_findings(results, teachers)
