"""``glocal/ArmReach-v0``: a planar two-link arm with torque control, in numpy.

Physics are pure functions over a frozen :class:`ArmParams`; every function (the teacher's
:func:`computed_torque` too) broadcasts over leading batch dimensions, so one episode and a batch
of thousands run the same code: ``sample_arm_params(rng, (n,))`` and ``arm_step`` over ``(n, 2)``
states step ``n`` episodes at once.

Dynamics (horizontal plane, no gravity; uniform rods of mass ``m_i`` and length ``l_i``, a point
payload ``m_p`` at the fingertip; ``q`` in rad, torques in N m)::

    M(q) qdd + C(q, qd) qd + D qd = tau,     tau_i = torque_max * motor_gain_i * clip(a_i, -1, 1)
    M = [[a + 2 b cos q2, c + b cos q2], [c + b cos q2, c]]
    a = m1 l1^2/3 + m2 (l1^2 + l2^2/3) + m_p (l1^2 + l2^2)
    b = m2 l1 l2 / 2 + m_p l1 l2,        c = m2 l2^2/3 + m_p l2^2
    C qd = b sin q2 [-(2 qd1 qd2 + qd2^2), qd1^2]

integrated by classic RK4 with the action held over each control step of ``DT`` seconds (split
into more RK4 steps when heavy damping makes it stiff); joint speeds are clipped to ``+-QD_MAX``
(a motor's no-load speed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np

from robot_env.channels import Channel, angle, scalar
from robot_env.faults import RobotFault, check_jointed_body_fault, joint_indices, target_parts
from robot_env.registry import ARM_REACH, register_task
from robot_env.render import Canvas
from robot_env.teachers import Teacher

DT = 0.05  # s per control step
SUBSTEPS = 1  # RK4 steps per control step at least (energy drifts < 1e-4 over 10 s free motion)
QD_MAX = 20.0  # rad/s
TORQUE_MAX = 5.0  # N m at motor_gain 1
TARGET_PERIOD = 50  # control steps per target
OBS_SIZE = 10


@dataclass(frozen=True)
class ArmParams:
    """Body of one arm (or a batch: every array has leading batch dims, joints last)."""

    link_length: np.ndarray  # (..., 2) m
    link_mass: np.ndarray  # (..., 2) kg
    damping: np.ndarray  # (..., 2) N m s / rad
    motor_gain: np.ndarray  # (..., 2) dimensionless
    payload: np.ndarray  # (...) kg at the fingertip
    torque_max: float = TORQUE_MAX

    @property
    def reach(self) -> np.ndarray:
        return self.link_length.sum(-1)


NOMINAL = ArmParams(
    link_length=np.array([0.5, 0.4]),
    link_mass=np.array([1.0, 0.8]),
    damping=np.array([0.1, 0.1]),
    motor_gain=np.array([1.0, 1.0]),
    payload=np.array(0.0),
)


def sample_arm_params(rng: np.random.Generator, batch: tuple[int, ...] = ()) -> ArmParams:
    """Per-episode dynamics randomisation around :data:`NOMINAL`."""
    joints = (*batch, 2)
    return ArmParams(
        link_length=NOMINAL.link_length * rng.uniform(0.9, 1.1, joints),
        link_mass=NOMINAL.link_mass * rng.uniform(0.8, 1.2, joints),
        damping=rng.uniform(0.05, 0.3, joints),
        motor_gain=rng.uniform(0.8, 1.2, joints),
        payload=rng.uniform(0.0, 0.3, batch),
    )


def inertia_terms(params: ArmParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    l1, l2 = params.link_length[..., 0], params.link_length[..., 1]
    m1, m2 = params.link_mass[..., 0], params.link_mass[..., 1]
    mp = params.payload
    a = m1 * l1**2 / 3 + m2 * (l1**2 + l2**2 / 3) + mp * (l1**2 + l2**2)
    b = m2 * l1 * l2 / 2 + mp * l1 * l2
    c = m2 * l2**2 / 3 + mp * l2**2
    return a, b, c


def mass_matrix(q: np.ndarray, params: ArmParams) -> np.ndarray:
    """``M(q)``, shape (..., 2, 2)."""
    a, b, c = inertia_terms(params)
    cos2 = np.cos(q[..., 1])
    m12 = c + b * cos2
    return np.stack([np.stack([a + 2 * b * cos2, m12], -1), np.stack([m12, c + 0 * cos2], -1)], -2)


def bias_forces(q: np.ndarray, qd: np.ndarray, params: ArmParams) -> np.ndarray:
    """Coriolis, centrifugal and damping torques ``C qd + D qd``, shape (..., 2)."""
    _, b, _ = inertia_terms(params)
    h = b * np.sin(q[..., 1])
    qd1, qd2 = qd[..., 0], qd[..., 1]
    coriolis = np.stack([-h * (2 * qd1 * qd2 + qd2**2), h * qd1**2], -1)
    return coriolis + params.damping * qd


def motor_torque(action: np.ndarray, params: ArmParams) -> np.ndarray:
    return params.torque_max * params.motor_gain * np.clip(action, -1.0, 1.0)


def arm_accel(q: np.ndarray, qd: np.ndarray, tau: np.ndarray, params: ArmParams) -> np.ndarray:
    """Joint accelerations ``M(q)^-1 (tau - C qd - D qd)``, the 2x2 inverse written out."""
    a, b, c = inertia_terms(params)
    cos2 = np.cos(q[..., 1])
    m11, m12 = a + 2 * b * cos2, c + b * cos2
    rhs = tau - bias_forces(q, qd, params)
    det = m11 * c - m12 * m12
    qdd1 = (c * rhs[..., 0] - m12 * rhs[..., 1]) / det
    qdd2 = (m11 * rhs[..., 1] - m12 * rhs[..., 0]) / det
    return np.stack([qdd1, qdd2], -1)


def stable_substeps(params: ArmParams) -> int:
    """RK4 steps per control step that keep the damping stable (for the whole batch).

    Heavy joint friction on a light link is stiff: the decay rate ``damping / inertia`` times the
    step must stay inside RK4's stability interval (about 2.8), with a margin.
    """
    a, b, c = inertia_terms(params)
    lowest = np.inf
    for cos2 in (-1.0, 0.0, 1.0):
        m11, m12 = a + 2 * b * cos2, c + b * cos2
        # The smaller eigenvalue of [[m11, m12], [m12, c]].
        half_trace, det = (m11 + c) / 2, m11 * c - m12**2
        lowest = np.minimum(lowest, half_trace - np.sqrt(np.maximum(half_trace**2 - det, 0.0)))
    rate = np.max(params.damping.max(-1) / lowest)
    return max(SUBSTEPS, int(np.ceil(rate * DT / 2.0)))


def arm_step(
    q: np.ndarray,
    qd: np.ndarray,
    action: np.ndarray,
    params: ArmParams,
    substeps: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One control step under a held action: classic RK4 over ``DT`` in ``substeps`` steps
    (default: :func:`stable_substeps`; pass it in when stepping the same params many times)."""
    tau = motor_torque(action, params)
    substeps = stable_substeps(params) if substeps is None else substeps
    h = DT / substeps
    for _ in range(substeps):
        k1q, k1v = qd, arm_accel(q, qd, tau, params)
        k2q = qd + h / 2 * k1v
        k2v = arm_accel(q + h / 2 * k1q, k2q, tau, params)
        k3q = qd + h / 2 * k2v
        k3v = arm_accel(q + h / 2 * k2q, k3q, tau, params)
        k4q = qd + h * k3v
        k4v = arm_accel(q + h * k3q, k4q, tau, params)
        q = q + h / 6 * (k1q + 2 * k2q + 2 * k3q + k4q)
        qd = np.clip(qd + h / 6 * (k1v + 2 * k2v + 2 * k3v + k4v), -QD_MAX, QD_MAX)
    return wrap_angle(q), qd


def wrap_angle(q: np.ndarray) -> np.ndarray:
    return (q + np.pi) % (2 * np.pi) - np.pi


def joint_positions(q: np.ndarray, params: ArmParams) -> tuple[np.ndarray, np.ndarray]:
    """Elbow and fingertip positions, each (..., 2) m."""
    l1, l2 = params.link_length[..., 0:1], params.link_length[..., 1:2]
    q1, q12 = q[..., 0:1], q[..., 0:1] + q[..., 1:2]
    elbow = l1 * np.concatenate([np.cos(q1), np.sin(q1)], -1)
    tip = elbow + l2 * np.concatenate([np.cos(q12), np.sin(q12)], -1)
    return elbow, tip


def observe(q: np.ndarray, qd: np.ndarray, target: np.ndarray, params: ArmParams) -> np.ndarray:
    """``[cos q1, cos q2, sin q1, sin q2, qd1, qd2, target x, y, tip x, y]`` (Reacher's order)."""
    _, tip = joint_positions(q, params)
    return np.concatenate([np.cos(q), np.sin(q), qd, target, tip], -1)


def reward(q: np.ndarray, target: np.ndarray, params: ArmParams) -> np.ndarray:
    """Minus the fingertip's distance to the target, in units of the arm's reach."""
    _, tip = joint_positions(q, params)
    return -np.linalg.norm(tip - target, axis=-1) / params.reach


def sample_target(
    rng: np.random.Generator, params: ArmParams, batch: tuple[int, ...] = ()
) -> np.ndarray:
    """A target in the annulus the arm reaches comfortably: radius 25-85 % of full reach."""
    radius = rng.uniform(0.25, 0.85, batch) * params.reach
    heading = rng.uniform(-np.pi, np.pi, batch)
    return np.stack([radius * np.cos(heading), radius * np.sin(heading)], -1)


def state_from_obs(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a controller can read off an observation: ``(q, qd, target)``."""
    q = np.arctan2(obs[..., 2:4], obs[..., 0:2])
    return q, obs[..., 4:6], obs[..., 6:8]


# --- body faults ----------------------------------------------------------------------------


def with_body_faults(params: ArmParams, faults: list[RobotFault]) -> ArmParams:
    """``params`` as changed by the active body faults (payload, mass-change, friction)."""
    for fault in faults:
        key, _ = target_parts(fault.target)
        if fault.kind == "payload":
            params = replace(params, payload=params.payload + fault.magnitude)
        elif fault.kind == "mass-change":
            scale = np.ones(2)
            scale[joint_indices(fault.target, 2)] = fault.magnitude
            params = replace(
                params,
                link_mass=params.link_mass * scale,
                payload=params.payload * (fault.magnitude if key == "all" else 1.0),
            )
        elif fault.kind == "friction":
            scale = np.ones(2)
            scale[joint_indices(fault.target, 2)] = fault.magnitude
            params = replace(params, damping=params.damping * scale)
    return params


# --- the teacher's controller ---------------------------------------------------------------

KP = 40.0  # 1/s^2: joint-space stiffness of the computed-torque law
KD = 2.0 * np.sqrt(KP)  # critically damped


def inverse_kinematics(target: np.ndarray, q: np.ndarray, params: ArmParams) -> np.ndarray:
    """Joint angles that put the fingertip on ``target`` (clamped into reach), choosing the
    elbow branch closer to ``q``."""
    l1, l2 = params.link_length[..., 0], params.link_length[..., 1]
    dist = np.linalg.norm(target, axis=-1)
    dist = np.clip(dist, np.abs(l1 - l2) + 1e-6, l1 + l2 - 1e-6)
    cos_elbow = np.clip((dist**2 - l1**2 - l2**2) / (2 * l1 * l2), -1.0, 1.0)
    heading = np.arctan2(target[..., 1], target[..., 0])
    best, best_cost = None, None
    for sign in (1.0, -1.0):
        q2 = sign * np.arccos(cos_elbow)
        q1 = heading - np.arctan2(l2 * np.sin(q2), l1 + l2 * np.cos(q2))
        candidate = np.stack([q1, q2], -1)
        cost = np.abs(wrap_angle(candidate - q)).sum(-1)
        if best is None:
            best, best_cost = candidate, cost
        else:
            best = np.where((cost < best_cost)[..., None], candidate, best)
            best_cost = np.minimum(cost, best_cost)
    return best


def computed_torque(
    q: np.ndarray, qd: np.ndarray, target: np.ndarray, params: ArmParams
) -> np.ndarray:
    """Joint torques of a computed-torque PD law towards the IK solution for ``target``."""
    q_goal = inverse_kinematics(target, q, params)
    qdd = KP * wrap_angle(q_goal - q) - KD * qd
    return np.einsum("...ij,...j->...i", mass_matrix(q, params), qdd) + bias_forces(q, qd, params)


def torque_to_output(tau: np.ndarray, params: ArmParams) -> np.ndarray:
    """The actuator output (action units, before the env's clip) that yields ``tau``."""
    return tau / (params.torque_max * params.motor_gain)


# --- the env --------------------------------------------------------------------------------


class ArmReachEnv(gym.Env):
    """Reach a sequence of targets with a planar two-link arm driven by joint torques.

    ## Action space
    ``Box(-1, 1, (2,), float32)``: torque command of the shoulder (0) and elbow (1), a fraction of
    ``torque_max * motor_gain`` (5 N m nominal).

    ## Observation space
    ``Box((10,), float32)``, what real sensors give (Reacher's order):

    | index | reading | unit |
    | --- | --- | --- |
    | 0-1 | cos q1, cos q2 (joint encoders) | |
    | 2-3 | sin q1, sin q2 | |
    | 4-5 | qd1, qd2 (tachometers) | rad/s |
    | 6-7 | target x, y | m |
    | 8-9 | fingertip x, y (a camera, independent of the encoders) | m |

    No parameter and no fault is observable; teachers read them from ``params`` and the
    ``FaultWrapper`` instead.

    ## Reward
    ``-|fingertip - target| / reach`` per step, in [-2, 0]; ``info["distance"]`` is the distance
    in metres.

    ## Starting state and episode
    ``q1 ~ U(-pi, pi)``, ``q2 ~ U(-2.5, 2.5)``, ``qd = 0``. A new target every
    ``target_period`` steps (50 = 2.5 s), drawn in the annulus 25-85 % of full reach. No
    termination; the registered id truncates after 400 steps (20 s).

    ## Randomised per episode
    link lengths (x0.9-1.1 of 0.5 m, 0.4 m), link masses (x0.8-1.2 of 1.0 kg, 0.8 kg), joint
    damping (0.05-0.3 N m s), motor gains (0.8-1.2), payload (0-0.3 kg). Pass
    ``randomise=False`` for the nominal arm.

    ## Arguments
    ``render_mode`` (``"rgb_array"`` or None), ``randomise`` (bool), ``target_period`` (steps).

    ## Version history
    v0: first version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(round(1 / DT))}

    def __init__(
        self,
        render_mode: str | None = None,
        randomise: bool = True,
        target_period: int = TARGET_PERIOD,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} is not None or 'rgb_array'")
        self.render_mode = render_mode
        self.randomise = randomise
        self.target_period = int(target_period)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        high = np.array([1, 1, 1, 1, QD_MAX, QD_MAX, 1.5, 1.5, 1.5, 1.5], np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.base_params = NOMINAL
        self.params = NOMINAL
        self.q = np.zeros(2)
        self.qd = np.zeros(2)
        self.target = np.zeros(2)
        self.steps = 0
        self.substeps = SUBSTEPS
        self._canvas = Canvas(size=256, extent=1.2)

    def sensor_channels(self) -> dict[str, list[Channel]]:
        return {
            "joint=0": [angle(0, 2), scalar(4)],
            "joint=1": [angle(1, 3), scalar(5)],
            "channel=target": [scalar(6), scalar(7)],
            "channel=tip": [scalar(8), scalar(9)],
        }

    def apply_body_faults(self, faults: list[RobotFault]) -> None:
        self.params = with_body_faults(self.base_params, faults)
        self.substeps = stable_substeps(self.params)

    def check_body_fault(self, fault: RobotFault) -> None:
        check_jointed_body_fault("ArmReach", fault, 2)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        self.base_params = sample_arm_params(rng) if self.randomise else NOMINAL
        self.params = self.base_params
        self.substeps = stable_substeps(self.params)
        self.q = np.array([rng.uniform(-np.pi, np.pi), rng.uniform(-2.5, 2.5)])
        self.qd = np.zeros(2)
        self.target = sample_target(rng, self.base_params)
        self.steps = 0
        return self._obs(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float64).reshape(2)
        self.q, self.qd = arm_step(self.q, self.qd, action, self.params, self.substeps)
        self.steps += 1
        r = float(reward(self.q, self.target, self.params))
        info = self._info()
        if self.steps % self.target_period == 0:
            self.target = sample_target(self.np_random, self.base_params)
        return self._obs(), r, False, False, info

    def _obs(self) -> np.ndarray:
        obs = observe(self.q, self.qd, self.target, self.params)
        return obs.astype(np.float32)

    def _info(self) -> dict[str, Any]:
        _, tip = joint_positions(self.q, self.params)
        return {
            "distance": float(np.linalg.norm(tip - self.target)),
            "target_index": self.steps // self.target_period,
        }

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        elbow, tip = joint_positions(self.q, self.params)
        canvas = self._canvas.clear()
        canvas.disc(self.target, 0.04, (220, 60, 60))
        canvas.segment(np.zeros(2), elbow, 0.035, (60, 90, 200))
        canvas.segment(elbow, tip, 0.03, (90, 140, 230))
        canvas.disc(np.zeros(2), 0.05, (40, 40, 40))
        canvas.disc(elbow, 0.04, (40, 40, 40))
        canvas.disc(tip, 0.03 + 0.05 * float(self.params.payload), (240, 170, 40))
        return canvas.image()


class ArmTeacher(Teacher):
    """Computed torque towards the inverse-kinematics solution of the current target."""

    def observed_state(self, obs: np.ndarray) -> tuple[np.ndarray, ...]:
        return state_from_obs(obs)

    def true_state(self) -> tuple[np.ndarray, ...]:
        return self.unwrapped.q, self.unwrapped.qd, self.unwrapped.target

    def model(self, faulted: bool) -> ArmParams:
        return self.unwrapped.params if faulted else self.unwrapped.base_params

    def output(self, state: tuple[np.ndarray, ...], model: ArmParams) -> np.ndarray:
        q, qd, target = state
        return torque_to_output(computed_torque(q, qd, target, model), model)

    def advance(self, state: tuple, output: np.ndarray, model: ArmParams) -> tuple:
        q, qd = arm_step(state[0], state[1], output, model)
        return q, qd, state[2]


register_task(ARM_REACH, teacher=ArmTeacher)  # the env models its own body and sensors
