"""ONNX export: the float control step with the plastic state as explicit inputs and outputs.

The graph is train's ``net_step`` (all ``ticks`` ticks unrolled) for a batch of one::

    inputs   obs (1, n_obs), learning (1,), v_hidden (1, H), s_hidden (1, H),
             h (1, n_obs + H, H), v_readout (1, n_readout)
    outputs  action (1, n_act), v_hidden, s_hidden, h, v_readout      (the next state)

``n_readout`` is ``n_act``, or ``2 * n_act`` with an integral readout (a slow neuron per action).

``learning`` is 1.0 (the local rule runs) or 0.0 (lambda = 1 and eta = 0: the trace is frozen,
the global-weights baseline). So onnxruntime runs the *adapting* network: feed each step's
state outputs back as the next step's inputs, as :class:`OnnxController` does. :func:`parity`
runs torch and onnxruntime side by side over a seeded closed-loop episode and reports the largest
difference in actions and state; :func:`export_checked` puts a graph at its path only once it has
passed.
"""

from __future__ import annotations

import copy
import io
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from deploy.errors import DeployError, ParityError

# torch, onnxruntime and train load inside the functions: deploy.cli reads the tolerances below
# at every start of `glocal`, the emulated board's included, which must stay light.
STATE_NAMES = ("v_hidden", "s_hidden", "h", "v_readout")
OPSET = 17
PARITY_TOLERANCE = 1e-5  # actions
STATE_TOLERANCE = 1e-4  # membranes and traces, relative above 1: see parity()


def step_module(policy: Any) -> Any:
    """An ``nn.Module`` running one control step of ``policy`` on explicit state tensors."""
    from dataclasses import replace

    import torch

    from train.snn import LayerState, NetState, net_step

    class Step(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, obs, learning, v_hidden, s_hidden, h, v_readout):  # type: ignore[override]
            params = self.policy.net_params()
            rule = params.hidden.plastic
            if rule is not None:
                # learning = 1 keeps lambda and eta exactly (x * 1 + 0 is exact in float)
                on = learning.reshape(())
                rule = replace(rule, lam=rule.lam * on + (1.0 - on), eta_pre=rule.eta_pre * on)
                params = replace(params, hidden=replace(params.hidden, plastic=rule))
            empty = obs.new_zeros(obs.shape[0], 0, 0)
            no_age = obs.new_zeros(obs.shape[0], 0)
            state = NetState(
                LayerState(v_hidden, s_hidden, h, no_age.new_zeros(obs.shape[0], h.shape[1])),
                LayerState(v_readout, torch.zeros_like(v_readout), empty, no_age),
            )
            action, new = net_step(obs, state, params)
            return action, new.hidden.v_mem, new.hidden.spikes, new.hidden.h, new.readout.v_mem

    return Step().eval()


def example_inputs(policy: Any) -> tuple[Any, ...]:
    import torch

    c = policy.config
    n_pre = c.n_obs + c.n_hidden
    return (
        torch.zeros(1, c.n_obs),
        torch.ones(1),
        torch.zeros(1, c.n_hidden),
        torch.zeros(1, c.n_hidden),
        torch.zeros(1, n_pre, c.n_hidden),
        torch.zeros(1, c.n_readout),
    )


def export_onnx(policy: Any, out: str | Path) -> Path:
    """Write the step graph of ``policy`` (float32) to ``out``."""
    import torch

    from train.models import SpikingPolicy

    if not isinstance(policy, SpikingPolicy):
        raise DeployError("only spiking policies (hp, gp, lp) have a step graph to export.")
    module = step_module(copy.deepcopy(policy).float())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    # The legacy exporter: the torch.export-based one needs onnxscript, not a dependency here.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            example_inputs(policy),
            buffer,
            input_names=["obs", "learning", *STATE_NAMES],
            output_names=["action", *(f"{name}_next" for name in STATE_NAMES)],
            opset_version=OPSET,
            dynamo=False,
        )
    out.write_bytes(buffer.getvalue())
    return out


def scaled_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    """The largest ``|ours - theirs| / max(1, |ours|)``."""
    ours = np.asarray(ours, np.float64)
    return float(np.max(np.abs(ours - theirs) / np.maximum(1.0, np.abs(ours))))


class OnnxController:
    """The exported float step in onnxruntime; the state travels as explicit tensors."""

    def __init__(self, model_path: str, n_hidden: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self.name = "onnx"
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.state: dict[str, np.ndarray] = {}
        self.learning = True
        self.reset()

    def reset(self) -> None:
        self.state = {
            name: np.zeros([int(d) for d in self.inputs[name].shape], np.float32)
            for name in STATE_NAMES
        }

    def set_learning(self, on: bool) -> None:
        self.learning = on

    def step(self, obs: np.ndarray) -> np.ndarray:
        feeds = dict(self.state)
        feeds["obs"] = np.asarray(obs, np.float32)[None]
        feeds["learning"] = np.array([1.0 if self.learning else 0.0], np.float32)
        outputs = self.session.run(None, feeds)
        self.state = dict(zip(STATE_NAMES, outputs[1:], strict=True))
        return outputs[0][0]

    def probe(self) -> dict[str, np.ndarray]:
        return {"trace": self.state["h"][0].astype(np.float64)}


def parity(
    policy: Any,
    model_path: str | Path,
    env_id: str = "glocal/ArmReach-v0",
    steps: int = 300,
    seed: int = 0,
    tolerance: float = PARITY_TOLERANCE,
    state_tolerance: float = STATE_TOLERANCE,
) -> dict[str, Any]:
    """Torch and onnxruntime over one seeded episode (torch's actions drive the env, learning on
    for the first half and off for the second); raises ParityError beyond the tolerances.

    Differences count relative to the value where it exceeds 1 (numpy's ``allclose`` with
    ``rtol = atol``). The state gets its own tolerance: a trace decaying by lambda per tick
    carries every tick's float32 rounding for about ``1 / (1 - lambda)`` ticks (110 at the
    shipped 0.991), and onnxruntime rounds some fused operations differently from torch, so two
    correct float32 engines part there by up to a few 1e-5 of the value; an export that is not
    the model parts by orders of magnitude more.
    """
    import robot_env
    from deploy.engines import TorchController

    torch_c = TorchController(policy)
    onnx_c = OnnxController(str(model_path), policy.config.n_hidden)
    env = robot_env.make(env_id)
    obs, _ = env.reset(seed=seed)
    worst_action = worst_state = 0.0
    for t in range(steps):
        if t == steps // 2:
            torch_c.set_learning(False)
            onnx_c.set_learning(False)
        a_torch = torch_c.step(obs)
        a_onnx = onnx_c.step(obs)
        worst_action = max(worst_action, scaled_difference(a_torch, a_onnx))
        s = torch_c.state
        for ours, theirs in (
            (s.hidden.v_mem, onnx_c.state["v_hidden"]),
            (s.hidden.h, onnx_c.state["h"]),
            (s.readout.v_mem, onnx_c.state["v_readout"]),
        ):
            worst_state = max(worst_state, scaled_difference(ours.numpy(), theirs))
        obs, _, terminated, truncated, _ = env.step(np.clip(a_torch, -1, 1))
        if terminated or truncated:
            break
    env.close()
    result = {
        "steps": t + 1,
        "max_action_diff": worst_action,
        "max_state_diff": worst_state,
        "tolerance": tolerance,
        "state_tolerance": state_tolerance,
    }
    if worst_action > tolerance or worst_state > state_tolerance:
        raise ParityError(
            f"onnxruntime and torch differ by {worst_action:.2e} on actions and "
            f"{worst_state:.2e} on the state over {t + 1} steps (tolerances {tolerance:.0e} "
            f"and {state_tolerance:.0e}); the exported graph is not the model."
        )
    return result


def export_checked(
    policy: Any,
    out: str | Path,
    env_id: str = "glocal/ArmReach-v0",
    steps: int = 300,
    tolerance: float = PARITY_TOLERANCE,
    state_tolerance: float = STATE_TOLERANCE,
) -> dict[str, Any]:
    """Export ``policy`` to ``out`` and return :func:`parity`'s result, writing ``out`` only if
    the graph passes: it is exported to a hidden file beside ``out`` (the same file system, so
    ``os.replace`` is atomic), checked there and moved into place. On any failure the temporary
    file is removed and whatever was at ``out`` before is left as it was."""
    out = Path(out)
    # unique per export, so two exports to one path never write into each other's file
    tmp = out.with_name(f".{out.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        export_onnx(policy, tmp)
        try:
            result = parity(policy, tmp, env_id, steps, 0, tolerance, state_tolerance)
        except ParityError as error:
            raise ParityError(f"{str(error).rstrip('.')}; nothing was written to {out}.") from None
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return result
