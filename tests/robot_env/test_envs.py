"""Every registered task passes check_env, replays exactly from its seed and has a teacher; the
numpy tasks render headless."""

import importlib.util

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robot_env
from robot_env import arm, bike

NO_MUJOCO = importlib.util.find_spec("mujoco") is None
EVERY_TASK = [
    *robot_env.NUMPY_TASKS,
    *(
        pytest.param(env_id, marks=[pytest.mark.mujoco, pytest.mark.skipif(NO_MUJOCO, reason="")])
        for env_id in robot_env.MUJOCO_TASKS
    ),
]


def rollout(env: gym.Env, seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    obs, _ = env.reset(seed=seed)
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, *env.action_space.shape))
    observations, rewards = [obs], []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action.astype(np.float32))
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards)


# gymnasium's MuJoCo envs declare unbounded observations, and its checker warns about that.
UNBOUNDED = "ignore:.*A Box observation space m.* is probably too"


@pytest.mark.parametrize("env_id", EVERY_TASK)
@pytest.mark.filterwarnings(UNBOUNDED)
def test_check_env_passes(env_id):
    env = gym.make(env_id)
    # MuJoCo's render check would open a window, and there is no display here.
    check_env(env.unwrapped, skip_render_check=env_id in robot_env.MUJOCO_TASKS)


@pytest.mark.parametrize("env_id", EVERY_TASK)
@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped", UNBOUNDED)
def test_check_env_passes_with_faults_wrapped(env_id):
    env = robot_env.make(
        env_id, ["robot:sensor-noise:joint=0,std=0.05", "robot:gain-loss:gain=0.5"]
    )
    check_env(env, skip_render_check=True)


@pytest.mark.parametrize("env_id", EVERY_TASK)
def test_seed_reproduces_episode_and_differs_across_seeds(env_id):
    faults = ["robot:sensor-dropout:p=0.3,onset=5..20", "robot:bias-torque:bias=0.1,onset=10"]
    first = rollout(robot_env.make(env_id, faults), seed=3, steps=60)
    again = rollout(robot_env.make(env_id, faults), seed=3, steps=60)
    other = rollout(robot_env.make(env_id, faults), seed=4, steps=60)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0][0], other[0][0])


@pytest.mark.parametrize("env_id", EVERY_TASK)
def test_every_task_registers_its_teacher(env_id):
    env = robot_env.make(env_id)
    for aware in (False, True):
        teacher = robot_env.make_teacher(env, fault_aware=aware)
        assert isinstance(teacher, robot_env.Teacher) and teacher.fault_aware == aware
    obs, _ = env.reset(seed=0)
    assert env.action_space.contains(teacher(obs))


@pytest.mark.parametrize("env_id", robot_env.NUMPY_TASKS)
def test_rgb_array_render(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    for _ in range(10):
        env.step(env.action_space.sample() * 0 + 1)
    second = env.render()
    assert first.shape == (256, 256, 3) and first.dtype == np.uint8
    assert len(np.unique(first.reshape(-1, 3), axis=0)) >= 4  # background plus drawn parts
    assert not np.array_equal(first, second)


def test_arm_physics_broadcast_over_a_batch_like_single_episodes():
    rng = np.random.default_rng(0)
    n = 5
    params = arm.sample_arm_params(rng, (n,))
    q, qd = rng.uniform(-2, 2, (n, 2)), rng.uniform(-1, 1, (n, 2))
    action = rng.uniform(-1, 1, (n, 2))
    target = arm.sample_target(rng, params, (n,))
    batch_q, batch_qd = arm.arm_step(q, qd, action, params)
    batch_torque = arm.computed_torque(q, qd, target, params)
    for i in range(n):
        one = arm.ArmParams(
            *(
                np.asarray(getattr(params, f))[i]
                for f in ("link_length", "link_mass", "damping", "motor_gain", "payload")
            )
        )
        single_q, single_qd = arm.arm_step(q[i], qd[i], action[i], one)
        np.testing.assert_allclose(batch_q[i], single_q)
        np.testing.assert_allclose(batch_qd[i], single_qd)
        np.testing.assert_allclose(
            batch_torque[i], arm.computed_torque(q[i], qd[i], target[i], one)
        )


def test_arm_conserves_energy_without_damping_or_torque():
    params = arm.NOMINAL.__class__(
        link_length=arm.NOMINAL.link_length,
        link_mass=arm.NOMINAL.link_mass,
        damping=np.zeros(2),
        motor_gain=np.ones(2),
        payload=np.array(0.2),
    )
    q, qd = np.array([0.3, 1.0]), np.array([1.5, -2.0])

    def energy(q, qd):
        return 0.5 * qd @ arm.mass_matrix(q, params) @ qd

    start = energy(q, qd)
    for _ in range(200):
        q, qd = arm.arm_step(q, qd, np.zeros(2), params)
    assert energy(q, qd) == pytest.approx(start, rel=1e-3)


def test_bike_weave_speed_range_matches_the_benchmark():
    # Meijaard et al. (2007): the uncontrolled benchmark bicycle is stable for 4.292 < v < 6.024.
    def stable(speed):
        a, _ = bike.continuous_matrices(bike.BikeParams(speed=speed, steer_damping=0.0))
        return np.linalg.eigvals(a[:4, :4]).real.max() < 0

    assert [stable(v) for v in (4.0, 4.4, 5.0, 6.0, 6.1)] == [False, True, True, True, False]


def test_bike_falls_without_control_at_low_speed():
    env = gym.make(robot_env.BIKE_BALANCE)
    env.reset(seed=0)
    env.unwrapped.apply_body_faults([])
    env.unwrapped.params = bike.BikeParams(speed=2.0)
    env.unwrapped.ad, env.unwrapped.bd = bike.discrete_matrices(env.unwrapped.params)
    steps = 0
    terminated = False
    while not terminated and steps < 400:
        _, _, terminated, _, _ = env.step(np.zeros(1, np.float32))
        steps += 1
    assert terminated and steps < 200


def test_heavy_friction_stays_stable():
    # Friction x20 on a light forearm is stiff; the step splits itself so speeds only decay.
    params = arm.ArmParams(
        link_length=np.array([0.45, 0.36]),
        link_mass=np.array([0.8, 0.64]),
        damping=np.array([6.0, 6.0]),
        motor_gain=np.ones(2),
        payload=np.array(0.0),
    )
    assert arm.stable_substeps(params) > 1
    q, qd = np.array([0.0, 1.0]), np.array([5.0, -5.0])
    speeds = []
    for _ in range(20):
        q, qd = arm.arm_step(q, qd, np.zeros(2), params)
        speeds.append(np.abs(qd).max())
    assert np.all(np.diff(speeds) <= 1e-9) and speeds[-1] < 1e-3
