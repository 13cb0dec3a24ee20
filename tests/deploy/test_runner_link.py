"""The closed loop over an imperfect link: per-step deadline, miss policy, telemetry per step,
the run's STEP account, and a board that restarts or goes silent mid-run."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from deploy.engines import BoardController
from deploy.errors import DeployError
from deploy.faults import route_faults
from deploy.pack import pack_checkpoint
from deploy.report import markdown, write_plots
from deploy.runner import SILENT_STEPS_LIMIT, RunResult, StepExchange, check_step_options, run
from firmware_sim.server import Board
from protocol.client import Client
from protocol.errors import DeadlineMissedError
from protocol.transport import InProcessTransport, LinkEmulator

ENV = "glocal/ArmReach-v0"


@pytest.fixture(scope="module")
def packed(checkpoint):
    return pack_checkpoint(checkpoint, "tianjic")


def lossy_board(packed, flash_dir, boards: list[Board]) -> tuple[Client, LinkEmulator]:
    """A client to ``boards[-1]`` through a link emulator; appending a Board reboots it."""
    boards.append(Board(flash_dir, "tianjic"))
    link = LinkEmulator(InProcessTransport(lambda data: boards[-1].responder.feed(data)), seed=1)
    link.open()
    client = Client(link, seed=0)
    client.boot(client.flash(packed.data).slot)
    return client, link


def test_a_lossy_run_keeps_its_deadline_and_accounts_for_every_step(packed, tmp_path) -> None:
    client, link = lossy_board(packed, tmp_path, [])
    controller = BoardController(client, packed.image.meta["trace_unit"])
    log = io.StringIO()
    plan = route_faults(["link:corrupt:rate=0.001", "link:drop:rate=0.001"])
    result = run(
        controller,
        ENV,
        plan,
        2,
        steps=60,
        telemetry=log,
        probe=True,
        board_client=client,
        link=link,
    )
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert len(lines) == 120
    assert all(np.isfinite(line["latency_ms"]) for line in lines)
    assert {type(line["miss"]) for line in lines} == {bool}
    assert sum(line["retries"] for line in lines) > 0  # the link did damage frames
    summary = result.summary()
    assert summary["miss_rate"] == sum(line["miss"] for line in lines) / 120
    assert summary["latency_ms_max"] == max(result.latency_ms.ravel())
    steps = summary["board_steps"]
    assert steps["sent"] == 120 and steps["exactly_once"] is True
    assert steps["ticks"] == steps["ticks_per_step"] * steps["executed"]


def test_a_board_that_restarts_mid_run_stops_it_with_one_sentence(packed, tmp_path) -> None:
    boards: list[Board] = []
    client, _ = lossy_board(packed, tmp_path, boards)

    class RebootAtStep10(BoardController):
        steps = 0

        def step(self, obs: np.ndarray) -> np.ndarray:
            self.steps += 1
            if self.steps == 12:  # the warm-up STEP, then step 10 of the episode
                boards.append(Board(tmp_path, "tianjic"))  # boots the same image afresh
            return super().step(obs)

    with pytest.raises(DeployError, match=r"episode 0, step 10: the board restarted .* stopped"):
        run(RebootAtStep10(client), ENV, route_faults([]), 1, steps=30, board_client=client)


class Missing:
    """A controller whose every STEP misses its deadline."""

    name = "missing"

    def step(self, obs: np.ndarray) -> np.ndarray:
        raise DeadlineMissedError("no answer to STEP within its deadline.")


@pytest.mark.parametrize(("policy", "expected"), [("hold", [0.5, -0.5]), ("zero", [0.0, 0.0])])
def test_a_missed_step_applies_the_declared_policy(policy: str, expected: list[float]) -> None:
    exchange = StepExchange(Missing(), None, 0.05, policy)
    step = exchange.step(np.zeros(10), np.array([0.5, -0.5]))
    assert step.miss and step.action.tolist() == expected and np.isfinite(step.latency_ms)


def test_a_board_that_answers_nothing_is_gone_after_the_silent_limit() -> None:
    exchange = StepExchange(Missing(), None, 0.05, "hold")
    for _ in range(SILENT_STEPS_LIMIT - 1):
        exchange.step(np.zeros(10), np.zeros(2))
    with pytest.raises(DeployError, match=f"none of the last {SILENT_STEPS_LIMIT} STEPs"):
        exchange.step(np.zeros(10), np.zeros(2))


@pytest.mark.parametrize(("deadline", "policy"), [(0.0, "hold"), (-1.0, "hold"), (0.05, "brake")])
def test_bad_step_options_are_refused(deadline: float, policy: str) -> None:
    with pytest.raises(DeployError, match="--step-deadline|--on-miss"):
        check_step_options(deadline, policy)


def test_the_report_gives_misses_and_latency_and_marks_misses(tmp_path) -> None:
    misses = np.zeros((2, 6), bool)
    misses[1, 3] = True
    latency = np.array([[0.3, 0.4, 0.5, 0.3, 0.3, 0.3], [0.3, 0.3, 0.3, 50.2, 0.4, 0.3]])
    result = RunResult("learning on", True, np.zeros((2, 6)), [2, 4], latency, misses=misses)
    paths = write_plots([result], tmp_path)
    text = markdown("t", "", [result], paths)
    assert "1 of 12 STEPs missed their deadline (miss rate 0.0833)" in text
    assert "max 50.20 ms" in text
    assert (tmp_path / "return_aligned.png").read_bytes()[:4] == b"\x89PNG"
