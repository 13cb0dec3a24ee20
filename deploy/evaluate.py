"""The closing-note table: the board over a pty, held-out robot faults and on-chip faults.

    python -m deploy.evaluate [--checkpoint DIR] [--episodes 100] [--steps 300] --out DIR

Robot part (ArmReach): per fault kind (reversed motor, gain loss, bias torque, payload), seeded
episodes with the fault at a held-out magnitude (``train.tasks.BANDS``, never trained on) on a
random joint from ``onset`` on. Controllers on the same episodes: the board with learning on and
off (same image), torch with learning on and off (same checkpoint), the fault-blind and the
fault-aware teacher. Closure over the steps after onset is train's definition,
``(R - R_blind) / (R_aware - R_blind)``.

Board part: the nominal task with on-chip faults (10 % stuck-at-zero synapses, 5 % dead
neurons, weight bit flips), learning on and off; return relative to the fault-free run of the
same learning setting.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from deploy.engines import BoardController, TorchController
from deploy.faults import route_faults
from deploy.runner import run

ENV = "glocal/ArmReach-v0"
ROBOT_KINDS = ("reversed-motor", "gain-loss", "bias-torque", "payload")
MAGNITUDE_KEYS = {"reversed-motor": "gain", "gain-loss": "gain", "bias-torque": "bias"}
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


def robot_spec(kind: str, rng: np.random.Generator, onset: int) -> str:
    """One held-out fault of ``kind`` on a random joint."""
    from train.tasks import BANDS

    low, high = BANDS[kind][1]
    value = rng.uniform(low, high)
    joint = int(rng.integers(0, 2))
    if kind == "payload":
        return f"robot:payload:mass={value:.4f},onset={onset}"
    if kind == "bias-torque":
        value *= rng.choice([-1.0, 1.0])
    return f"robot:{kind}:joint={joint},{MAGNITUDE_KEYS[kind]}={value:.4f},onset={onset}"


def after_onset(result: Any, onset: int) -> float:
    return float(np.nanmean(result.rewards[:, onset:]))


def robot_table(
    controllers: dict[str, tuple[Any, bool]], episodes: int, steps: int, onset: int, seed: int
) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for k, kind in enumerate(ROBOT_KINDS):
        rng = np.random.default_rng(seed + k)
        specs = [robot_spec(kind, rng, onset) for _ in range(episodes)]
        rows: dict[str, list[float]] = {name: [] for name in controllers}
        for e, spec in enumerate(specs):
            plan = route_faults([spec])
            for name, (controller, learning) in controllers.items():
                result = run(
                    controller,
                    ENV,
                    plan,
                    1,
                    seed=seed + 1000 * k + e,
                    steps=steps,
                    learning=learning,
                )
                rows[name].append(after_onset(result, onset))
        means = {name: float(np.mean(values)) for name, values in rows.items()}
        gap = means["teacher-aware"] - means["teacher-blind"]
        table[kind] = {
            name: {
                "reward_after_onset": value,
                "closure": None if abs(gap) < 1e-3 else (value - means["teacher-blind"]) / gap,
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
) -> float:
    """Mean reward per step after onset, each episode on a freshly booted image: bit flips
    change weight memory (as on a chip), so without the reboot they would pile up across
    episodes and runs."""
    plan = route_faults([spec.format(onset=onset)] if spec else [])
    rewards = []
    for e in range(episodes):
        reboot(board.client)
        result = run(
            board,
            ENV,
            plan,
            1,
            seed=seed + e,
            steps=steps,
            learning=learning,
            board_client=board.client,
        )
        rewards.append(result.rewards)
    return float(np.nanmean(np.concatenate(rewards)[:, onset:]))


def board_table(board: BoardController, episodes: int, steps: int, onset: int, seed: int):
    table: dict[str, Any] = {}
    for learning in (True, False):
        row = {
            name: on_fresh_boards(board, spec, episodes, steps, onset, seed, learning)
            for name, spec in {"fault-free": None, **BOARD_FAULTS}.items()
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
    from deploy.demo import shipped_checkpoint
    from deploy.flash import connect, flash_and_boot
    from deploy.pack import pack_checkpoint
    from firmware_sim.process import BoardProcess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--onset", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("robot", "board"),
        default=["robot", "board"],
        help="which tables to make (default: both)",
    )
    args = parser.parse_args(argv)
    packed = pack_checkpoint(args.checkpoint or shipped_checkpoint(), "tianjic")
    args.out.mkdir(parents=True, exist_ok=True)
    with BoardProcess("tianjic") as process:
        client, transport = connect(process.url)
        flash_and_boot(client, packed.data, progress=False)
        board = BoardController(client, packed.image.meta["trace_unit"])
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
            robot = robot_table(controllers, args.episodes, args.steps, args.onset, args.seed)
        if "board" in args.parts:
            on_chip = board_table(board, args.episodes, args.steps, args.onset, args.seed)
        transport.close()
    result = {
        "episodes": args.episodes,
        "steps": args.steps,
        "onset": args.onset,
        "robot": robot,
        "board": on_chip,
    }
    (args.out / "closing_table.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
