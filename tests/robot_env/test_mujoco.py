"""MuJoCo Reacher-v5 and Ant-v5 under the same faults and teachers."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robot_env

mujoco = pytest.importorskip("mujoco")
pytestmark = pytest.mark.mujoco


@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped")
def test_check_env_with_faults_on_reacher():
    # No display here: skip the render check (it would open a human window).
    env = robot_env.make("Reacher-v5", ["robot:sensor-bias:joint=0,bias=0.2"])
    check_env(env, skip_render_check=True)


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
