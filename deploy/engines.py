"""Controllers the closed loop can drive: one interface, four engines of one checkpoint.

=============  ====================================================================
``torch``      train's float step function (``train.snn.net_step``), float32
``torch-q``    the same step with train's board numerics (``train.quant``), float64:
               the board's arithmetic in torch, its exact twin up to the decoder
``onnx``       the exported float step in onnxruntime (``deploy.onnx_export``)
``board``      a board spoken to through the protocol: a process on a pty or any
               pyserial URL (``RemoteBoard``), or the firmware in this process
=============  ====================================================================

Every controller has ``reset()`` (new episode: membranes, spikes and traces cleared),
``set_learning(on)`` (the local rule runs or the trace is frozen; off from reset is the
global-weights baseline on the same weights), ``step(obs) -> action`` and ``probe()``, the
hidden layer's spike counts of the last step and its trace in float units (for telemetry).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Protocol

import numpy as np
import torch

import robot_env
from firmware_sim.server import Board
from protocol.client import Client
from protocol.transport import InProcessTransport
from train.quant import BoardNumerics
from train.snn import Numerics, init_net_state, net_step


class Controller(Protocol):
    name: str

    def reset(self) -> None: ...

    def set_learning(self, on: bool) -> None: ...

    def step(self, obs: np.ndarray) -> np.ndarray: ...

    def probe(self) -> dict[str, np.ndarray]: ...


def frozen_rule(params: Any) -> Any:
    """``params`` (train.snn.NetParams) with the local rule stopped: no decay, no Hebbian term."""

    rule = params.hidden.plastic
    if rule is None:
        return params
    stopped = replace(rule, lam=torch.ones_like(rule.lam), eta_pre=torch.zeros_like(rule.eta_pre))
    return replace(params, hidden=replace(params.hidden, plastic=stopped))


class TorchController:
    """train's step function in float (``quantised=False``) or the board's numerics (True)."""

    def __init__(self, policy: Any, quantised: bool = False) -> None:
        self.name = "torch-q" if quantised else "torch"
        dtype = torch.float64 if quantised else torch.float32
        self.policy = copy.deepcopy(policy).to(dtype)  # never retype the caller's module
        with torch.no_grad():
            policy = self.policy
            learned = policy.board_net().params if quantised else policy.net_params()
        self._params = {True: learned, False: frozen_rule(learned)}
        self.numerics = BoardNumerics() if quantised else Numerics()
        self.trace_unit = 1.0
        if quantised:
            self.trace_unit = 1.0 / policy.board_net().hidden.trace_per_unit
        self.dtype = dtype
        self.learning = True
        self.state: Any = None
        self._last_counts = np.zeros(policy.config.n_hidden)
        self.reset()

    def reset(self) -> None:
        self.state = init_net_state(self._params[True], 1)

    def set_learning(self, on: bool) -> None:
        self.learning = on

    def step(self, obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs, dtype=np.float64)[None], dtype=self.dtype)
        with torch.no_grad():
            action, self.state = net_step(x, self.state, self._params[self.learning], self.numerics)
        return action[0].double().numpy().astype(np.float32)

    def probe(self) -> dict[str, np.ndarray]:
        # net_step keeps only the last tick's spikes; counts per step come from the board
        h = self.state.hidden.h[0].double().numpy() * self.trace_unit
        return {"trace": h}


class BoardController:
    """A board behind the protocol's client: STEP per control step, RESET per episode.

    ``trace_unit`` converts the hidden core's int16 trace into float units for telemetry
    (``1 / c_h``, from the image's scales); with encoder copies (``deploy.mapping``) the probed
    trace leaves out the copies that never learn, so it has the checkpoint's rows.
    """

    def __init__(
        self,
        client: Any,
        trace_unit: float = 1.0,
        hidden_cores: int = 1,
        encoder_copies: int = 1,
        n_obs: int = 0,
    ) -> None:
        self.client = client
        self.name = "board"
        self.trace_unit = trace_unit
        self.hidden_cores = hidden_cores
        self.silent_rows = np.s_[n_obs : encoder_copies * n_obs]
        self.learning = True

    @classmethod
    def for_image(cls, client: Any, meta: dict[str, Any]) -> BoardController:
        """A controller set up from a packed image's ``meta`` (``deploy.pack``)."""
        return cls(
            client,
            trace_unit=float(meta.get("trace_unit", 1.0)),
            hidden_cores=len(meta.get("hidden_cores", [0])),
            encoder_copies=int(meta.get("encoder_copies", 1)),
            n_obs=int(meta.get("n_obs", 0)),
        )

    def reset(self) -> None:
        self.client.reset()
        self.client.learn(self.learning)

    def set_learning(self, on: bool) -> None:
        self.learning = on
        self.client.learn(on)

    def step(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(self.client.step(np.asarray(obs, np.float64))["outputs"], np.float32)

    def probe(self) -> dict[str, np.ndarray]:
        counts = [np.asarray(self.client.read("spikes", c)) for c in range(self.hidden_cores)]
        traces = [np.asarray(self.client.read("traces", c)) for c in range(self.hidden_cores)]
        trace = np.delete(np.concatenate(traces, axis=1), self.silent_rows, axis=0)
        return {
            "counts": np.concatenate(counts).astype(np.int64),
            "trace": trace.astype(np.float64) * self.trace_unit,
        }


def in_process_board(image_bytes: bytes, flash_dir: str, profile: str) -> Any:
    """A firmware board in this process behind the protocol: the golden reference, flashed
    and booted with ``image_bytes``; returns the protocol client."""

    board = Board(flash_dir, profile)
    link = InProcessTransport(board.responder.feed)
    link.open()
    client = Client(link, seed=0)
    result = client.flash(image_bytes)
    client.boot(result.slot)
    return client


class TeacherController:
    """robot_env's privileged teacher as a controller (it needs the env: ``bind``)."""

    def __init__(self, aware: bool) -> None:
        self.name = "teacher-aware" if aware else "teacher-blind"
        self.aware = aware
        self.teacher: Any = None

    def bind(self, env: Any) -> None:
        self.teacher = robot_env.make_teacher(env, fault_aware=self.aware)

    def reset(self) -> None: ...

    def set_learning(self, on: bool) -> None: ...

    def step(self, obs: np.ndarray) -> np.ndarray:
        return self.teacher(obs)

    def probe(self) -> dict[str, np.ndarray]:
        return {}
