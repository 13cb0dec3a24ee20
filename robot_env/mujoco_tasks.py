"""Gymnasium's MuJoCo ``Reacher-v5`` and ``Ant-v5`` under the same faults and teachers.

Imported only when a MuJoCo env meets a ``FaultWrapper`` or a teacher, so ``import robot_env``
works without the ``mujoco`` extra.

- Sensors: ``joint=j`` is the joint that motor ``j`` drives (its angle and speed in the
  observation); Reacher also names ``channel=target`` and ``channel=tip`` (fingertip minus
  target).
- Body faults edit the ``MjModel`` in place; :class:`MujocoBody` keeps the nominal arrays, restores
  them and re-applies the active faults whenever the set changes. ``payload`` adds mass to the
  end effector (Reacher's fingertip, Ant's torso) or ``body=NAME``; ``mass-change`` scales
  masses and inertias (``body=NAME`` or all); ``friction`` scales joint damping (Ant: the
  ground's sliding friction); ``crippled-leg`` (Ant, ``leg=0..3`` = the legs of ``hip_1..hip_4``)
  zeroes the leg's two motors and removes its lower segment's contacts, as if broken at the knee.
- Teachers: Reacher uses computed torque with MuJoCo's mass matrix and bias forces (a scratch
  ``MjData`` over the true or the nominal model); Ant uses a scripted trot (open-loop joint
  targets tracked by PD, heading corrected from the torso's yaw), tuned here, not trained.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import gymnasium as gym
import mujoco
import numpy as np

from robot_env.errors import FaultTargetError
from robot_env.faults import RobotFault, joint_indices, target_parts
from robot_env.teachers import Teacher
from robot_env.wrapper import Channel, angle, scalar

REACHER_KP = 100.0
REACHER_KD = 2.0 * np.sqrt(REACHER_KP)


def _name(model: mujoco.MjModel, kind: mujoco.mjtObj, index: int) -> str:
    return mujoco.mj_id2name(model, kind, index) or ""


def motor_joints(model: mujoco.MjModel) -> list[int]:
    """The joint each actuator drives, in action order."""
    return [int(model.actuator_trnid[i, 0]) for i in range(model.nu)]


def mujoco_sensor_channels(unwrapped: gym.Env) -> dict[str, list[Channel]]:
    model = unwrapped.model
    kind = type(unwrapped).__name__
    channels: dict[str, list[Channel]] = {}
    if kind == "ReacherEnv":
        for j in range(2):
            channels[f"joint={j}"] = [angle(j, 2 + j), scalar(6 + j)]
        channels["channel=target"] = [scalar(4), scalar(5)]
        channels["channel=tip"] = [scalar(8), scalar(9)]
    elif kind == "AntEnv" and getattr(
        unwrapped, "_exclude_current_positions_from_observation", True
    ):
        for j, joint in enumerate(motor_joints(model)):
            position = int(model.jnt_qposadr[joint]) - 2
            speed = model.nq - 2 + int(model.jnt_dofadr[joint])
            channels[f"joint={j}"] = [scalar(position), scalar(speed)]
    return channels


def leg_parts(model: mujoco.MjModel) -> list[tuple[list[int], list[int]]]:
    """Per Ant leg (hip_1..hip_4): its actuators and the geoms of its lower segment."""
    joint_names = [_name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in motor_joints(model)]
    legs = []
    for leg in range(1, 5):
        actuators = [i for i, n in enumerate(joint_names) if n in (f"hip_{leg}", f"ankle_{leg}")]
        ankle = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, f"ankle_{leg}")
        body = int(model.jnt_bodyid[ankle])
        geoms = [g for g in range(model.ngeom) if int(model.geom_bodyid[g]) == body]
        legs.append((actuators, geoms))
    return legs


class MujocoBody:
    """Body faults on a gymnasium MuJoCo env: edits ``model`` in place, keeps ``nominal``."""

    FIELDS = (
        "body_mass",
        "body_inertia",
        "dof_damping",
        "geom_friction",
        "actuator_gear",
        "geom_contype",
        "geom_conaffinity",
    )

    def __init__(self, unwrapped: gym.Env) -> None:
        self.unwrapped = unwrapped
        self.model: mujoco.MjModel = unwrapped.model
        self.nominal: mujoco.MjModel = copy.deepcopy(self.model)
        self.kind = type(unwrapped).__name__
        self.end_body = "torso" if self.kind == "AntEnv" else "fingertip"
        self._applied: tuple[RobotFault, ...] = ()

    def check_body_fault(self, fault: RobotFault) -> None:
        key, value = target_parts(fault.target)
        if fault.kind == "crippled-leg":
            if self.kind != "AntEnv":
                raise FaultTargetError(f"{self.kind} has no legs; crippled-leg needs Ant.")
            if value not in ("0", "1", "2", "3"):
                raise FaultTargetError(f"leg={value} does not exist: Ant has legs 0..3.")
        elif key == "body":
            self._body_id(value)
        elif key == "joint":
            joint_indices(fault.target, self.model.nu)

    def _body_id(self, name: str) -> int:
        body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
        if body < 0:
            names = [
                _name(self.model, mujoco.mjtObj.mjOBJ_BODY, b) for b in range(self.model.nbody)
            ]
            raise FaultTargetError(
                f"{self.kind} has no body {name!r}; bodies: {', '.join(n for n in names if n)}."
            )
        return body

    def apply_body_faults(self, faults: Sequence[RobotFault]) -> None:
        if tuple(faults) == self._applied:
            return
        self._applied = tuple(faults)
        model, nominal = self.model, self.nominal
        for name in self.FIELDS:
            getattr(model, name)[:] = getattr(nominal, name)
        for fault in faults:
            key, value = target_parts(fault.target)
            if fault.kind == "payload":
                model.body_mass[self._body_id(value if key == "body" else self.end_body)] += (
                    fault.magnitude
                )
            elif fault.kind == "mass-change":
                bodies = [self._body_id(value)] if key == "body" else slice(None)
                model.body_mass[bodies] *= fault.magnitude
                model.body_inertia[bodies] *= fault.magnitude
            elif fault.kind == "friction" and self.kind == "AntEnv":
                model.geom_friction[:, 0] *= fault.magnitude
            elif fault.kind == "friction":
                joints = motor_joints(model)
                for j in joint_indices(fault.target, model.nu):
                    model.dof_damping[model.jnt_dofadr[joints[j]]] *= fault.magnitude
            elif fault.kind == "crippled-leg":
                actuators, geoms = leg_parts(model)[int(value)]
                model.actuator_gear[actuators, 0] = 0.0
                model.geom_contype[geoms] = 0
                model.geom_conaffinity[geoms] = 0
        # Subtree masses and the like are derived at compile time; refresh them on scratch data
        # (mj_setConst moves the data it is given to qpos0).
        mujoco.mj_setConst(model, mujoco.MjData(model))


class MujocoTeacher(Teacher):
    """Shared MuJoCo plumbing: a scratch ``MjData`` per model to plan and predict with."""

    def __init__(self, env: gym.Env, fault_aware: bool) -> None:
        super().__init__(env, fault_aware)
        body = self.faults.body if self.faults is not None else None
        self._nominal = body.nominal if isinstance(body, MujocoBody) else self.unwrapped.model
        self._scratch: dict[int, mujoco.MjData] = {}

    def model(self, faulted: bool) -> mujoco.MjModel:
        return self.unwrapped.model if faulted else self._nominal

    def data_for(self, model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray) -> mujoco.MjData:
        data = self._scratch.get(id(model))
        if data is None:  # not setdefault: it built (and dropped) an MjData per call, 0.3 ms
            data = self._scratch[id(model)] = mujoco.MjData(model)
        data.qpos[:], data.qvel[:] = qpos, qvel
        return data

    def true_state(self) -> tuple[np.ndarray, np.ndarray]:
        return self.unwrapped.data.qpos.copy(), self.unwrapped.data.qvel.copy()

    def advance(self, state: tuple, output: np.ndarray, model: mujoco.MjModel) -> tuple:
        data = self.data_for(model, *state)
        data.ctrl[:] = np.clip(output, -1.0, 1.0)
        mujoco.mj_step(model, data, nstep=self.unwrapped.frame_skip)
        return data.qpos.copy(), data.qvel.copy()


class ReacherTeacher(MujocoTeacher):
    """Computed torque towards the inverse-kinematics solution, with MuJoCo's dynamics."""

    def observed_state(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.arctan2(obs[2:4], obs[0:2])
        return np.concatenate([q, obs[4:6]]), np.concatenate([obs[6:8], np.zeros(2)])

    def output(self, state: tuple, model: mujoco.MjModel) -> np.ndarray:
        qpos, qvel = state
        l1 = float(model.body("body1").pos[0])
        l2 = float(model.body("fingertip").pos[0])
        q, qd, target = qpos[:2], qvel[:2], qpos[2:4]
        q_goal = _two_link_ik(target, q, l1, l2)
        qdd = REACHER_KP * _wrap(q_goal - q) - REACHER_KD * qd
        data = self.data_for(model, qpos, qvel)
        mujoco.mj_forward(model, data)
        mass = dense_mass_matrix(model, data)
        tau = mass[:2, :2] @ qdd + data.qfrc_bias[:2] - data.qfrc_passive[:2]
        gear = self.model(False).actuator_gear[:2, 0]
        return tau / gear


def dense_mass_matrix(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """``M(q)`` as a dense (nv, nv) array, after ``mj_forward``."""
    mass = np.zeros((model.nv, model.nv))
    if hasattr(data, "qM"):  # MuJoCo 3.x: mj_fullM(m, dst, qM)
        mujoco.mj_fullM(model, mass, data.qM)
    else:  # MuJoCo 4: mj_fullM(m, d, dst)
        mujoco.mj_fullM(model, data, mass)
    return mass


def _wrap(x: np.ndarray) -> np.ndarray:
    return (x + np.pi) % (2 * np.pi) - np.pi


def _two_link_ik(target: np.ndarray, q: np.ndarray, l1: float, l2: float) -> np.ndarray:
    dist = np.clip(np.linalg.norm(target), abs(l1 - l2) + 1e-6, l1 + l2 - 1e-6)
    cos_elbow = np.clip((dist**2 - l1**2 - l2**2) / (2 * l1 * l2), -1.0, 1.0)
    heading = np.arctan2(target[1], target[0])
    candidates = []
    for sign in (1.0, -1.0):
        q2 = sign * np.arccos(cos_elbow)
        q1 = heading - np.arctan2(l2 * np.sin(q2), l1 + l2 * np.cos(q2))
        candidates.append(np.array([q1, q2]))
    return min(candidates, key=lambda c: float(np.abs(_wrap(c - q)).sum()))


# A trot: diagonal legs (1, 3) and (2, 4) in phase. Constants found by a small grid search on
# Ant-v5 (seed 0, 200 steps: about 0.6 m/s forward, return about 300).
ANT_PERIOD = 20  # control steps per gait cycle (1 s)
ANT_HIP_AMPLITUDE = 0.5  # rad
ANT_ANKLE_MEAN = 0.75  # rad of knee bend
ANT_ANKLE_LIFT = -0.25  # rad: the ankle opens during half of the cycle
ANT_KP, ANT_KD = 1.0, 0.1  # action units per rad, per rad/s
ANT_HIP_SIGN = np.array([-1.0, -1.0, 1.0, 1.0])
ANT_ANKLE_SIGN = np.array([1.0, -1.0, -1.0, 1.0])  # the sign that bends each leg (joint ranges)
ANT_PHASE = np.array([0.0, np.pi, 0.0, np.pi])
ANT_YAW_GAIN = 0.5  # stride change per rad of yaw


class AntTeacher(MujocoTeacher):
    """Scripted trot tracked by joint PD; the torso's yaw steers it back onto +x.

    Fault-blind, it reads joint angles and speeds from the observation and the yaw from the
    torso quaternion in it; fault-aware, it reads the true state and inverts actuator faults.
    """

    def observed_state(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        model = self.unwrapped.model
        qpos = np.concatenate([np.zeros(2), obs[: model.nq - 2]])
        return qpos, obs[model.nq - 2 : model.nq - 2 + model.nv]

    def output(self, state: tuple, model: mujoco.MjModel) -> np.ndarray:
        qpos, qvel = state
        phase = 2 * np.pi * self._step() / ANT_PERIOD + ANT_PHASE
        w, _, _, z = qpos[3:7]
        yaw = np.arctan2(2 * w * z, 1 - 2 * z * z)
        # A yaw is undone by lengthening the stride of legs 1, 2 and shortening that of 3, 4.
        stride = ANT_HIP_AMPLITUDE * (
            1 + ANT_YAW_GAIN * np.clip(yaw, -1, 1) * np.array([1, 1, -1, -1])
        )
        hip = ANT_HIP_SIGN * stride * np.sin(phase)
        ankle = ANT_ANKLE_SIGN * (ANT_ANKLE_MEAN + ANT_ANKLE_LIFT * np.maximum(0.0, np.cos(phase)))
        goal = np.empty(8)
        joints = motor_joints(model)
        goal_by_joint = {}
        for leg in range(4):
            goal_by_joint[f"hip_{leg + 1}"] = hip[leg]
            goal_by_joint[f"ankle_{leg + 1}"] = ankle[leg]
        for i, joint in enumerate(joints):
            goal[i] = goal_by_joint[_name(model, mujoco.mjtObj.mjOBJ_JOINT, joint)]
        qadr = model.jnt_qposadr[joints]
        vadr = model.jnt_dofadr[joints]
        return ANT_KP * (goal - qpos[qadr]) - ANT_KD * qvel[vadr]

    def _step(self) -> int:
        return int(round(self.unwrapped.data.time / self.unwrapped.dt))


def make_mujoco_teacher(env: gym.Env, fault_aware: bool) -> Teacher:
    kind = type(env.unwrapped).__name__
    return (ReacherTeacher if kind == "ReacherEnv" else AntTeacher)(env, fault_aware)
