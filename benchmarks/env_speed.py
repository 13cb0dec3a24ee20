"""Steps per second of the numpy robot tasks, bare and under FaultWrapper, beside CartPole-v1.

    python benchmarks/env_speed.py [--steps 20000] [--repeats 3]

Every variant runs in this one process, interleaved and best-of-repeats (goal: the wrapper costs
under 10 %). Two figures per wrapped variant: "slowdown" is the bare task's steps/s over the
wrapped one's; "own time" is the wrapper's time over the env's, split by a clock between
FaultWrapper and the env, so a fault that changes the physics' cost is not booked to the wrapper
(the clock's own ~1 us per step is, so "own time" is an upper bound on fast tasks). "faulted"
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


class InnerClock(gym.Wrapper):
    """Times the steps of the env it wraps (placed directly under FaultWrapper)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.seconds = 0.0

    def step(self, action):
        start = time.perf_counter()
        out = self.env.step(action)
        self.seconds += time.perf_counter() - start
        return out


def run(env: gym.Env, steps: int, seed: int = 0) -> tuple[float, float]:
    """Steps per second, and the fraction of the time the wrapped env itself took."""
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(1000)]
    env.reset(seed=seed)
    clock = env.env if isinstance(env, robot_env.FaultWrapper) else None
    if clock is not None:
        clock.seconds = 0.0
    start = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(actions[i % 1000])
        if terminated or truncated:
            env.reset()
    total = time.perf_counter() - start
    return steps / total, (clock.seconds / total if clock is not None else 1.0)


def variants() -> dict[str, gym.Env]:
    envs = {"CartPole-v1": gym.make("CartPole-v1")}
    for env_id, faults in FAULTS.items():
        envs[env_id] = gym.make(env_id)
        idle = [f"{faults[0]},onset=10000000"]
        envs[f"{env_id} + FaultWrapper idle"] = robot_env.FaultWrapper(
            InnerClock(gym.make(env_id)), idle
        )
        envs[f"{env_id} + FaultWrapper faulted"] = robot_env.FaultWrapper(
            InnerClock(gym.make(env_id)), faults
        )
    return envs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    envs = variants()
    best = dict.fromkeys(envs, (0.0, 1.0))
    for _ in range(args.repeats):
        for name, env in envs.items():
            best[name] = max(best[name], run(env, args.steps))
    cartpole = best["CartPole-v1"][0]
    print(f"{'variant':44} {'steps/s':>9} {'vs CartPole':>12} {'slowdown':>9} {'own time':>9}")
    for name, (rate, inner_share) in best.items():
        slowdown = own = ""
        if " + " in name:
            slowdown = f"{best[name.split(' + ')[0]][0] / rate - 1:+.1%}"
            own = f"{1 / inner_share - 1:+.1%}"
        print(f"{name:44} {rate:9.0f} {rate / cartpole:12.2f} {slowdown:>9} {own:>9}")


if __name__ == "__main__":
    main()
