"""Each robot fault kind changes what it should and nothing else, on its schedule."""

import gymnasium as gym
import numpy as np
import pytest

import robot_env
from robot_env import EnvError, FaultTargetError, FaultWrapper
from robot_env.arm import wrap_angle

ONSET, STEPS = 10, 30


class ActionLog(gym.Wrapper):
    """Records the action that reaches the env beneath the fault wrapper."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.received: list[np.ndarray] = []

    def step(self, action):
        self.received.append(np.array(action, dtype=np.float64))
        return self.env.step(action)


def commands(n=STEPS, dims=2, seed=0):
    return np.random.default_rng(seed).uniform(-0.9, 0.9, (n, dims)).astype(np.float32)


def run(faults, env_id=robot_env.ARM_REACH, actions=None, seed=0):
    log = ActionLog(gym.make(env_id))
    env = FaultWrapper(log, faults)
    obs, info = env.reset(seed=seed)
    actions = commands(dims=env.action_space.shape[0]) if actions is None else actions
    observations, states, infos = [obs], [], [info]
    for action in actions:
        obs, *_, info = env.step(action)
        observations.append(obs)
        states.append(np.concatenate([env.unwrapped.q, env.unwrapped.qd]))
        infos.append(info)
    return np.array(observations), np.array(states), np.array(log.received), infos, env


def c(actions, t, j=1):
    return float(actions[t, j])


ACTUATOR_CASES = {
    "robot:gain-loss:joint=1,gain=0.3": lambda a, t: 0.3 * c(a, t),
    "robot:reversed-motor:joint=1,gain=-0.7": lambda a, t: -0.7 * c(a, t),
    "robot:dead-motor:joint=1": lambda a, t: 0.0,
    "robot:bias-torque:joint=1,bias=0.2": lambda a, t: c(a, t) + 0.2,
    "robot:saturation:joint=1,limit=0.3": lambda a, t: float(np.clip(c(a, t), -0.3, 0.3)),
    "robot:delay:joint=1,steps=2": lambda a, t: c(a, t - 2),
}


@pytest.mark.parametrize("spec", ACTUATOR_CASES)
def test_actuator_kind_changes_only_its_joints_command(spec):
    actions = commands()
    obs, _, received, _, _ = run([f"{spec},onset={ONSET}"], actions=actions)
    np.testing.assert_allclose(received[:, 0], actions[:, 0], rtol=1e-6)
    np.testing.assert_allclose(received[:ONSET, 1], actions[:ONSET, 1], rtol=1e-6)
    expected = [ACTUATOR_CASES[spec](actions, t) for t in range(ONSET, STEPS)]
    np.testing.assert_allclose(received[ONSET:, 1], expected, rtol=1e-6, atol=1e-7)
    # The observation path is untouched: a clean env fed the received actions sees the same.
    clean_obs, *_ = run([], actions=received.astype(np.float32))
    np.testing.assert_array_equal(obs, clean_obs)


SENSOR_KINDS = [
    "robot:sensor-noise:joint=1,std=0.2",
    "robot:sensor-bias:joint=1,bias=0.3",
    "robot:sensor-stuck:joint=1",
    "robot:sensor-dropout:joint=1,p=1",
]
JOINT_1_READINGS = [1, 3, 5]  # cos q2, sin q2, qd2


@pytest.mark.parametrize("spec", SENSOR_KINDS)
def test_sensor_kind_changes_only_its_readings_and_not_the_physics(spec):
    clean_obs, clean_states, *_ = run([])
    obs, states, *_ = run([f"{spec},onset={ONSET}"])
    np.testing.assert_array_equal(states, clean_states)
    np.testing.assert_array_equal(obs[:ONSET], clean_obs[:ONSET])
    others = [i for i in range(10) if i not in JOINT_1_READINGS]
    np.testing.assert_array_equal(obs[:, others], clean_obs[:, others])
    # From onset on (stuck equals the truth at onset itself, by definition).
    after, clean_after = (
        obs[ONSET + 1 :, JOINT_1_READINGS],
        clean_obs[ONSET + 1 :, JOINT_1_READINGS],
    )
    assert np.all(np.any(after != clean_after, axis=1))


def test_sensor_bias_rotates_the_encoder_angle_and_offsets_the_speed():
    clean_obs, *_ = run([])
    obs, *_ = run(["robot:sensor-bias:joint=1,bias=0.3,onset=0"])
    shift = wrap_angle(
        np.arctan2(obs[:, 3], obs[:, 1]) - np.arctan2(clean_obs[:, 3], clean_obs[:, 1])
    )
    np.testing.assert_allclose(shift, 0.3, atol=1e-5)
    np.testing.assert_allclose(np.hypot(obs[:, 1], obs[:, 3]), 1.0, atol=1e-5)
    np.testing.assert_allclose(obs[:, 5] - clean_obs[:, 5], 0.3, atol=1e-5)


def test_sensor_stuck_holds_the_reading_at_onset_and_dropout_reads_zero():
    clean_obs, *_ = run([])
    stuck, *_ = run([f"robot:sensor-stuck:channel=tip,onset={ONSET}"])
    np.testing.assert_array_equal(
        stuck[ONSET:, 8:10], np.broadcast_to(clean_obs[ONSET, 8:10], (STEPS + 1 - ONSET, 2))
    )
    dropped, *_ = run(["robot:sensor-dropout:obs=6,p=0.5,onset=0,seed=3"])
    zero = dropped[:, 6] == 0
    assert 0.2 < zero.mean() < 0.8
    np.testing.assert_array_equal(dropped[~zero, 6], clean_obs[~zero, 6])


def test_sensor_noise_has_the_requested_spread():
    clean_obs, *_ = run([], actions=commands(400))
    noisy, *_ = run(["robot:sensor-noise:obs=4,std=0.5"], actions=commands(400))
    assert np.std(noisy[:, 4] - clean_obs[:, 4]) == pytest.approx(0.5, rel=0.15)


@pytest.mark.parametrize(
    ("spec", "field", "change"),
    [
        ("robot:payload:mass=0.7", "payload", lambda p: p.payload + 0.7),
        ("robot:friction:joint=0,scale=4", "damping", lambda p: p.damping * [4, 1]),
        ("robot:mass-change:joint=1,scale=2", "link_mass", lambda p: p.link_mass * [1, 2]),
    ],
)
def test_body_kind_changes_only_its_parameter(spec, field, change):
    clean_obs, clean_states, *_ = run([])
    obs, states, _, _, env = run([f"{spec},onset={ONSET}"])
    base, params = env.unwrapped.base_params, env.unwrapped.params
    np.testing.assert_allclose(getattr(params, field), change(base))
    for other in ("link_length", "link_mass", "damping", "motor_gain", "payload"):
        if other != field:
            np.testing.assert_array_equal(getattr(params, other), getattr(base, other))
    np.testing.assert_array_equal(states[:ONSET], clean_states[:ONSET])
    assert not np.allclose(states[ONSET + 1 :], clean_states[ONSET + 1 :])


def test_bike_payload_and_friction_change_mass_and_steer_damping():
    env = robot_env.make(
        robot_env.BIKE_BALANCE, ["robot:payload:mass=47", "robot:friction:scale=3"]
    )
    env.reset(seed=1)
    base, params = env.unwrapped.base_params, env.unwrapped.params
    assert params.mass_scale == pytest.approx(base.mass_scale * 1.5)
    assert params.steer_damping == pytest.approx(base.steer_damping * 3)
    assert (params.speed, params.roll_offset) == (base.speed, base.roll_offset)


def test_schedule_duration_and_info():
    _, _, _, infos, _ = run(["robot:gain-loss:gain=0.5,onset=5,duration=7"])
    active = [bool(info["faults"]) for info in infos[1:]]
    assert active == [5 <= t < 12 for t in range(STEPS)]
    assert infos[6]["faults"][0]["kind"] == "gain-loss" and infos[6]["fault_step"] == 5


def test_random_onset_is_drawn_in_its_window_and_seeded():
    env = robot_env.make(robot_env.ARM_REACH, ["robot:dead-motor:onset=100..200,seed=5"])
    onsets = []
    for seed in range(12):
        env.reset(seed=seed)
        onsets.append(env.onsets[0])
    assert all(100 <= onset <= 200 for onset in onsets) and len(set(onsets)) > 3
    env.reset(seed=4)
    assert env.onsets[0] == onsets[4]


def test_no_faults_changes_nothing():
    env = gym.make(robot_env.ARM_REACH)
    plain = [env.reset(seed=2)[0]] + [env.step(a)[0] for a in commands()]
    wrapped_obs, *_ = run([], seed=2)
    np.testing.assert_array_equal(np.array(plain), wrapped_obs)


def test_several_faults_at_once_compose():
    actions = commands()
    _, _, received, _, _ = run(
        ["robot:gain-loss:joint=0,gain=0.5", "robot:bias-torque:joint=0,bias=0.1,onset=5"],
        actions=actions,
    )
    np.testing.assert_allclose(received[:5, 0], 0.5 * actions[:5, 0], rtol=1e-6)
    np.testing.assert_allclose(received[5:, 0], 0.5 * actions[5:, 0] + 0.1, rtol=1e-6)


@pytest.mark.parametrize(
    ("faults", "words"),
    [
        (["robot:gain-loss:joint=2"], "joint 2 does not exist"),
        (["robot:sensor-bias:channel=elbow"], "no sensor 'channel=elbow'"),
        (["robot:crippled-leg:leg=1"], "no legs"),
        (["robot:sensor-noise:obs=10"], "not an index"),
    ],
)
def test_bad_targets_fail_with_one_sentence(faults, words):
    with pytest.raises(FaultTargetError, match=words):
        robot_env.make(robot_env.ARM_REACH, faults)


def test_needs_box_spaces():
    with pytest.raises(EnvError, match="Box action and observation"):
        FaultWrapper(gym.make("CartPole-v1"))


def test_reset_options_replace_the_faults():
    env = robot_env.make(robot_env.ARM_REACH)
    _, info = env.reset(seed=0, options={"faults": ["robot:dead-motor:joint=0"]})
    assert [f["kind"] for f in info["faults"]] == ["dead-motor"]
