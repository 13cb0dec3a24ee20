"""Export a checkpoint's static graph to the Neuromorphic Intermediate Representation (NIR).

``export_nir(checkpoint, out)`` writes ``out`` (NIR's HDF5 file, ``nir.write``) holding the
network with plasticity off: ``Affine``/``Linear`` nodes for synapses and ``LIF`` nodes for
spiking layers (``LI`` for a membrane readout), in NIR's continuous-time form with one board tick
lasting ``TICK_SECONDS``. Our leak ``v <- v - v * 2**-decay_shift + I`` is NIR's Euler step
``v += dt/tau * (v_leak - v + r*I)`` with ``tau = 2**decay_shift * dt``, ``r = 2**decay_shift``,
``v_leak = 0``; the threshold is ``theta`` and ``v_reset = 0``. What NIR has no node for travels in
each node's ``metadata``:

- ``reset``: ``"soft"`` (subtract theta) or ``"hard"`` (to 0); NIR's LIF resets to ``v_reset``,
  so only hard-reset layers mean the same in every NIR simulator.
- ``plasticity``: the local rule (``alpha``, ``lam``, ``eta_pre``, ``beta_post``, ``h_max``) and
  its update ``H <- clip(lam * H + eta_pre x f(s - beta_post), -h_max, h_max)``, ``w_eff = W +
  alpha * H`` (docs/board-spec.md).
- ``quantisation``: train.quant's scales (``weight_lsb``, ``fine_per_unit``,
  ``trace_per_unit``, ``input_scale``) and the board's integer rule values.
- ``routing_delay_ticks``: 1 on routed spike edges (spikes arrive on the next tick).

Two checkpoint kinds are read: ``glocal-train-checkpoint`` (the robot policy: encoder, recurrent
plastic LIF hidden layer, membrane readout, decoder) and ``glocal-scenario-checkpoint`` of the
few-shot scenario (the plastic binding layer; the host-side feature extractor is not part of the
graph).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from deploy.errors import DeployError
from deploy.fewshot_board import (
    BOARD_H_MAX,
    BOARD_INPUT_SCALE,
    deployed_layer,
    read_fewshot_checkpoint,
)
from train.checkpoint import load_record
from train.quant import layer_scales, layer_tables, quantise_layer
from train.snn import LayerParams, PlasticParams

TICK_SECONDS = 1e-4  # snnTorch's NIR import assumes this dt; any value gives the same graph
TRAIN_FORMAT = "glocal-train-checkpoint"
SCENARIO_FORMAT = "glocal-scenario-checkpoint"


def lif_node(theta: np.ndarray, decay_shift: int, reset: str, metadata: dict) -> Any:
    """A NIR LIF whose Euler step with dt = TICK_SECONDS is the board's leak-and-add."""
    import nir

    n = theta.shape[0]
    tau = np.full(n, 2.0**decay_shift * TICK_SECONDS)
    return nir.LIF(
        tau=tau,
        r=np.full(n, 2.0**decay_shift),
        v_leak=np.zeros(n),
        v_threshold=np.asarray(theta, np.float64),
        v_reset=np.zeros(n),
        metadata={"reset": reset, "decay_shift": decay_shift, "dt": TICK_SECONDS, **metadata},
    )


def li_node(decay_shifts: np.ndarray, metadata: dict) -> Any:
    """A NIR LI (one neuron per shift) whose Euler step is the board's leak-and-add."""
    import nir

    scale = 2.0 ** np.asarray(decay_shifts, np.float64)
    return nir.LI(
        tau=scale * TICK_SECONDS,
        r=scale,
        v_leak=np.zeros(len(scale)),
        metadata={"decay_shift": np.asarray(decay_shifts), "dt": TICK_SECONDS, **metadata},
    )


def linear(w_pre_post: np.ndarray, metadata: dict | None = None) -> Any:
    """NIR's Linear takes (out, in); our weights are (pre, post)."""
    import nir

    return nir.Linear(weight=np.asarray(w_pre_post, np.float64).T.copy(), metadata=metadata or {})


def rule_metadata(layer: Any, row_scale: Any) -> dict[str, Any]:
    """Plasticity parameters (float) and quantisation scales/integers of one LayerParams."""

    rule = layer.plastic
    h_max = 1.0 if rule is None else float(rule.h_max[-1])
    scales = layer_scales(layer, row_scale, h_max)
    tables = layer_tables(quantise_layer(layer, scales))
    quant = {
        "weight_lsb": scales.weight_lsb,
        "fine_per_unit": scales.fine_per_unit,
        "trace_per_unit": scales.trace_per_unit,
        "row_scale": scales.row_scale.detach().numpy().astype(np.float64),
        "weights_q": tables["weights"].astype(np.int64),
        "theta_q": tables["theta"].astype(np.int64),
    }
    meta: dict[str, Any] = {"quantisation": quant, "plastic": rule is not None}
    if rule is not None:
        meta["plasticity"] = {
            "alpha": float(rule.alpha),
            "lam": float(rule.lam),
            "eta_pre": rule.eta_pre.detach().double().numpy(),
            "beta_post": rule.beta_post.detach().double().numpy(),
            "h_max": h_max,
            "f": "clip(u, -1, 1)",
            "update": "H <- clip(lam*H + m * eta_pre x f(s - beta_post), -h_max, h_max); "
            "w_eff = W + alpha*H",
            "m": "1"
            if rule.mod_levels is None
            else "mod_levels[spike of neuron mod_neuron on the previous tick]",
        }
        if rule.mod_levels is not None:
            meta["plasticity"]["mod_neuron"] = rule.mod_neuron
            meta["plasticity"]["mod_levels"] = rule.mod_levels.detach().double().numpy()
        for name in ("alpha", "lam", "h_max", "eta", "beta", "mod_levels"):
            quant[f"{name}_q"] = tables[name].astype(np.int64)
    return meta


def _train_graph(record: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    import nir

    net = record.get("network")
    if not isinstance(net, dict):
        raise DeployError("this training checkpoint has no spiking network to export (an LSTM?).")
    n_obs, n_hidden, n_act = int(net["n_obs"]), int(net["n_hidden"]), int(net["n_act"])
    w = torch.as_tensor(net["w_hidden"]).double()
    rule = None
    if net.get("plastic"):
        rule = PlasticParams(
            alpha=torch.tensor(float(net["alpha"])),
            lam=torch.tensor(float(net["lam"])),
            eta_pre=torch.as_tensor(net["eta_pre"]).double(),
            beta_post=torch.as_tensor(net["beta_post"]).double(),
            h_max=torch.full((w.shape[0], 1), float(net["h_max"])),
            mod_neuron=int(net.get("mod_neuron", -1)),
            mod_levels=None
            if net.get("mod_levels") is None
            else torch.as_tensor(net["mod_levels"]).double(),
        )
    hidden = LayerParams(
        w=w,
        theta=torch.as_tensor(net["theta_hidden"]).double(),
        decay_shift=int(net["decay_shift"]),
        reset=str(net["reset"]),
        plastic=rule,
    )
    rows = torch.ones(w.shape[0], dtype=torch.float64)
    rows[:n_obs] = float(net["input_scale"])
    meta = rule_metadata(hidden, rows)
    meta["quantisation"]["input_scale"] = int(net["input_scale"])
    wn = w.numpy()
    as_np = {
        k: np.asarray(torch.as_tensor(net[k]).double())
        for k in ("enc_gain", "enc_bias", "dec_gain", "dec_bias", "w_readout")
    }
    # readout neuron j (fast, then slow with an integral readout) feeds action j mod n_act
    readout_shifts = np.full(n_act, int(net["readout_decay_shift"]))
    if net.get("integral_shift"):
        readout_shifts = np.concatenate(
            [readout_shifts, np.full(n_act, int(net["integral_shift"]))]
        )
    neurons = np.arange(len(readout_shifts))
    decoder = np.zeros((n_act, len(neurons)))
    decoder[neurons % n_act, neurons] = as_np["dec_gain"]
    nodes = {
        "input": nir.Input(input_type=np.array([n_obs])),
        "encoder": nir.Affine(
            weight=np.diag(as_np["enc_gain"]),
            bias=as_np["enc_bias"],
            metadata={"role": "encoder current x = obs*gain + bias"},
        ),
        "w_in": linear(wn[:n_obs]),
        "hidden": lif_node(hidden.theta.numpy(), hidden.decay_shift, hidden.reset, meta),
        "w_rec": linear(wn[n_obs:], {"routing_delay_ticks": 1}),
        "w_out": linear(as_np["w_readout"], {"routing_delay_ticks": 1}),
        "readout": li_node(readout_shifts, {"read": "membrane after the step's last tick"}),
        "decoder": nir.Affine(weight=decoder, bias=as_np["dec_bias"]),
        "output": nir.Output(output_type=np.array([n_act])),
    }
    edges = [
        ("input", "encoder"),
        ("encoder", "w_in"),
        ("w_in", "hidden"),
        ("hidden", "w_rec"),
        ("w_rec", "hidden"),
        ("hidden", "w_out"),
        ("w_out", "readout"),
        ("readout", "decoder"),
        ("decoder", "output"),
    ]
    graph_meta = {"source": TRAIN_FORMAT, "ticks_per_step": int(net["ticks"]), "n_hidden": n_hidden}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=graph_meta), graph_meta


def binding_graph(layer: Any, input_scale: int, metadata: dict[str, Any]) -> Any:
    """Input -> Affine(W) -> LIF -> Output for one (plastic) layer fed by encoder axons."""
    import nir

    n_pre, n_post = layer.w.shape
    rows = torch.full((n_pre,), float(input_scale), dtype=layer.w.dtype)
    meta = rule_metadata(layer, rows)
    meta["quantisation"]["input_scale"] = input_scale
    nodes = {
        "input": nir.Input(input_type=np.array([n_pre])),
        "synapses": nir.Affine(
            weight=layer.w.detach().double().numpy().T.copy(), bias=np.zeros(n_post)
        ),
        "lif": lif_node(
            layer.theta.detach().double().numpy(), layer.decay_shift, layer.reset, meta
        ),
        "output": nir.Output(output_type=np.array([n_post])),
    }
    edges = [("input", "synapses"), ("synapses", "lif"), ("lif", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def _scenario_graph(path: Path, n_way: int) -> tuple[Any, dict[str, Any]]:
    """The few-shot binding layer as the board runs it (deploy.fewshot_board's deployment)."""

    checkpoint = read_fewshot_checkpoint(path)
    cfg, rule = checkpoint.cfg, checkpoint.rule
    meta = {
        "source": SCENARIO_FORMAT,
        "scenario": "few-shot",
        "n_way": n_way,
        "ticks_per_step": cfg.ticks,
        "axons": f"features 0..{cfg.n_features - 1}, label axon of class c at "
        f"{cfg.n_features} + c (eta 0)",
    }
    layer = deployed_layer(rule, n_way, BOARD_H_MAX)
    return binding_graph(layer, BOARD_INPUT_SCALE, meta), meta


def export_nir(checkpoint: str | Path, out: str | Path, n_way: int = 5) -> dict[str, Any]:
    """Write the checkpoint's graph as a NIR file at ``out``; a summary of what was written."""
    try:
        import nir
    except ImportError:
        raise DeployError("export-nir needs the `nir` package: pip install nir.") from None

    path = Path(checkpoint)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise DeployError(f"no checkpoint at {path}.")
    if n_way < 1:
        raise DeployError(f"--n-way must be at least 1, not {n_way}.")

    record = load_record(path, DeployError)
    kind = record.get("format") if isinstance(record, dict) else None
    if kind == TRAIN_FORMAT:
        graph, meta = _train_graph(record)
    elif kind == SCENARIO_FORMAT:
        graph, meta = _scenario_graph(path, n_way)
    else:
        raise DeployError(f"{path} is neither a glocal training nor a scenario checkpoint.")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(out), graph)
    return {
        "checkpoint": str(path),
        "out": str(out),
        "nodes": {name: type(node).__name__ for name, node in graph.nodes.items()},
        "edges": [list(e) for e in graph.edges],
        **{k: v for k, v in meta.items() if isinstance(v, int | str)},
    }
