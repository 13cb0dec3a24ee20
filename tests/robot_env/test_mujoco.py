"""MuJoCo Reacher-v5 (and its moving-target version) and Ant-v5 under the same faults and
teachers."""

import numpy as np
import pytest

import robot_env

mujoco = pytest.importorskip("mujoco")
pytestmark = pytest.mark.mujoco


def test_crippled_leg_changes_only_that_leg_and_heals_after_its_duration():
    env = robot_env.make("Ant-v5", ["robot:crippled-leg:leg=2,onset=3,duration=4"])
    model = env.unwrapped.model
    gear, contype = model.actuator_gear[:, 0].copy(), model.geom_contype.copy()
    env.reset(seed=0)
    for _ in range(4):
        env.step(np.zeros(8, np.float32))
    ankle = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "ankle_3")
    hip = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "hip_3")
    leg = [i for i in range(8) if model.actuator_trnid[i, 0] in (ankle, hip)]
    assert len(leg) == 2
    np.testing.assert_array_equal(model.actuator_gear[leg, 0], 0.0)
    others = [i for i in range(8) if i not in leg]
    np.testing.assert_array_equal(model.actuator_gear[others, 0], gear[others])
    lost = model.geom_contype != contype
    assert lost.sum() == 1 and model.geom_bodyid[lost][0] == model.jnt_bodyid[ankle]
    for _ in range(4):
        env.step(np.zeros(8, np.float32))
    np.testing.assert_array_equal(model.actuator_gear[:, 0], gear)
    np.testing.assert_array_equal(model.geom_contype, contype)


def test_reacher_payload_adds_mass_at_the_fingertip_only():
    env = robot_env.make("Reacher-v5", ["robot:payload:mass=0.05"])
    nominal = env.unwrapped.model.body_mass.copy()
    env.reset(seed=0)
    tip = env.unwrapped.model.body("fingertip").id
    change = env.unwrapped.model.body_mass - nominal
    assert change[tip] == pytest.approx(0.05) and np.count_nonzero(change) == 1


def test_ant_joint_sensor_is_the_motors_joint():
    env = robot_env.make("Ant-v5", ["robot:sensor-bias:joint=5,bias=0.25"])
    obs, _ = env.reset(seed=0)
    data, model = env.unwrapped.data, env.unwrapped.model
    joint = model.actuator_trnid[5, 0]
    position = model.jnt_qposadr[joint] - 2
    assert obs[position] == pytest.approx(data.qpos[model.jnt_qposadr[joint]] + 0.25)


def run(env_id, faults, aware, seed, steps):
    env = robot_env.make(env_id, faults)
    teacher = robot_env.make_teacher(env, aware)
    obs, _ = env.reset(seed=seed)
    total = 0.0
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(teacher(obs))
        total += reward
        if terminated or truncated:
            break
    return total, info


def test_reacher_teacher_reaches_and_fault_knowledge_matters():
    _, info = run("Reacher-v5", [], False, 0, 50)
    assert -info["reward_dist"] < 0.03
    fault = ["robot:reversed-motor:joint=1,onset=10"]
    blind = np.mean([run("Reacher-v5", fault, False, s, 50)[0] for s in range(3)])
    aware = np.mean([run("Reacher-v5", fault, True, s, 50)[0] for s in range(3)])
    assert aware > blind + 10


def test_ant_gait_walks_forward_even_with_a_crippled_leg():
    _, healthy = run("Ant-v5", [], False, 0, 300)
    _, crippled = run("Ant-v5", ["robot:crippled-leg:leg=0"], True, 0, 300)
    assert healthy["x_position"] > 6.0 and crippled["x_position"] > 3.0


def test_moving_target_moves_every_50_steps_on_its_phase_and_leaves_the_arm_alone() -> None:
    from robot_env.reacher import GOAL_RADIUS, move_target

    for phase in (0, 17):
        env = robot_env.make(robot_env.REACHER_MOVING_TARGET, phase=phase, max_episode_steps=120)
        teacher = robot_env.make_teacher(env, fault_aware=True)
        obs, _ = env.reset(seed=5)
        targets = [obs[4:6]]
        for _ in range(120):
            obs, *_ = env.step(teacher(obs))
            targets.append(obs[4:6])
            tip = env.unwrapped.get_body_com("fingertip")[:2]
            np.testing.assert_allclose(obs[8:10], tip - obs[4:6], atol=1e-6)
        moved = np.any(np.diff(np.stack(targets), axis=0) != 0, axis=1)
        expected = [t for t in range(1, 121) if (t + phase) % 50 == 0]
        assert list(np.flatnonzero(moved) + 1) == expected
        assert (np.linalg.norm(np.stack(targets), axis=1) < GOAL_RADIUS).all()
    # moving the target leaves the arm's joints and speeds as they were
    unwrapped = env.unwrapped
    qpos, qvel = unwrapped.data.qpos.copy(), unwrapped.data.qvel.copy()
    obs = move_target(unwrapped)
    np.testing.assert_array_equal(unwrapped.data.qpos[:2], qpos[:2])
    np.testing.assert_array_equal(unwrapped.data.qvel[:2], qvel[:2])
    np.testing.assert_array_equal(obs[4:6], unwrapped.data.qpos[2:4])
    assert not np.array_equal(qpos[2:4], unwrapped.data.qpos[2:4])


def test_moving_target_is_reacher_until_its_target_first_moves() -> None:
    moving = robot_env.make(robot_env.REACHER_MOVING_TARGET, ["robot:gain-loss:gain=0.5"])
    plain = robot_env.make("Reacher-v5", ["robot:gain-loss:gain=0.5"])
    actions = np.random.default_rng(0).uniform(-1, 1, (49, 2)).astype(np.float32)
    np.testing.assert_array_equal(moving.reset(seed=2)[0], plain.reset(seed=2)[0])
    for action in actions:
        a, b = moving.step(action), plain.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1] == b[1]
