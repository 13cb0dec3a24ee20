"""Teachers are strong, deterministic, and fault knowledge is what separates the two kinds."""

import numpy as np
import pytest

import robot_env


def episode(env_id, faults, aware, seed, steps=None):
    env = robot_env.make(env_id, faults)
    teacher = robot_env.make_teacher(env, fault_aware=aware)
    obs, _ = env.reset(seed=seed)
    total, actions, infos = 0.0, [], []
    for _ in range(steps or 10_000):
        action = teacher(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        actions.append(action)
        infos.append(info)
        if terminated or truncated:
            break
    return total, np.array(actions), infos


def test_teacher_is_deterministic():
    faults = ["robot:delay:steps=2,onset=20", "robot:sensor-noise:joint=0,std=0.1,onset=30"]
    for aware in (False, True):
        first = episode(robot_env.ARM_REACH, faults, aware, seed=5, steps=80)
        again = episode(robot_env.ARM_REACH, faults, aware, seed=5, steps=80)
        np.testing.assert_array_equal(first[1], again[1])


def test_arm_teacher_reaches_each_target():
    _, _, infos = episode(robot_env.ARM_REACH, [], aware=False, seed=0)
    settled = [info["distance"] for t, info in enumerate(infos) if t % 50 == 48]
    assert len(settled) == 8 and max(settled) < 0.01  # metres, 2.4 s after each new target


@pytest.mark.parametrize(
    "fault",
    ["robot:reversed-motor:joint=1,onset=100", "robot:delay:steps=3,onset=100"],
)
def test_fault_knowledge_recovers_what_a_fault_costs_the_blind_teacher(fault):
    healthy = np.mean([episode(robot_env.ARM_REACH, [], True, s)[0] for s in range(3)])
    blind = np.mean([episode(robot_env.ARM_REACH, [fault], False, s)[0] for s in range(3)])
    aware = np.mean([episode(robot_env.ARM_REACH, [fault], True, s)[0] for s in range(3)])
    assert blind < healthy - 40  # returns are about -50 when healthy
    assert aware > blind + 0.75 * (healthy - blind)


def test_bike_teacher_balances_and_follows_heading_at_every_speed():
    for seed in range(4):
        total, _, infos = episode(robot_env.BIKE_BALANCE, [], False, seed)
        assert len(infos) == 400 and total > 350
        assert max(abs(info["roll"]) for info in infos) < 0.2


def test_reversed_steering_drops_the_blind_bike_but_not_the_aware_one():
    fault = ["robot:reversed-motor:onset=50"]
    _, _, blind = episode(robot_env.BIKE_BALANCE, fault, False, 0)
    _, _, aware = episode(robot_env.BIKE_BALANCE, fault, True, 0)
    assert len(blind) < 150 and len(aware) == 400


def test_no_teacher_for_unknown_env():
    env = robot_env.make("Pendulum-v1")
    with pytest.raises(robot_env.EnvError, match="no teacher for PendulumEnv"):
        robot_env.make_teacher(env)
