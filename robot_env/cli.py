"""``glocal`` verbs owned by ``robot_env``: ``glocal envs`` lists tasks and robot fault kinds."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    p = subparsers.add_parser(
        "envs",
        parents=parents,
        help="list the robot tasks, their spaces and the robot fault kinds",
        description=(
            "List the registered robot tasks (with their action and observation spaces) and the "
            "robot fault kinds that --fault robot:KIND:key=value,... accepts. With --fault, "
            "check a fault spec and print its record."
        ),
    )
    p.add_argument("--fault", action="append", default=[], metavar="SPEC", help="spec to check")
    p.set_defaults(handler=envs_command)


def envs_command(args: argparse.Namespace) -> dict[str, Any]:
    import gymnasium as gym

    import robot_env
    from robot_env.faults import KINDS

    faults = [robot_env.parse_robot_fault(spec).to_dict() for spec in args.fault]
    tasks = {}
    for env_id in (*robot_env.NUMPY_TASKS, *robot_env.MUJOCO_TASKS):
        try:
            env = gym.make(env_id)
        except (ImportError, gym.error.Error) as error:
            tasks[env_id] = {"available": False, "why": str(error)}
            continue
        tasks[env_id] = {
            "available": True,
            "action_space": str(env.action_space),
            "observation_space": str(env.observation_space),
            "max_episode_steps": env.spec.max_episode_steps if env.spec else None,
            "shapes": f"action {env.action_space.shape} observation {env.observation_space.shape}",
        }
        env.close()
    kinds = {
        name: {"group": kind.group, "magnitude": kind.magnitude_key, "targets": kind.targets}
        for name, kind in KINDS.items()
    }
    for env_id, task in tasks.items():
        print(f"{env_id:30} {task.get('shapes', task.get('why'))}", file=sys.stderr)
    for name, kind in KINDS.items():
        key = f"{kind.magnitude_key}=" if kind.magnitude_key else "-"
        print(f"robot:{name:16} {kind.group:9} {key:8} {kind.doc}", file=sys.stderr)
    for record in faults:
        print(f"fault ok: {record}", file=sys.stderr)
    return {"tasks": tasks, "fault_kinds": kinds, "faults": faults}
