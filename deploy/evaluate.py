"""The closing-note table: the board over a pty, held-out robot faults and on-chip faults.

    python -m deploy.evaluate [--checkpoint DIR] [--env ID] [--episodes 100] [--steps 300] --out DIR

The task is the checkpoint's (``train`` config), or ``--env`` for a checkpoint that names none;
``train.tasks.TASKS`` says how to build its env and where its held-out magnitudes lie.

Robot part: per fault kind (reversed motor, gain loss, bias torque, payload), seeded episodes
with the fault at a held-out magnitude (the task's bands, ``train.tasks.BANDS`` on ArmReach,
``REACHER_BANDS`` on Reacher-v5; never trained on) on a random joint from ``onset`` on.
Controllers on the same episodes: the board with learning on and off (same image), torch with
learning on and off (same checkpoint), the fault-blind and the fault-aware teacher. Closure over
the steps after onset is train's definition, ``(R - R_blind) / (R_aware - R_blind)``, undefined
where the aware teacher is not better by ``train.evaluate.MIN_GAP``.

Board part: the nominal task with on-chip faults (10 % stuck-at-zero synapses, 5 % dead
neurons, weight bit flips, or the board fault specs of ``--chip-faults``), learning on and off;
return relative to the fault-free run of the same learning setting.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from deploy.engines import BoardController, TorchController
from deploy.errors import DeployError
from deploy.faults import route_faults
from deploy.runner import run

ENV = "glocal/ArmReach-v0"  # for a checkpoint that names no task
ROBOT_KINDS = ("reversed-motor", "gain-loss", "bias-torque", "payload")
BOARD_FAULTS = {
    "stuck-zero 10%": "board:stuck-zero:core=all,fraction=0.1,onset={onset}",
    "dead-neuron 5%": "board:dead-neuron:core=all,fraction=0.05,onset={onset}",
    "weight-flip 1e-6/bit/tick": "board:weight-flip:core=all,rate=1e-6,onset={onset}",
}


class TeacherController:
    """robot_env's privileged teacher as a controller (it needs the env: ``bind``)."""

    def __init__(self, aware: bool) -> None:
        self.name = "teacher-aware" if aware else "teacher-blind"
        self.aware = aware
        self.teacher: Any = None

    def bind(self, env: Any) -> None:
        import robot_env

        self.teacher = robot_env.make_teacher(env, fault_aware=self.aware)

    def reset(self) -> None: ...

    def set_learning(self, on: bool) -> None: ...

    def step(self, obs: np.ndarray) -> np.ndarray:
        return self.teacher(obs)

    def probe(self) -> dict[str, np.ndarray]:
        return {}


class TaskEnv:
    """The task of a run: its id, its fault bands and the robot_env env the runner builds."""

    def __init__(self, task_id: str) -> None:
        from train.tasks import get_task

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
    from train.fault_batch import BANDS, fault_spec

    low, high = (bands or BANDS)[kind][1]
    value = rng.uniform(low, high)
    joint = int(rng.integers(0, 2))
    if kind == "bias-torque":
        value *= rng.choice([-1.0, 1.0])
    return fault_spec(kind, joint, value, onset, digits=4)


def after_onset(result: Any, onset: int) -> float:
    return float(np.nanmean(result.rewards[:, onset:]))


def robot_table(
    controllers: dict[str, tuple[Any, bool]],
    episodes: int,
    steps: int,
    onset: int,
    seed: int,
    task: TaskEnv | None = None,
) -> dict[str, Any]:
    from train.evaluate import closure

    task = task or TaskEnv(ENV)
    table: dict[str, Any] = {}
    for k, kind in enumerate(ROBOT_KINDS):
        rng = np.random.default_rng(seed + k)
        specs = [robot_spec(kind, rng, onset, task.spec.bands) for _ in range(episodes)]
        rows: dict[str, list[float]] = {name: [] for name in controllers}
        for e, spec in enumerate(specs):
            plan = route_faults([spec])
            for name, (controller, learning) in controllers.items():
                result = task.run(controller, plan, seed + 1000 * k + e, steps, learning)
                rows[name].append(after_onset(result, onset))
        means = {name: float(np.mean(values)) for name, values in rows.items()}
        blind, aware = means["teacher-blind"], means["teacher-aware"]
        table[kind] = {
            name: {
                "reward_after_onset": value,
                "closure": closure(value, blind, aware),
            }
            for name, value in means.items()
        }
        print(f"{kind}: {json.dumps(table[kind])}", file=sys.stderr)
    return table


def reboot(client: Any) -> None:
    """Boot the active image again: the weights come back from flash."""
    client.boot(client.read("image")["slot"])


def on_fresh_boards(
    board: BoardController,
    spec: str | None,
    episodes: int,
    steps: int,
    onset: int,
    seed: int,
    learning: bool,
    task: TaskEnv | None = None,
) -> float:
    """Mean reward per step after onset, each episode on a freshly booted image: bit flips
    change weight memory (as on a chip), so without the reboot they would pile up across
    episodes and runs. Each episode draws its own faulty synapses, neurons or bits (fault seed
    ``seed + e``): the table is over chips, not one chip's draw."""
    task = task or TaskEnv(ENV)
    rewards = []
    for e in range(episodes):
        plan = route_faults([f"{spec.format(onset=onset)},seed={seed + e}"] if spec else [])
        reboot(board.client)
        result = task.run(board, plan, seed + e, steps, learning, board_client=board.client)
        rewards.append(result.rewards)
    return float(np.nanmean(np.concatenate(rewards)[:, onset:]))


def board_table(
    board: BoardController,
    episodes: int,
    steps: int,
    onset: int,
    seed: int,
    task: TaskEnv | None = None,
    faults: dict[str, str] | None = None,
):
    """Per learning setting, the reward after onset under each of ``faults`` (name -> spec with
    an ``{onset}`` field; default ``BOARD_FAULTS``) and relative to the fault-free run."""
    table: dict[str, Any] = {}
    for learning in (True, False):
        row = {
            name: on_fresh_boards(board, spec, episodes, steps, onset, seed, learning, task)
            for name, spec in {"fault-free": None, **(faults or BOARD_FAULTS)}.items()
        }
        base = row["fault-free"]
        # rewards are negative distances: relative return = fault-free / faulted
        table["learning on" if learning else "learning off"] = {
            name: {"reward_after_onset": value, "relative_return": base / value}
            for name, value in row.items()
        }
        print(json.dumps(table), file=sys.stderr)
    return table


def main(argv: list[str] | None = None) -> int:
    """The tables; bad input (a missing checkpoint, an unknown task) is one sentence, exit 2."""
    from glocal.cli import EXIT_INTERRUPTED, interrupt_on_sigterm
    from train.errors import TrainError

    interrupt_on_sigterm()  # a kill unwinds, and the board process goes with it
    try:
        return evaluate_main(argv)
    except (DeployError, TrainError) as error:
        print(f"deploy.evaluate: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deploy.evaluate: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def chip_fault_specs(specs: list[str]) -> dict[str, str]:
    """``--chip-faults`` as the board table's faults: each spec, checked now, names its row and
    gets the table's onset; a spec that sets its own onset or seed is refused (the table sets
    both, a seed per episode)."""
    from firmware_sim.errors import FaultError
    from firmware_sim.faults import parse_fault

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
    from train.tasks import TASKS

    if env is not None and checkpoint_task in TASKS and env != checkpoint_task:
        raise DeployError(
            f"the checkpoint was trained on {checkpoint_task}, not {env}; drop --env or pass "
            f"a checkpoint trained on {env}."
        )
    return env or (checkpoint_task if checkpoint_task in TASKS else ENV)


def evaluate_main(argv: list[str] | None = None) -> int:
    from deploy.demo import shipped_checkpoint
    from deploy.flash import connect, flash_and_boot
    from deploy.pack import pack_checkpoint
    from firmware_sim.process import BoardProcess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="training checkpoint (folder or model.pt) of a spiking policy; default: the shipped "
        "demo checkpoint",
    )
    parser.add_argument(
        "--env",
        help="task id when the checkpoint names none (train.tasks.TASKS: glocal/ArmReach-v0, "
        "Reacher-v5); default: the checkpoint's task",
    )
    parser.add_argument(
        "--episodes", type=int, default=100, help="seeded episodes per cell (default 100)"
    )
    parser.add_argument("--steps", type=int, default=300, help="control steps per episode")
    parser.add_argument(
        "--onset", type=int, default=100, help="control step at which every fault starts"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="base seed; every episode's environment and fault seeds derive from it",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for closing_table.json and closing_table.md"
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("robot", "board"),
        default=["robot", "board"],
        help="which tables to make (default: both)",
    )
    parser.add_argument(
        "--encoder-copies",
        type=int,
        default=1,
        metavar="K",
        help="spread each encoder synapse over K board synapses (deploy.mapping; default 1)",
    )
    parser.add_argument(
        "--readout-copies",
        type=int,
        default=1,
        metavar="R",
        help="R readout neurons per action sharing its decoder weight (deploy.mapping; default 1)",
    )
    parser.add_argument(
        "--chip-faults",
        nargs="+",
        metavar="SPEC",
        help="board fault specs for the board part instead of the three standard ones, e.g. "
        "board:dead-neuron:core=0,fraction=0.05 (firmware_sim.faults; onset is --onset)",
    )
    args = parser.parse_args(argv)
    chip_faults = chip_fault_specs(args.chip_faults) if args.chip_faults else None
    packed = pack_checkpoint(
        args.checkpoint or shipped_checkpoint(),
        "tianjic",
        encoder_copies=args.encoder_copies,
        readout_copies=args.readout_copies,
    )
    task = TaskEnv(task_of(packed.checkpoint.task, args.env))
    args.out.mkdir(parents=True, exist_ok=True)
    with BoardProcess("tianjic") as process:
        client, transport = connect(process.url)
        flash_and_boot(client, packed.data, progress=False)
        board = BoardController.for_image(client, packed.image.meta)
        torch_c = TorchController(packed.checkpoint.policy)
        controllers = {
            "board on": (board, True),
            "board off": (board, False),
            "torch on": (torch_c, True),
            "torch off": (torch_c, False),
            "teacher-blind": (TeacherController(False), True),
            "teacher-aware": (TeacherController(True), True),
        }
        robot = on_chip = None
        if "robot" in args.parts:
            robot = robot_table(controllers, args.episodes, args.steps, args.onset, args.seed, task)
        if "board" in args.parts:
            on_chip = board_table(
                board, args.episodes, args.steps, args.onset, args.seed, task, chip_faults
            )
        transport.close()
    result = {
        "env": task.id,
        "encoder_copies": args.encoder_copies,
        "readout_copies": args.readout_copies,
        "episodes": args.episodes,
        "steps": args.steps,
        "onset": args.onset,
        "robot": robot,
        "board": on_chip,
    }
    (args.out / "closing_table.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "closing_table.md").write_text(format_tables(result))
    print(json.dumps(result, indent=2))
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
