"""``glocal/BikeBalance-v0``: balance and steer a bicycle with steering torque alone.

The dynamics are the linearised Whipple bicycle of Meijaard, Papadopoulos, Ruina and Schwab,
"Linearized dynamics equations for the balance and steer of a bicycle: a benchmark and review",
Proc. R. Soc. A 463 (2007), with their benchmark parameters (rider and frame 85 kg, 94 kg in all,
wheelbase 1.02 m, trail 0.08 m, head angle pi/10 from vertical)::

    M qdd + v C1 qd + (g K0 + v^2 K2) q = [0, T_steer - c_steer * delta_dot],   q = [phi, delta]
    psi_dot = (v delta + c delta_dot) cos(lambda) / w                       (heading)

``phi`` is roll, ``delta`` steer, ``psi`` heading (rad); ``v`` forward speed (m/s). A small steer
damping ``c_steer`` (0.1 N m s) is ours, so the friction fault has something to scale. The state
``x = [phi, delta, phi_dot, delta_dot, psi]`` evolves linearly and is stepped exactly with the
zero-order-hold matrices of ``(A, B)``, computed once per episode (and when a body fault
changes them). Changing the mass scales every mass term uniformly: a heavier or lighter bike
and rider in the same proportions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import numpy as np

from robot_env.channels import Channel, angle, scalar
from robot_env.faults import RobotFault, check_jointed_body_fault
from robot_env.registry import BIKE_BALANCE, register_task
from robot_env.render import Canvas
from robot_env.teachers import Teacher

DT = 0.05  # s per control step
TORQUE_MAX = 10.0  # N m of steering torque
ROLL_FALL = 0.5  # rad: the bike has fallen beyond this roll
HEADING_PERIOD = 100  # control steps per heading reference
G = 9.81
WHEELBASE, TRAIL, HEAD_ANGLE = 1.02, 0.08, np.pi / 10
TOTAL_MASS = 94.0  # kg: the benchmark's wheels, frames and rider

# Benchmark matrices (Meijaard et al. 2007, table 2), at the benchmark mass.
M0 = np.array([[80.81722, 2.31941332208709], [2.31941332208709, 0.29784188199686]])
C10 = np.array([[0.0, 33.86641391492494], [-0.85035641456978, 1.68540397397560]])
K00 = np.array([[-80.95, -2.59951685249872], [-2.59951685249872, -0.80329488458618]])
K20 = np.array([[0.0, 76.59734589573222], [0.0, 2.65431523794604]])


@dataclass(frozen=True)
class BikeParams:
    speed: float = 5.0  # m/s
    mass_scale: float = 1.0
    steer_damping: float = 0.1  # N m s / rad
    roll_offset: float = 0.0  # rad, roll sensor mounting error
    steer_offset: float = 0.0  # rad, steer encoder offset


def sample_bike_params(rng: np.random.Generator) -> BikeParams:
    return BikeParams(
        speed=float(rng.uniform(2.5, 6.5)),
        mass_scale=float(rng.uniform(0.8, 1.25)),
        roll_offset=float(rng.uniform(-0.02, 0.02)),
        steer_offset=float(rng.uniform(-0.01, 0.01)),
    )


def continuous_matrices(params: BikeParams) -> tuple[np.ndarray, np.ndarray]:
    """``(A, B)`` of ``x_dot = A x + B T_steer``, ``x = [phi, delta, phi_dot, delta_dot, psi]``."""
    v, s = params.speed, params.mass_scale
    m_inv = np.linalg.inv(s * M0)
    stiffness = s * (G * K00 + v**2 * K20)
    damping = s * v * C10 + np.array([[0.0, 0.0], [0.0, params.steer_damping]])
    a = np.zeros((5, 5))
    a[0:2, 2:4] = np.eye(2)
    a[2:4, 0:2] = -m_inv @ stiffness
    a[2:4, 2:4] = -m_inv @ damping
    heading = np.cos(HEAD_ANGLE) / WHEELBASE
    a[4, 1], a[4, 3] = v * heading, TRAIL * heading
    b = np.zeros((5, 1))
    b[2:4, 0] = m_inv @ np.array([0.0, 1.0])
    return a, b


def expm(matrix: np.ndarray) -> np.ndarray:
    """Matrix exponential by scaling and squaring of a 20-term Taylor series (small matrices)."""
    norm = np.linalg.norm(matrix, 1)
    squarings = max(0, int(np.ceil(np.log2(norm))) + 1) if norm > 0.5 else 0
    scaled = matrix / 2**squarings
    result, term = np.eye(len(matrix)), np.eye(len(matrix))
    for k in range(1, 20):
        term = term @ scaled / k
        result = result + term
    for _ in range(squarings):
        result = result @ result
    return result


def discrete_matrices(params: BikeParams, dt: float = DT) -> tuple[np.ndarray, np.ndarray]:
    """Zero-order-hold ``(Ad, Bd)``: ``x' = Ad x + Bd T_steer`` over one control step."""
    a, b = continuous_matrices(params)
    block = np.zeros((6, 6))
    block[:5, :5], block[:5, 5:] = a * dt, b * dt
    phi = expm(block)
    return phi[:5, :5], phi[:5, 5:]


def lqr_gain(ad: np.ndarray, bd: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Infinite-horizon discrete LQR gain ``K`` (``u = -K x``) by Riccati iteration."""
    p = q.copy()
    for _ in range(2000):
        bp = bd.T @ p
        gain = np.linalg.solve(r + bp @ bd, bp @ ad)
        p_next = q + ad.T @ p @ (ad - bd @ gain)
        if np.max(np.abs(p_next - p)) < 1e-9 * max(1.0, np.max(np.abs(p))):
            p = p_next
            break
        p = p_next
    bp = bd.T @ p
    return np.linalg.solve(r + bp @ bd, bp @ ad)


LQR_Q = np.diag([200.0, 20.0, 5.0, 1.0, 20.0])
LQR_R = np.array([[1.0]])


def with_body_faults(params: BikeParams, faults: list[RobotFault]) -> BikeParams:
    for fault in faults:
        if fault.kind == "payload":
            scale = (TOTAL_MASS + fault.magnitude) / TOTAL_MASS
            params = replace(params, mass_scale=params.mass_scale * scale)
        elif fault.kind == "mass-change":
            params = replace(params, mass_scale=params.mass_scale * fault.magnitude)
        elif fault.kind == "friction":
            params = replace(params, steer_damping=params.steer_damping * fault.magnitude)
    return params


def wrap_angle(x: float) -> float:
    return float((x + np.pi) % (2 * np.pi) - np.pi)


class BikeBalanceEnv(gym.Env):
    """Keep a bicycle upright and follow a heading reference by steering torque.

    ## Action space
    ``Box(-1, 1, (1,), float32)``: steering torque as a fraction of 10 N m (joint 0 = steer).

    ## Observation space
    ``Box((7,), float32)``:

    | index | reading | unit |
    | --- | --- | --- |
    | 0 | roll, with the IMU's mounting offset | rad |
    | 1 | steer angle, with the encoder's offset | rad |
    | 2 | roll rate | rad/s |
    | 3 | steer rate | rad/s |
    | 4-5 | cos, sin of the heading error (reference minus heading) | |
    | 6 | forward speed | m/s |

    ## Reward
    ``1 - 0.5 (roll / 0.5)^2 - 0.5 min(heading_error^2, 1)`` per step, in [0, 1].

    ## Starting state and episode
    roll ~ U(-0.05, 0.05) rad, steer and rates 0, heading 0. The heading reference starts at 0 and
    moves by U(-0.6, 0.6) rad every 100 steps. Terminates when ``|roll| > 0.5`` rad (fallen); the
    registered id truncates after 400 steps (20 s).

    ## Randomised per episode
    speed U(2.5, 6.5) m/s (below about 4.3 m/s the bike is unstable without control), mass
    x U(0.8, 1.25), roll sensor offset U(-0.02, 0.02) rad, steer offset U(-0.01, 0.01) rad.

    ## Arguments
    ``render_mode`` (``"rgb_array"`` or None), ``randomise`` (bool).

    ## Version history
    v0: first version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(round(1 / DT))}

    def __init__(self, render_mode: str | None = None, randomise: bool = True) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} is not None or 'rgb_array'")
        self.render_mode = render_mode
        self.randomise = randomise
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        high = np.array([np.pi, np.pi, 50.0, 50.0, 1.0, 1.0, 10.0], np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.base_params = BikeParams()
        self.params = BikeParams()
        self.ad, self.bd = discrete_matrices(self.params)
        self.x = np.zeros(5)
        self.heading_ref = 0.0
        self.steps = 0
        self._canvas = Canvas(size=256, extent=1.0)

    def sensor_channels(self) -> dict[str, list[Channel]]:
        return {
            "joint=0": [scalar(1), scalar(3)],
            "channel=roll": [scalar(0), scalar(2)],
            "channel=heading": [angle(4, 5)],
            "channel=speed": [scalar(6)],
        }

    def apply_body_faults(self, faults: list[RobotFault]) -> None:
        params = with_body_faults(self.base_params, faults)
        if params != self.params:
            self.params = params
            self.ad, self.bd = discrete_matrices(params)

    def check_body_fault(self, fault: RobotFault) -> None:
        check_jointed_body_fault("BikeBalance", fault, 1)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.base_params = sample_bike_params(self.np_random) if self.randomise else BikeParams()
        self.params = self.base_params
        self.ad, self.bd = discrete_matrices(self.params)
        self.x = np.array([self.np_random.uniform(-0.05, 0.05), 0.0, 0.0, 0.0, 0.0])
        self.heading_ref = 0.0
        self.steps = 0
        return self._obs(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        torque = TORQUE_MAX * float(
            np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1, 1)
        )
        self.x = self.ad @ self.x + self.bd[:, 0] * torque
        self.steps += 1
        error = self.heading_error
        fallen = abs(self.x[0]) > ROLL_FALL
        r = 1.0 - 0.5 * min((self.x[0] / ROLL_FALL) ** 2, 1.0) - 0.5 * min(error**2, 1.0)
        info = self._info()
        if self.steps % HEADING_PERIOD == 0:
            self.heading_ref += float(self.np_random.uniform(-0.6, 0.6))
        return self._obs(), float(r), bool(fallen), False, info

    @property
    def heading_error(self) -> float:
        return wrap_angle(self.heading_ref - self.x[4])

    def teacher_state(self) -> np.ndarray:
        """The LQR state ``[phi, delta, phi_dot, delta_dot, psi - psi_ref]`` (true values)."""
        return np.array([*self.x[:4], -self.heading_error])

    def _obs(self) -> np.ndarray:
        p, e = self.params, self.heading_error
        return np.array(
            [
                self.x[0] + p.roll_offset,
                self.x[1] + p.steer_offset,
                self.x[2],
                self.x[3],
                np.cos(e),
                np.sin(e),
                p.speed,
            ],
            np.float32,
        )

    def _info(self) -> dict[str, Any]:
        return {"roll": float(self.x[0]), "heading_error": self.heading_error}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        canvas = self._canvas.clear()
        roll, steer = float(self.x[0]), float(self.x[1])
        canvas.segment(np.array([-1.0, -0.8]), np.array([1.0, -0.8]), 0.02, (120, 120, 120))
        # Rear view: the frame leans by the roll angle; the bar shows the steer angle.
        base = np.array([0.0, -0.8])
        top = base + 1.2 * np.array([np.sin(roll), np.cos(roll)])
        canvas.segment(base, top, 0.06, (60, 90, 200))
        bar = 0.3 * np.array([np.cos(roll) * np.cos(steer), -np.sin(roll)])
        canvas.segment(top - bar, top + bar, 0.03, (40, 40, 40))
        canvas.disc(top + 0.12 * np.array([np.sin(roll), np.cos(roll)]), 0.08, (240, 170, 40))
        # Heading and its reference, as seen from above, in the top-left corner.
        centre = np.array([-0.7, 0.7])
        for direction, colour in ((self.x[4], (60, 90, 200)), (self.heading_ref, (220, 60, 60))):
            tip = centre + 0.22 * np.array([np.cos(direction), np.sin(direction)])
            canvas.segment(centre, tip, 0.025, colour)
        return canvas.image()


class BikeTeacher(Teacher):
    """LQR on the linearised Whipple model at this episode's speed and mass."""

    def __init__(self, env: gym.Env, fault_aware: bool) -> None:
        super().__init__(env, fault_aware)
        self._gains: dict[BikeParams, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def observed_state(self, obs: np.ndarray) -> np.ndarray:
        p = self.unwrapped.base_params
        heading = np.arctan2(obs[5], obs[4])
        return np.array([obs[0] - p.roll_offset, obs[1] - p.steer_offset, obs[2], obs[3], -heading])

    def true_state(self) -> np.ndarray:
        return self.unwrapped.teacher_state()

    def model(self, faulted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        params = self.unwrapped.params if faulted else self.unwrapped.base_params
        if params not in self._gains:
            if len(self._gains) > 16:  # one entry per episode and body fault; keep it small
                self._gains.clear()
            ad, bd = discrete_matrices(params)
            self._gains[params] = (ad, bd, lqr_gain(ad, bd, LQR_Q, LQR_R))
        return self._gains[params]

    def output(self, state: np.ndarray, model: tuple) -> np.ndarray:
        return -(model[2] @ state) / TORQUE_MAX

    def advance(self, state: np.ndarray, output: np.ndarray, model: tuple) -> np.ndarray:
        ad, bd, _ = model
        return ad @ state + bd[:, 0] * TORQUE_MAX * float(np.clip(output[0], -1, 1))


register_task(BIKE_BALANCE, teacher=BikeTeacher)  # the env models its own body and sensors
