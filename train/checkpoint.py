"""Checkpoints: a plain, documented record of the trained network (see docs/train.md).

``model.pt`` is a ``torch.save`` of a dict of plain types and tensors::

    format        "glocal-train-checkpoint", version 1
    config        ModelConfig as a dict (kind, sizes, ticks, decay shifts, reset, h_max, ...)
    train         TrainConfig as a dict (seed, steps, task, fault mix, ...)
    state_dict    the nn.Module's tensors (for resuming and for the LSTM/MLP baselines)
    network       spiking kinds only: every float the board network needs, by name
                  (w_hidden, theta_hidden, w_readout, alpha, lam, eta_pre, beta_post, h_max,
                  decay_shift, readout_decay_shift, integral_shift, reset, ticks,
                  input_scale, enc_gain, enc_bias, dec_gain (one per readout neuron), dec_bias;
                  mod_neuron and mod_levels with a modulator),
                  so deploy never re-derives lambda from a logit
    step          optimiser updates done

``resume.pt`` adds the optimiser and RNG states; ``config.json`` and ``metrics.json`` sit beside.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from train.errors import TrainError
from train.models import ModelConfig, Policy, SpikingPolicy, build_policy

FORMAT = "glocal-train-checkpoint"
VERSION = 1
MODEL_FILE = "model.pt"
RESUME_FILE = "resume.pt"


def network_record(policy: Policy) -> dict[str, Any] | None:
    """Everything the board network needs, as named float tensors and ints (spiking kinds)."""
    if not isinstance(policy, SpikingPolicy):
        return None
    params = policy.net_params()
    c = policy.config
    record: dict[str, Any] = {
        "w_hidden": params.hidden.w.detach().cpu().clone(),
        "theta_hidden": params.hidden.theta.detach().cpu().clone(),
        "w_readout": params.readout.w.detach().cpu().clone(),
        "n_obs": c.n_obs,
        "n_hidden": c.n_hidden,
        "n_act": c.n_act,
        "decay_shift": c.decay_shift,
        "readout_decay_shift": c.readout_decay_shift,
        "integral_shift": c.integral_shift,
        "reset": c.reset,
        "ticks": c.ticks,
        "input_scale": c.input_scale,
        "h_max": c.h_max,
        "plastic": params.hidden.plastic is not None,
    }
    for name in ("enc_gain", "enc_bias", "dec_gain", "dec_bias"):
        record[name] = getattr(params, name).detach().cpu().clone()
    rule = params.hidden.plastic
    if rule is not None:
        record["alpha"] = float(rule.alpha.detach())
        record["lam"] = float(rule.lam.detach())
        record["eta_pre"] = rule.eta_pre.detach().cpu().clone()
        record["beta_post"] = rule.beta_post.detach().cpu().clone()
        if rule.mod_levels is not None:
            record["mod_neuron"] = rule.mod_neuron
            record["mod_levels"] = rule.mod_levels.detach().cpu().clone()
    return record


def save_model(path: Path, policy: Policy, train_config: dict[str, Any], step: int) -> None:
    """Write ``model.pt`` beside itself and rename: a kill mid-write leaves the old one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(
        {
            "format": FORMAT,
            "version": VERSION,
            "config": policy.config.to_dict(),
            "train": train_config,
            "state_dict": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
            "network": network_record(policy),
            "step": step,
        },
        tmp,
    )
    tmp.replace(path)


def load_record(path: Path, error_type: type[Exception] = TrainError) -> Any:
    """``torch.load`` of any glocal checkpoint file on the CPU; a file torch cannot read is one
    sentence, raised as ``error_type`` (the caller's package's root error)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for a bad file
        raise error_type(f"{path} is not a readable torch checkpoint ({error}).") from None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, checked for format and version."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.exists():
        raise TrainError(f"no checkpoint at {path}; train one with `glocal train --out DIR`.")
    record = load_record(path)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise TrainError(f"{path} is not a glocal training checkpoint.")
    if record.get("version") != VERSION:
        raise TrainError(f"{path} has checkpoint version {record.get('version')}, not {VERSION}.")
    return record


def load_policy(path: str | Path) -> tuple[Policy, dict[str, Any]]:
    """The trained policy of a checkpoint (file or folder) and the whole record."""
    record = read_checkpoint(path)
    known = {f.name for f in fields(ModelConfig)}
    config = ModelConfig(**{k: v for k, v in record["config"].items() if k in known})
    policy = build_policy(config)
    policy.load_state_dict(record["state_dict"])
    return policy, record


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_plain) + "\n")
    tmp.replace(path)


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return str(value)
