"""The closing-note table: the board over a pty, robot faults and on-chip faults.

    glocal evaluate [--checkpoint DIR] [--env ID] [--fault SPEC ...] [--episodes 100] [--out DIR]

The task is the checkpoint's (``train`` config), or ``--env`` for a checkpoint that names none;
``train.tasks.TASKS`` names its robot_env id and where its held-out magnitudes lie.

Robot part: per fault kind (reversed motor, gain loss, bias torque, payload), seeded episodes
with the fault at a held-out magnitude (the task's bands, ``train.fault_batch.BANDS`` on ArmReach,
``REACHER_BANDS`` on Reacher-v5; never trained on) on a random joint from ``onset`` on; or, with
``--fault``, a row per given robot fault spec (any kind; ``onset`` where the spec names none).
Controllers on the same episodes: the board with learning on and off (same image), torch with
learning on and off (same checkpoint), the fault-blind and the fault-aware teacher. Closure over
the steps after the fault's onset is ``train.evaluate.closure``.

Board part: the nominal task with on-chip faults (10 % stuck-at-zero synapses, 5 % dead
neurons, weight bit flips, or the board fault specs of ``--chip-faults``), learning on and off;
return relative to the fault-free run of the same learning setting.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import robot_env
from deploy.demo import shipped_checkpoint
from deploy.engines import BoardController, TeacherController, TorchController
from deploy.errors import DeployError
from deploy.faults import route_faults
from deploy.flash import connect, flash_and_boot
from deploy.pack import Packed, pack_checkpoint
from deploy.runner import RunResult, check_episodes, run
from firmware_sim.errors import FaultError
from firmware_sim.faults import parse_fault
from firmware_sim.process import BoardProcess
from protocol.faultspec import split_fault_spec
from train.evaluate import closure
from train.fault_batch import BANDS, fault_spec
from train.tasks import TASKS, get_task

ENV = "glocal/ArmReach-v0"  # for a checkpoint that names no task
PROFILE = "tianjic"
PARTS = ("robot", "board")
ROBOT_KINDS = ("reversed-motor", "gain-loss", "bias-torque", "payload")
BOARD_FAULTS = {
    "stuck-zero 10%": "board:stuck-zero:core=all,fraction=0.1,onset={onset}",
    "dead-neuron 5%": "board:dead-neuron:core=all,fraction=0.05,onset={onset}",
    "weight-flip 1e-6/bit/tick": "board:weight-flip:core=all,rate=1e-6,onset={onset}",
}
# Row k of the robot table runs episode e with env seed seed + ROW_SEED_STRIDE * k + e: rows
# never share an episode seed (up to this many episodes per row), and adding a row leaves the
# others' episodes as they were.
ROW_SEED_STRIDE = 1000

# progress(episodes done, episodes in the table, the row being run)
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Episodes:
    """The table's episodes: how many per cell, control steps each, the step at which every
    fault starts (unless a ``--fault`` spec names its own) and the seed they all derive from."""

    count: int = 100
    steps: int = 300
    onset: int = 100
    seed: int = 0


class TaskEnv:
    """The task of a run: its id, its fault bands and the robot_env env the runner builds."""

    def __init__(self, task_id: str) -> None:
        self.id = task_id
        self.spec = get_task(task_id, DeployError)

    def run(self, controller: Any, plan: Any, seed: int, steps: int, learning: bool, **kw: Any):
        return run(
            controller,
            self.spec.env_id,
            plan,
            1,
            seed=seed,
            steps=steps,
            learning=learning,
            **kw,
        )


def robot_spec(
    kind: str, rng: np.random.Generator, onset: int, bands: dict[str, Any] | None = None
) -> str:
    """One held-out fault of ``kind`` on a random joint (``bands``: the task's, default
    ArmReach's)."""
    low, high = (bands or BANDS)[kind][1]
    value = rng.uniform(low, high)
    joint = int(rng.integers(0, 2))
    if kind == "bias-torque":
        value *= rng.choice([-1.0, 1.0])
    return fault_spec(kind, joint, value, onset, digits=4)


def held_out_rows(episodes: Episodes, bands: dict[str, Any]) -> dict[str, list[str]]:
    """The default robot rows: per kind, one held-out fault drawn per episode."""
    rows = {}
    for k, kind in enumerate(ROBOT_KINDS):
        rng = np.random.default_rng(episodes.seed + k)
        rows[kind] = [robot_spec(kind, rng, episodes.onset, bands) for _ in range(episodes.count)]
    return rows


def robot_fault_rows(specs: Sequence[str], episodes: Episodes) -> dict[str, list[str]]:
    """``--fault`` specs as robot rows, each checked now (before any board starts) and given
    the table's onset where it names none; every episode of a row runs its spec."""
    rows = {}
    for spec in specs:
        robot_env.parse_robot_fault(spec)  # a bad spec is one sentence here, not mid-table
        _, _, params = split_fault_spec(spec, DeployError)
        timed = spec if "onset" in params else f"{spec},onset={episodes.onset}"
        rows[spec] = [timed] * episodes.count
    return rows


def after_onset(result: RunResult, onset: int) -> float:
    """Mean reward per step from the fault's onset on (as drawn this episode), else ``onset``."""
    start = result.onsets[0] if result.onsets[0] is not None else onset
    return float(np.nanmean(result.rewards[:, start:]))


def robot_table(
    controllers: dict[str, tuple[Any, bool]],
    rows: dict[str, list[str]],
    episodes: Episodes,
    task: TaskEnv,
    tick: Callable[[str], None],
) -> dict[str, Any]:
    """Per row (name -> one fault spec per episode), each controller's reward after onset and
    closure; ``tick(row)`` after each episode."""
    table: dict[str, Any] = {}
    for k, (row, specs) in enumerate(rows.items()):
        rewards: dict[str, list[float]] = {name: [] for name in controllers}
        for e, spec in enumerate(specs):
            plan = route_faults([spec])
            seed = episodes.seed + ROW_SEED_STRIDE * k + e
            for name, (controller, learning) in controllers.items():
                result = task.run(controller, plan, seed, episodes.steps, learning)
                rewards[name].append(after_onset(result, episodes.onset))
            tick(f"{row}: board on {np.mean(rewards['board on']):+.3f}/step after onset")
        means = {name: float(np.mean(values)) for name, values in rewards.items()}
        blind, aware = means["teacher-blind"], means["teacher-aware"]
        table[row] = {
            name: {"reward_after_onset": value, "closure": closure(value, blind, aware)}
            for name, value in means.items()
        }
    return table


def reboot(client: Any) -> None:
    """Boot the active image again: the weights come back from flash."""
    client.boot(client.read("image")["slot"])


def on_fresh_boards(
    board: BoardController,
    spec: str | None,
    learning: bool,
    episodes: Episodes,
    task: TaskEnv,
    tick: Callable[[str], None],
    name: str,
) -> float:
    """Mean reward per step after onset, each episode on a freshly booted image: bit flips
    change weight memory (as on a chip), so without the reboot they would pile up across
    episodes and runs. Each episode draws its own faulty synapses, neurons or bits (fault seed
    ``seed + e``): the table is over chips, not one chip's draw."""
    rewards = []
    onset, seed = episodes.onset, episodes.seed
    for e in range(episodes.count):
        plan = route_faults([f"{spec.format(onset=onset)},seed={seed + e}"] if spec else [])
        reboot(board.client)
        result = task.run(
            board, plan, seed + e, episodes.steps, learning, board_client=board.client
        )
        rewards.append(result.rewards)
        running = np.nanmean(np.concatenate(rewards)[:, onset:])
        tick(f"{name}, learning {'on' if learning else 'off'}: {running:+.3f}/step after onset")
    return float(np.nanmean(np.concatenate(rewards)[:, onset:]))


def board_table(
    board: BoardController,
    faults: dict[str, str],
    episodes: Episodes,
    task: TaskEnv,
    tick: Callable[[str], None],
) -> dict[str, Any]:
    """Per learning setting, the reward after onset under each of ``faults`` (name -> spec with
    an ``{onset}`` field) and relative to the fault-free run."""
    table: dict[str, Any] = {}
    for learning in (True, False):
        row = {
            name: on_fresh_boards(board, spec, learning, episodes, task, tick, name)
            for name, spec in {"fault-free": None, **faults}.items()
        }
        base = row["fault-free"]
        # rewards are negative distances: relative return = fault-free / faulted
        table["learning on" if learning else "learning off"] = {
            name: {"reward_after_onset": value, "relative_return": base / value}
            for name, value in row.items()
        }
    return table


def chip_fault_specs(specs: Sequence[str]) -> dict[str, str]:
    """``--chip-faults`` as the board table's faults: each spec, checked now, names its row and
    gets the table's onset; a spec that sets its own onset or seed is refused (the table sets
    both, a seed per episode)."""
    faults = {}
    for spec in specs:
        try:
            parse_fault(spec)
        except FaultError as error:
            raise DeployError(str(error)) from None
        if any(f"{key}=" in spec for key in ("onset", "seed")):
            raise DeployError(
                f"{spec}: leave out onset and seed; --onset and the episode set them."
            )
        faults[spec] = spec + ",onset={onset}"
    return faults


def task_of(checkpoint_task: str, env: str | None) -> str:
    """The checkpoint's task, or ``env`` where the checkpoint names none; never both apart."""
    if env is not None and checkpoint_task in TASKS and env != checkpoint_task:
        raise DeployError(
            f"the checkpoint was trained on {checkpoint_task}, not {env}; drop --env or pass "
            f"a checkpoint trained on {env}."
        )
    return env or (checkpoint_task if checkpoint_task in TASKS else ENV)


def controllers_of(board: BoardController, packed: Packed) -> dict[str, tuple[Any, bool]]:
    """The table's columns: name -> (controller, learning), all on the same episodes."""
    torch_c = TorchController(packed.checkpoint.policy)
    return {
        "board on": (board, True),
        "board off": (board, False),
        "torch on": (torch_c, True),
        "torch off": (torch_c, False),
        "teacher-blind": (TeacherController(False), True),
        "teacher-aware": (TeacherController(True), True),
    }


class Tally:
    """Counts the table's finished episodes for a progress callback."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.done, self.total, self.progress = 0, total, progress

    def __call__(self, row: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total, row)


@contextmanager
def on_a_board(packed: Packed) -> Iterator[BoardController]:
    """An emulated board on a pty with ``packed`` flashed and booted, as a controller; the
    board process stops on the way out."""
    with BoardProcess(PROFILE) as process:
        client, transport = connect(process.url)
        try:
            flash_and_boot(client, packed.data, progress=False)
            yield BoardController.for_image(client, packed.image.meta)
        finally:
            transport.close()


def closing_table(
    checkpoint: str | Path | None = None,
    env: str | None = None,
    episodes: Episodes = Episodes(),
    parts: Sequence[str] = PARTS,
    robot_faults: Sequence[str] = (),
    chip_faults: Sequence[str] = (),
    encoder_copies: int = 1,
    readout_copies: int = 1,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The tables of ``parts`` for ``checkpoint`` (default: the shipped demo checkpoint) on an
    emulated board. Every option is checked before the board starts. ``robot_faults``: rows of
    the robot part instead of the held-out kinds; ``chip_faults``: the board part's faults
    instead of ``BOARD_FAULTS``; the copies: see ``deploy.mapping``."""
    check_episodes(episodes.count)
    if robot_faults and "robot" not in parts:
        raise DeployError("--fault gives rows of the robot part; add robot to --parts.")
    rows = robot_fault_rows(robot_faults, episodes) if robot_faults else None
    board_faults = chip_fault_specs(chip_faults) if chip_faults else BOARD_FAULTS
    packed = pack_checkpoint(
        checkpoint or shipped_checkpoint(),
        PROFILE,
        encoder_copies=encoder_copies,
        readout_copies=readout_copies,
    )
    task = TaskEnv(task_of(packed.checkpoint.task, env))
    rows = rows or held_out_rows(episodes, task.spec.bands)
    board_episodes = 2 * (1 + len(board_faults)) * episodes.count
    tick = Tally(
        ("robot" in parts) * len(rows) * episodes.count + ("board" in parts) * board_episodes,
        progress,
    )
    robot = on_chip = None
    with on_a_board(packed) as board:
        if "robot" in parts:
            robot = robot_table(controllers_of(board, packed), rows, episodes, task, tick)
        if "board" in parts:
            on_chip = board_table(board, board_faults, episodes, task, tick)
    return {
        "env": task.id,
        "encoder_copies": encoder_copies,
        "readout_copies": readout_copies,
        "episodes": episodes.count,
        "steps": episodes.steps,
        "onset": episodes.onset,
        "robot": robot,
        "board": on_chip,
    }


def write_tables(result: dict[str, Any], out: Path) -> None:
    """closing_table.json and closing_table.md into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "closing_table.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "closing_table.md").write_text(format_tables(result))


ROBOT_COLUMNS = ("board on", "board off", "torch on", "torch off", "teacher-blind", "teacher-aware")


def format_tables(result: dict[str, Any]) -> str:
    """The tables as Markdown: reward per step after onset, closure (robot) or the return
    relative to fault-free (board) in brackets."""
    lines = [f"{result['env']}, {result['episodes']} episodes of {result['steps']} steps, "]
    lines[0] += f"onset {result['onset']}: reward per step after onset"
    for part in ("encoder", "readout"):
        copies = result.get(f"{part}_copies", 1)
        lines[0] += f"; {part} copies {copies}" if copies > 1 else ""
    lines[0] += "\n"
    if result["robot"]:
        lines += ["| fault | " + " | ".join(ROBOT_COLUMNS) + " |"]
        lines += ["| --- " * (len(ROBOT_COLUMNS) + 1) + "|"]
        for kind, rows in result["robot"].items():
            cells = []
            for name in ROBOT_COLUMNS:
                value, share = rows[name]["reward_after_onset"], rows[name]["closure"]
                bracket = "" if name.startswith("teacher") else " (n/a)"
                if share is not None and not name.startswith("teacher"):
                    bracket = f" ({share:.3f})"
                cells.append(f"{value:.3f}{bracket}")
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
        lines.append("")
    if result["board"]:
        lines += ["| on-chip fault | learning on | learning off |", "| --- | --- | --- |"]
        on, off = result["board"]["learning on"], result["board"]["learning off"]
        for name in on:
            cells = [
                f"{row[name]['reward_after_onset']:.3f} ({row[name]['relative_return']:.3f})"
                for row in (on, off)
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
