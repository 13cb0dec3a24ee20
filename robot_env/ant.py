"""Gymnasium's MuJoCo ``Ant-v5`` under faults, with a scripted teacher.

- Sensors: ``joint=j`` is the joint that motor ``j`` drives (its angle and speed in the
  observation; named only when the observation excludes the torso's x, y, as by default).
- Body faults (beyond :class:`robot_env.mujoco_tasks.MujocoBody`'s): a payload goes on the torso;
  ``friction`` scales the ground's sliding friction; ``crippled-leg`` (``leg=0..3`` = the legs
  of ``hip_1..hip_4``) zeroes the leg's two motors and removes its lower segment's contacts, as if
  broken at the knee.
- Teacher: a scripted trot (open-loop joint targets tracked by PD, heading corrected from the
  torso's yaw), tuned here, not trained.

Importing this module needs the ``mujoco`` extra; it registers the id's teacher and body adapter.
"""

from __future__ import annotations

import mujoco
import numpy as np

from robot_env.channels import Channel, scalar
from robot_env.errors import FaultTargetError
from robot_env.faults import RobotFault, target_parts
from robot_env.mujoco_tasks import MujocoBody, MujocoTeacher, motor_joints, object_name
from robot_env.registry import ANT, register_task


def leg_parts(model: mujoco.MjModel) -> list[tuple[list[int], list[int]]]:
    """Per Ant leg (hip_1..hip_4): its actuators and the geoms of its lower segment."""
    joint_names = [object_name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in motor_joints(model)]
    legs = []
    for leg in range(1, 5):
        actuators = [i for i, n in enumerate(joint_names) if n in (f"hip_{leg}", f"ankle_{leg}")]
        ankle = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, f"ankle_{leg}")
        body = int(model.jnt_bodyid[ankle])
        geoms = [g for g in range(model.ngeom) if int(model.geom_bodyid[g]) == body]
        legs.append((actuators, geoms))
    return legs


class AntBody(MujocoBody):
    """Ant's joint sensors by motor, the torso as end body, ground friction, crippled legs."""

    end_body = "torso"

    def sensor_channels(self) -> dict[str, list[Channel]]:
        if not getattr(self.unwrapped, "_exclude_current_positions_from_observation", True):
            return {}
        model = self.model
        channels = {}
        for j, joint in enumerate(motor_joints(model)):
            position = int(model.jnt_qposadr[joint]) - 2
            speed = model.nq - 2 + int(model.jnt_dofadr[joint])
            channels[f"joint={j}"] = [scalar(position), scalar(speed)]
        return channels

    def check_body_fault(self, fault: RobotFault) -> None:
        if fault.kind != "crippled-leg":
            super().check_body_fault(fault)
            return
        leg = target_parts(fault.target)[1]
        if leg not in ("0", "1", "2", "3"):
            raise FaultTargetError(f"leg={leg} does not exist: Ant has legs 0..3.")

    def apply(self, fault: RobotFault) -> None:
        if fault.kind == "friction":
            self.model.geom_friction[:, 0] *= fault.magnitude
        elif fault.kind == "crippled-leg":
            actuators, geoms = leg_parts(self.model)[int(target_parts(fault.target)[1])]
            self.model.actuator_gear[actuators, 0] = 0.0
            self.model.geom_contype[geoms] = 0
            self.model.geom_conaffinity[geoms] = 0
        else:
            super().apply(fault)


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
            goal[i] = goal_by_joint[object_name(model, mujoco.mjtObj.mjOBJ_JOINT, joint)]
        qadr = model.jnt_qposadr[joints]
        vadr = model.jnt_dofadr[joints]
        return ANT_KP * (goal - qpos[qadr]) - ANT_KD * qvel[vadr]

    def _step(self) -> int:
        return int(round(self.unwrapped.data.time / self.unwrapped.dt))


register_task(ANT, teacher=AntTeacher, adapter=AntBody)
