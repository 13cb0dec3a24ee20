"""One BPTT window of a policy: step it on observations, then get its actions with their graph.

Training interleaves the policy with an environment that gradients do not cross, so a window is
stepped one control step at a time (:meth:`step` returns the action to execute) and only
:meth:`finish` hands the loss the window's actions (steps, B, n_act), with their graph, and the
squared trace after each step (for the trace penalty). Two engines do this:

``autograd``  the policy's own forward, tick by tick in torch: every policy, every device, and
              the reference the fused engine is tested against.
``fused``     HP, GP and LP on the CPU: the whole window is one autograd node whose forward and
              hand-derived adjoint are compiled kernels (:mod:`train.window_kernels`), so its
              cost is the arithmetic of the active rows rather than thousands of small ops.
"""

from __future__ import annotations

from typing import Any, Protocol

import numba
import numpy as np
import torch

from protocol.numeric import AGE_MAX, LAMBDA_ONE, lambda_powers
from train import window_kernels as kernels
from train.errors import TrainError
from train.models import Policy, SpikingPolicy, detach_state
from train.quant import BoardNumerics
from train.snn import LayerState, NetParams, NetState, Numerics, decode

ENGINES = ("auto", "fused", "autograd")


class Window(Protocol):
    def step(self, obs: torch.Tensor) -> torch.Tensor:
        """The action (B, n_act) to execute, without graph."""

    def finish(self) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
        """Actions (steps, B, n_act) and squared traces (steps, B) with their graph, and the
        detached state to carry into the next window."""


def open_window(policy: Policy, state: Any, steps: int, engine: str, trace: bool) -> Window:
    """A window of ``steps`` control steps from ``state`` on ``engine`` (``auto``: fused where it
    can run). ``trace`` asks for the squared trace after each step."""
    if engine not in ENGINES:
        raise TrainError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}.")
    fusable = type(policy) is SpikingPolicy and policy.w_hidden.device.type == "cpu"
    if engine == "fused" and not fusable:
        raise TrainError(
            "the fused engine runs the hp, gp and lp networks on the CPU; use --engine autograd "
            "for other policies and for CUDA."
        )
    if engine == "autograd" or not fusable:
        return AutogradWindow(policy, state, trace)
    return FusedWindow(policy, state, steps, trace)


class AutogradWindow:
    """The policy's forward per control step, graph kept by autograd."""

    def __init__(self, policy: Policy, state: Any, trace: bool) -> None:
        self.policy, self.state, self.trace = policy, state, trace
        self.actions: list[torch.Tensor] = []
        self.trace_sq: list[torch.Tensor] = []

    def step(self, obs: torch.Tensor) -> torch.Tensor:
        action, self.state = self.policy(obs, self.state)
        self.actions.append(action)
        if self.trace:
            self.trace_sq.append(self.state.hidden.h.pow(2).sum(dim=(1, 2)))
        return action.detach()

    def finish(self) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
        trace_sq = torch.stack(self.trace_sq) if self.trace else None
        return torch.stack(self.actions), trace_sq, detach_state(self.state)


def _array(t: torch.Tensor | float, dtype: np.dtype, shape: tuple[int, ...] = ()) -> np.ndarray:
    """A writable C-ordered copy (the kernels update state in place; callers keep theirs)."""
    value = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return np.array(np.broadcast_to(value, shape or value.shape), dtype=dtype, order="C")


def _leak(decay_shift: int | torch.Tensor, n: int, dtype: np.dtype) -> np.ndarray:
    """Per neuron, the share of the membrane that leaks per tick: ``2**-decay_shift``."""
    shift = torch.as_tensor(decay_shift, dtype=torch.float64)
    return _array(2.0**-shift, dtype, (n,))


class FusedWindow:
    """HP / GP / LP through the compiled kernels; one autograd node per window.

    Forward keeps, per control step, a checkpoint of the state the step started from (the
    adjoint recomputes the step's ticks from it), and the encoder currents with their graph."""

    def __init__(self, policy: SpikingPolicy, state: NetState, steps: int, trace: bool) -> None:
        self.board = policy.config.quantized
        self.params: NetParams = policy.board_net().params if self.board else policy.net_params()
        self.numerics = BoardNumerics() if self.board else Numerics()
        self.trace = trace
        hidden, readout, rule = self.params.hidden, self.params.readout, self.params.hidden.plastic
        dt = np.dtype(str(hidden.w.dtype).removeprefix("torch."))
        batch = state.hidden.v_mem.shape[0]
        n_pre, n_post = hidden.w.shape
        n_read = readout.w.shape[1]
        self.steps, self.ticks, self.t = steps, self.params.ticks, 0
        self.dtype = hidden.w.dtype

        # The lazy decay's table lam**k and its derivative k * lam**(k-1): the board's integer
        # table up to its age counter's limit, or real powers over one control step's ages.
        lam = float(rule.lam.detach()) if rule is not None else 1.0
        ages = np.arange(AGE_MAX + 1 if self.board else self.ticks + 1)
        if self.board and rule is not None:
            tab = np.array(lambda_powers(round(lam * LAMBDA_ONE)), np.float64) / LAMBDA_ONE
        else:
            tab = lam**ages
        dtab = ages * lam ** np.maximum(ages - 1, 0)
        faults = (hidden.synapse_keep, readout.synapse_keep, hidden.neuron_alive)
        self.tables = {
            "w": _array(hidden.w, dt),
            "theta": _array(hidden.theta, dt),
            "leak": _leak(hidden.decay_shift, n_post, dt),
            "tab": _array(tab, dt),
            "eta": _array(rule.eta_pre if rule else 0.0, dt, (n_pre,)),
            "beta": _array(rule.beta_post if rule else 0.0, dt, (n_post,)),
            "h_max": _array(rule.h_max[:, 0] if rule else 0.0, dt, (n_pre,)),
            "w_r": _array(readout.w, dt),
            "leak_r": _leak(readout.decay_shift, n_read, dt),
            "keep": _array(faults[0], dt) if faults[0] is not None else np.ones((1, 1, 1), dt),
            "keep_r": _array(faults[1], dt) if faults[1] is not None else np.ones((1, 1, 1), dt),
            "alive": _array(faults[2], dt) if faults[2] is not None else np.ones((1, 1), dt),
        }
        self.dtab = _array(dtab, dt)
        self.constants = kernels.CONSTANTS.astype(dt)
        self.scalars = np.zeros(4, dt)
        self.scalars[kernels.WIDTH] = hidden.surrogate_width
        if rule is not None:
            self.scalars[kernels.ALPHA] = float(rule.alpha.detach())
        mod = rule.mod_neuron if rule is not None and rule.mod_levels is not None else -1
        if mod >= 0:
            self.scalars[[kernels.MOD_LOW, kernels.MOD_HIGH]] = _array(rule.mod_levels, dt)
        self.flags = np.array(
            [self.board, hidden.reset == "soft", rule is not None, mod]
            + [f is not None for f in faults],
            np.int64,
        )

        # One checkpoint per control step: step t runs from checkpoint t into t + 1.
        shapes = {
            "v": ((batch, n_post), dt),
            "s": ((batch, n_post), dt),
            "h": (tuple(state.hidden.h.shape), dt),
            "age": ((batch, state.hidden.age.shape[1]), np.int64),
            "vr": ((batch, n_read), dt),
            "u": ((batch, n_post), dt),
        }
        self.checkpoints = {k: np.empty((steps + 1, *shape), t) for k, (shape, t) in shapes.items()}
        first = (state.hidden.v_mem, state.hidden.spikes, state.hidden.h, state.hidden.age)
        for name, value in zip(("v", "s", "h", "age"), first, strict=True):
            self.checkpoints[name][0] = value.detach().cpu().numpy()
        self.checkpoints["vr"][0] = state.readout.v_mem.detach().cpu().numpy()
        self.checkpoints["u"][0] = np.inf  # the initial spikes carry no gradient
        self.x_in: list[torch.Tensor] = []
        self.v_readout = np.empty((steps, batch, n_read), dt)
        self.trace_sq = np.zeros((steps, batch), dt)

    def step(self, obs: torch.Tensor) -> torch.Tensor:
        if self.t == self.steps:
            raise TrainError(f"this window holds {self.steps} control steps.")
        p, t = self.params, self.t
        x_in = self.numerics.encode(obs.to(self.dtype), p.enc_gain, p.enc_bias)
        self.x_in.append(x_in)
        tb, ck = self.tables, self.checkpoints
        kernels.step_forward(
            _array(x_in, tb["w"].dtype), ck["v"], ck["s"], ck["h"], ck["age"], ck["vr"], ck["u"],
            t, self.ticks, tb["w"], tb["theta"], tb["leak"], tb["tab"], tb["eta"], tb["beta"],
            tb["h_max"], tb["w_r"], tb["leak_r"], tb["keep"], tb["keep_r"], tb["alive"],
            self.scalars, self.flags, self.constants,
        )  # fmt: skip
        self.v_readout[t] = ck["vr"][t + 1]
        if self.trace and self.flags[kernels.PLASTIC]:
            self.trace_sq[t] = np.einsum("bij,bij->b", ck["h"][t + 1], ck["h"][t + 1])
        self.t += 1
        return decode(torch.from_numpy(self.v_readout[t].copy()), p).detach()

    def finish(self) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
        p, rule = self.params, self.params.hidden.plastic
        x_in = torch.stack(self.x_in)
        inputs = (
            x_in,
            p.hidden.w,
            p.hidden.theta,
            *(
                (rule.alpha, rule.lam, rule.eta_pre, rule.beta_post, rule.mod_levels)
                if rule is not None
                else (None,) * 5
            ),
            p.readout.w,
        )
        v_readout, trace_sq = _WindowFunction.apply(self, *inputs)
        actions = decode(v_readout, p)
        return actions, trace_sq if self.trace else None, self.final_state()

    def final_state(self) -> NetState:
        """The state after the last step taken, detached, as :class:`~train.snn.NetState`."""
        ck, t = self.checkpoints, self.t

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.array(a, dtype=self.v_readout.dtype))

        batch, n_read = ck["vr"][t].shape
        return NetState(
            LayerState(*(tensor(ck[name][t]) for name in ("v", "s", "h", "age"))),
            LayerState(
                tensor(ck["vr"][t]),
                torch.zeros(batch, n_read, dtype=self.dtype),
                torch.zeros(batch, 0, 0, dtype=self.dtype),
                torch.zeros(batch, 0, dtype=self.dtype),
            ),
        )

    def gradients(self, g_readout: np.ndarray, g_trace_sq: np.ndarray) -> tuple[np.ndarray, ...]:
        """The adjoint of the window (see :func:`train.window_kernels.window_backward`)."""
        tb, ck = self.tables, self.checkpoints
        x_in = np.ascontiguousarray(np.stack([_array(x, self.v_readout.dtype) for x in self.x_in]))
        chunks = max(1, min(numba.get_num_threads(), x_in.shape[1]))
        return kernels.window_backward(
            ck["v"], ck["s"], ck["h"], ck["age"], ck["vr"], ck["u"], x_in, g_readout, g_trace_sq,
            self.ticks, tb["w"], tb["theta"], tb["leak"], tb["tab"], self.dtab, tb["eta"],
            tb["beta"], tb["h_max"], tb["w_r"], tb["leak_r"], tb["keep"], tb["keep_r"],
            tb["alive"], self.scalars, self.flags, self.constants, chunks,
        )  # fmt: skip


class _WindowFunction(torch.autograd.Function):
    """The window as one node: forward hands over what :class:`FusedWindow` already computed,
    backward runs the compiled adjoint."""

    @staticmethod
    def forward(ctx, window: FusedWindow, *inputs: torch.Tensor | None):  # type: ignore[override]
        ctx.window = window
        ctx.shapes = [None if t is None else t.shape for t in inputs]
        steps = window.t  # a window may end early: only the steps it took
        return torch.from_numpy(window.v_readout[:steps]), torch.from_numpy(window.trace_sq[:steps])

    @staticmethod
    def backward(ctx, g_readout: torch.Tensor, g_trace_sq: torch.Tensor):  # type: ignore[override]
        window: FusedWindow = ctx.window
        dt = window.v_readout.dtype
        g_x, g_w, g_theta, g_eta, g_beta, g_w_r, g_scalars = window.gradients(
            np.ascontiguousarray(g_readout.numpy(), dtype=dt),
            np.ascontiguousarray(g_trace_sq.numpy(), dtype=dt),
        )
        s = g_scalars.sum(0)
        found = [
            g_x,
            g_w.sum(0),
            g_theta.sum(0),
            s[kernels.G_ALPHA],
            s[kernels.G_LAM],
            g_eta.sum(0),
            g_beta.sum(0),
            s[[kernels.G_LOW, kernels.G_HIGH]],
            g_w_r.sum(0),
        ]
        grads = [None]
        for needed, shape, g in zip(ctx.needs_input_grad[1:], ctx.shapes, found, strict=True):
            grads.append(
                torch.as_tensor(np.asarray(g), dtype=window.dtype).reshape(shape)
                if needed and shape is not None
                else None
            )
        return tuple(grads)
