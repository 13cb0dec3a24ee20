"""What gymnasium's MuJoCo tasks share: body faults on an ``MjModel`` and a teacher that plans on
scratch ``MjData``.

Each MuJoCo task module (:mod:`robot_env.reacher`, :mod:`robot_env.ant`) subclasses
:class:`MujocoBody` as its body adapter (naming its sensors and its end effector) and
:class:`MujocoTeacher` as its teacher, and registers both with its ids. These modules need the
``mujoco`` extra; ``import robot_env`` imports none of them (see :mod:`robot_env.registry`).

Body faults edit the ``MjModel`` in place; :class:`MujocoBody` keeps the nominal arrays, restores
them and re-applies the active faults whenever the set changes. ``payload`` adds mass to the
task's end effector or ``body=NAME``; ``mass-change`` scales masses and inertias (``body=NAME`` or
all); ``friction`` scales the damping of the motors' joints.
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


def object_name(model: mujoco.MjModel, kind: mujoco.mjtObj, index: int) -> str:
    return mujoco.mj_id2name(model, kind, index) or ""


def motor_joints(model: mujoco.MjModel) -> list[int]:
    """The joint each actuator drives, in action order."""
    return [int(model.actuator_trnid[i, 0]) for i in range(model.nu)]


class MujocoBody:
    """Body faults on a gymnasium MuJoCo env: edits ``model`` in place, keeps ``nominal``.

    A task's adapter sets ``end_body`` (where a payload goes without ``body=NAME``), names its
    sensors (``sensor_channels()``) and may extend :meth:`check_body_fault` and :meth:`apply`.
    """

    FIELDS = (
        "body_mass",
        "body_inertia",
        "dof_damping",
        "geom_friction",
        "actuator_gear",
        "geom_contype",
        "geom_conaffinity",
    )
    end_body: str  # each task's adapter names it

    def __init__(self, unwrapped: gym.Env) -> None:
        self.unwrapped = unwrapped
        self.model: mujoco.MjModel = unwrapped.model
        self.nominal: mujoco.MjModel = copy.deepcopy(self.model)
        self.kind = type(unwrapped).__name__
        self._applied: tuple[RobotFault, ...] = ()

    def check_body_fault(self, fault: RobotFault) -> None:
        key, value = target_parts(fault.target)
        if fault.kind == "crippled-leg":
            raise FaultTargetError(f"{self.kind} has no legs; crippled-leg needs Ant.")
        if key == "body":
            self.body_id(value)
        elif key == "joint":
            joint_indices(fault.target, self.model.nu)

    def body_id(self, name: str) -> int:
        body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
        if body < 0:
            names = [
                object_name(self.model, mujoco.mjtObj.mjOBJ_BODY, b)
                for b in range(self.model.nbody)
            ]
            raise FaultTargetError(
                f"{self.kind} has no body {name!r}; bodies: {', '.join(n for n in names if n)}."
            )
        return body

    def apply_body_faults(self, faults: Sequence[RobotFault]) -> None:
        if tuple(faults) == self._applied:
            return
        self._applied = tuple(faults)
        for name in self.FIELDS:
            getattr(self.model, name)[:] = getattr(self.nominal, name)
        for fault in faults:
            self.apply(fault)
        # Subtree masses and the like are derived at compile time; refresh them on scratch data
        # (mj_setConst moves the data it is given to qpos0).
        mujoco.mj_setConst(self.model, mujoco.MjData(self.model))

    def apply(self, fault: RobotFault) -> None:
        """Edit ``model`` for one active body fault."""
        model = self.model
        key, value = target_parts(fault.target)
        if fault.kind == "payload":
            model.body_mass[self.body_id(value if key == "body" else self.end_body)] += (
                fault.magnitude
            )
        elif fault.kind == "mass-change":
            bodies = [self.body_id(value)] if key == "body" else slice(None)
            model.body_mass[bodies] *= fault.magnitude
            model.body_inertia[bodies] *= fault.magnitude
        elif fault.kind == "friction":
            joints = motor_joints(model)
            for j in joint_indices(fault.target, model.nu):
                model.dof_damping[model.jnt_dofadr[joints[j]]] *= fault.magnitude


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


def dense_mass_matrix(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """``M(q)`` as a dense (nv, nv) array, after ``mj_forward``."""
    mass = np.zeros((model.nv, model.nv))
    if hasattr(data, "qM"):  # MuJoCo 3.x: mj_fullM(m, dst, qM)
        mujoco.mj_fullM(model, mass, data.qM)
    else:  # MuJoCo 4: mj_fullM(m, d, dst)
        mujoco.mj_fullM(model, data, mass)
    return mass
