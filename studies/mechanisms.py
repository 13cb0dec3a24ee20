"""Issue 21's mechanism study, first pilot: which on-chip mechanism lets a spiking policy adapt?

Candidates, all the board network of :mod:`train.snn` (10-64-2, T = 8), trained by the same
DAgger loop (:func:`train.loop.train`) on the same fault mix, and scored by the torch closure
table (:mod:`studies.closure_table`) with learning on and off on the same episodes:

* ``gp``: no on-chip learning (the global-weights baseline).
* ``hp``: today's Hebbian trace ``H`` in ``W + alpha H`` (learning off: ``H`` frozen at 0).
* ``gp-ip`` / ``hp-ip``: plus neuromodulated *intrinsic* plasticity. The last ``K`` hidden
  neurons are modulatory; their spikes, low-pass filtered per tick (``r <- rho r + (1 - rho) s``,
  ``rho`` learned), scale every hidden neuron's threshold multiplicatively::

      theta_j(t) = theta_j * exp(-clip(sum_k G_jk r_k(t), -2, 2))

  ``G`` starts at zero, so each starts as its plain counterpart. A threshold scale is the
  spiking form of a GRU-like input gain (a neuron with half the threshold answers the same input
  with twice the rate), and Loihi 2's programmable neurons can hold it. Learning off: ``G r = 0``
  (and ``H`` frozen for ``hp-ip``).
* ``gp-gain`` / ``hp-gain``: the same modulatory rates set a *signed* gain on every hidden
  neuron's input current, ``I_j(t) <- clip(1 + sum_k G_jk r_k(t), -2, 2) * I_j(t)``. A gain that
  can change sign can turn a pathway around, which a reversed motor asks for and a threshold
  scale cannot do (the MIT rule's regressor times a signed error). Learning off: gain 1.

"Learning-attributable" closure is on minus off, same checkpoint and episodes. ``gp`` and ``hp``
train as the plain :class:`~train.models.SpikingPolicy` (so on the fused engine, about 7x
faster: docs/results/2026-12-08-fast-training.md) and are scored as a :class:`MechanismPolicy`
with the same weights. Run from the
repository root; one candidate and seed per call, so two calls use both cores::

    python -m studies.mechanisms train hp-ip --seed 0 --steps 600 --out runs/mech
    python -m studies.mechanisms score runs/mech --episodes 64
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from deploy.engines import frozen_rule
from studies.closure_table import evaluate
from train.checkpoint import load_record
from train.config import TrainConfig
from train.models import ModelConfig, Policy, SpikingPolicy, count_parameters
from train.snn import NetState, init_net_state, net_step

MODULATIONS = {"ip": "threshold", "gain": "gain"}  # candidate suffix: what the rates scale
CANDIDATES = ("gp", "hp", "gp-ip", "hp-ip", "gp-gain", "hp-gain")
MODULATORS = 4  # K: the hidden neurons whose filtered spikes set the scales
GAIN_CLIP = 2.0  # |log threshold scale| <= 2, and a signed input gain within [-2, 2]
PILOT = {  # the shipped float stage's recipe (train/checkpoints/armreach_hp_float) at pilot size
    "batch": 16,
    "window": 40,
    "episode_steps": 160,
    "clean_steps": 100,
    "lam_logit": 5.0,
    "trace_penalty": 1.0,
    "onset": (20, 100),
    "validate_every": 100,
    "checkpoint_every": 100,
}
SCORED_KINDS = ("reversed-motor", "bias-torque")


class IntrinsicState(NamedTuple):
    net: NetState
    rate: torch.Tensor  # (B, K): filtered spikes of the modulatory neurons

    @property
    def hidden(self) -> Any:  # the trace penalty of train.loop reads state.hidden.h
        return self.net.hidden


class MechanismPolicy(SpikingPolicy):
    """A spiking policy whose learning (trace and modulated scales) can be switched off.

    ``modulation``: None (the plain network), ``"threshold"`` or ``"gain"``."""

    def __init__(self, config: ModelConfig, modulation: str | None, generator: Any = None) -> None:
        super().__init__(config, generator)
        self.modulation_kind = modulation
        self.learning = True
        if modulation is not None:
            self.gain = nn.Parameter(torch.zeros(config.n_hidden, MODULATORS))
            self.rate_logit = nn.Parameter(torch.tensor(4.0))  # rho ~ 0.98 per tick

    @property
    def intrinsic(self) -> bool:
        return self.modulation_kind is not None

    def initial_state(self, batch: int) -> Any:
        net = init_net_state(self.net_params(), batch)
        if not self.intrinsic:
            return net
        return IntrinsicState(net, self.w_hidden.new_zeros(batch, MODULATORS))

    def forward(self, obs: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        params = self.net_params()
        if not self.learning:
            params = frozen_rule(params)
        if not self.intrinsic:
            return net_step(obs, state, params)
        rho = torch.sigmoid(self.rate_logit)
        gain = self.gain if self.learning else None
        action, (net, rate) = _net_step(
            obs, state.net, params, (state.rate, rho), gain, self.modulation_kind
        )
        return action, IntrinsicState(net, rate)


def _net_step(obs, net: NetState, params, rate, gain, modulation):  # type: ignore[no-untyped-def]
    """``train.snn.net_step`` a tick at a time, with the hidden thresholds or input gains scaled
    by the modulatory rates between ticks (``gain`` None: unscaled, the rates still filtered)."""
    r, rho = rate
    one_tick = dataclasses.replace(params, ticks=1)
    for _ in range(params.ticks):
        layer = params.hidden
        if gain is not None and modulation == "threshold":
            scale = torch.exp(-(r @ gain.T).clamp(-GAIN_CLIP, GAIN_CLIP))
            layer = dataclasses.replace(layer, theta=layer.theta * scale)
        elif gain is not None:  # a signed gain on each neuron's input current: scale its column
            g = (1.0 + r @ gain.T).clamp(-GAIN_CLIP, GAIN_CLIP)
            keep = g.unsqueeze(1).expand(-1, layer.w.shape[0], -1)
            if layer.synapse_keep is not None:
                keep = keep * layer.synapse_keep
            layer = dataclasses.replace(layer, synapse_keep=keep)
        action, net = net_step(obs, net, dataclasses.replace(one_tick, hidden=layer))
        r = rho * r + (1 - rho) * net.hidden.spikes[:, -MODULATORS:]
    return action, (net, r)


def modulation_of(candidate: str) -> str | None:
    """What a candidate's modulatory rates scale (None: nothing, the plain network)."""
    _, _, suffix = candidate.partition("-")
    return MODULATIONS.get(suffix)


def build(candidate: str) -> Any:
    """A ``build_policy`` for :func:`train.loop.train` that makes ``candidate``."""

    def make(config: ModelConfig, seed: int = 0) -> Policy:
        generator = torch.Generator().manual_seed(seed)
        modulation = modulation_of(candidate)
        if modulation is None:  # the plain network: trained on the fused engine
            return SpikingPolicy(config, generator)
        return MechanismPolicy(config, modulation, generator)

    return make


def train_candidate(candidate: str, seed: int, steps: int, out: Path) -> dict[str, Any]:
    from train.loop import train

    kind = candidate.split("-")[0]
    cfg = TrainConfig(model=kind, seed=seed, steps=steps, n_hidden=64, **PILOT)
    folder = out / f"{candidate}-seed{seed}"
    summary = train(cfg, folder, resume=False, build_policy=build(candidate))
    return {"candidate": candidate, "folder": str(folder), **summary}


def load_candidate(folder: Path) -> MechanismPolicy:
    record = load_record(folder / "model.pt")
    config = ModelConfig(**record["config"])
    policy = MechanismPolicy(config, modulation_of(folder.name.split("-seed")[0]))
    policy.load_state_dict(record["state_dict"])
    return policy.eval()


def score(out: Path, episodes: int, seed: int) -> dict[str, Any]:
    """Closure on and off for every trained candidate under ``out``, on the same episodes."""
    controllers: dict[str, Policy] = {}
    parameters = {}
    for folder in sorted(p for p in out.iterdir() if (p / "model.pt").exists()):
        for learning in (True, False):
            policy = load_candidate(folder)
            policy.learning = learning
            controllers[f"{folder.name} {'on' if learning else 'off'}"] = policy
        parameters[folder.name] = count_parameters(policy)
    with torch.no_grad():
        table = evaluate(controllers, episodes, seed, SCORED_KINDS)
    return {"parameters": parameters, "table": table}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    t = sub.add_parser("train", help="train one candidate at one seed")
    t.add_argument("candidate", choices=CANDIDATES)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--steps", type=int, default=600)
    t.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("score", help="closure on/off of every candidate trained under --out")
    s.add_argument("out", type=Path)
    s.add_argument("--episodes", type=int, default=64)
    s.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.verb == "train":
        result = train_candidate(args.candidate, args.seed, args.steps, args.out)
    else:
        result = score(args.out, args.episodes, args.seed)
        (args.out / "mechanisms.json").write_text(json.dumps(result, indent=2))
    json.dump(result, sys.stdout, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
