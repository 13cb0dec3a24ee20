"""Steps per second of the numpy robot tasks, bare and under FaultWrapper, beside CartPole-v1.

    python benchmarks/env_speed.py [--steps 20000] [--repeats 3]

Every variant runs in this one process, interleaved and best-of-repeats, and the wrapper's cost
is printed as a ratio to the bare task measured in the same run (goal: under 10 %). "faulted"
carries an active actuator fault and an active sensor fault from step 0; "idle" carries a fault
scheduled after the run ends, which is the wrapper's bookkeeping alone.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym

import robot_env

FAULTS = {
    robot_env.ARM_REACH: ["robot:gain-loss:joint=1,gain=0.5", "robot:sensor-bias:joint=0,bias=0.1"],
    robot_env.BIKE_BALANCE: [
        "robot:gain-loss:gain=0.5",
        "robot:sensor-bias:channel=roll,bias=0.01",
    ],
}


def steps_per_second(env: gym.Env, steps: int, seed: int = 0) -> float:
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(1000)]
    env.reset(seed=seed)
    start = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(actions[i % 1000])
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def variants() -> dict[str, gym.Env]:
    envs = {"CartPole-v1": gym.make("CartPole-v1")}
    for env_id, faults in FAULTS.items():
        envs[env_id] = gym.make(env_id)
        envs[f"{env_id} + FaultWrapper idle"] = robot_env.make(
            env_id, [f"{faults[0]},onset=10000000"]
        )
        envs[f"{env_id} + FaultWrapper faulted"] = robot_env.make(env_id, faults)
    return envs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    envs = variants()
    best = dict.fromkeys(envs, 0.0)
    for _ in range(args.repeats):
        for name, env in envs.items():
            best[name] = max(best[name], steps_per_second(env, args.steps))
    cartpole = best["CartPole-v1"]
    print(f"{'variant':48} {'steps/s':>10} {'vs CartPole':>12} {'wrapper cost':>13}")
    for name, rate in best.items():
        base = best[name.split(" + ")[0]]
        cost = f"{base / rate - 1:+.1%}" if " + " in name else ""
        print(f"{name:48} {rate:10.0f} {rate / cartpole:12.2f} {cost:>13}")


if __name__ == "__main__":
    main()
