"""The spiking classifier of the continual and fault-tolerant scenarios, on train.snn's step.

``x`` (graded pixels in [0, 1]) arrives as an encoder current on every one of ``ticks`` ticks::

    hidden : layer_step([x], LIF, n_hidden)          plastic (W + alpha * H) for HP
    readout: layer_step(hidden spikes of the previous tick, leaky integrator, n_classes)
    logits = readout v_mem after the last tick

The trace starts at zero for every sample (the rule adapts within one presentation); HP learns
``W`` and the rule (alpha, lambda, eta_pre, beta_post) by BPTT, GP only ``W`` (no trace).
``mask`` (n_hidden,) gates hidden neurons (the per-task context masks of the continual
scenario); ``w_fault`` (n_in, n_hidden) is 0 where a hidden synapse is stuck at zero: its
weight and its trace are both lost, as the board's ``stuck-zero`` fault sets ``w_eff = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from train.snn import LayerParams, PlasticParams, init_layer_state, layer_step


@dataclass(frozen=True)
class MLPConfig:
    n_in: int = 64
    n_hidden: int = 128
    n_classes: int = 10
    ticks: int = 8
    decay_shift: int = 2
    h_max: float = 1.0


DEFAULT_MLP = MLPConfig()


class SpikingMLP(nn.Module):
    """n_in -> LIF hidden (optionally plastic) -> leaky readout, through train.snn.layer_step."""

    def __init__(self, cfg: MLPConfig, plastic: bool, generator: torch.Generator) -> None:
        super().__init__()
        self.cfg = cfg
        self.plastic = plastic
        scale1 = 2.0 / cfg.n_in**0.5
        self.w1 = nn.Parameter(torch.randn(cfg.n_in, cfg.n_hidden, generator=generator) * scale1)
        self.w2 = nn.Parameter(
            torch.randn(cfg.n_hidden, cfg.n_classes, generator=generator) / cfg.n_hidden**0.5
        )
        self.log_theta = nn.Parameter(torch.zeros(cfg.n_hidden))
        if plastic:
            self.log_alpha = nn.Parameter(torch.tensor(-1.0))
            self.lam_logit = nn.Parameter(torch.tensor(2.0))
            self.eta = nn.Parameter(torch.full((cfg.n_in,), 0.05))
            self.beta = nn.Parameter(torch.full((cfg.n_hidden,), 0.3))

    def hidden_layer(self, w_fault: torch.Tensor | None = None) -> LayerParams:
        cfg = self.cfg
        rule = None
        if self.plastic:
            rule = PlasticParams(
                alpha=self.log_alpha.exp(),
                lam=torch.sigmoid(self.lam_logit),
                eta_pre=self.eta,
                beta_post=self.beta,
                h_max=torch.full((cfg.n_in, 1), cfg.h_max),
            )
        w = self.w1 if w_fault is None else self.w1 * w_fault
        return LayerParams(
            w=w, theta=self.log_theta.exp(), decay_shift=cfg.decay_shift, plastic=rule
        )

    def readout_layer(self) -> LayerParams:
        return LayerParams(
            w=self.w2,
            theta=torch.ones(self.cfg.n_classes),
            decay_shift=self.cfg.decay_shift,
            spiking=False,
        )

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        w_fault: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden_p, readout_p = self.hidden_layer(w_fault), self.readout_layer()
        hidden = init_layer_state(hidden_p, x.shape[0])
        readout = init_layer_state(readout_p, x.shape[0])
        for _ in range(self.cfg.ticks):
            routed = hidden.spikes if mask is None else hidden.spikes * mask
            readout = layer_step(routed, readout, readout_p)
            hidden = layer_step(x, hidden, hidden_p)
            if w_fault is not None and hidden.h.numel():
                # a stuck-at-zero synapse has w_eff = 0: its trace contributes nothing either
                hidden = hidden._replace(h=hidden.h * w_fault)
        return readout.v_mem

    def hidden_counts(self, x: torch.Tensor, w_fault: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden spike counts over the presentation (LP's features)."""
        hidden_p = self.hidden_layer(w_fault)
        hidden = init_layer_state(hidden_p, x.shape[0])
        counts = torch.zeros(x.shape[0], self.cfg.n_hidden)
        for _ in range(self.cfg.ticks):
            hidden = layer_step(x, hidden, hidden_p)
            counts = counts + hidden.spikes
        return counts


class HebbianReadout:
    """LP: a fixed random spiking hidden layer and a readout learned by a local rule only.

    The label clamps readout neuron c while a sample of class c is shown, so the local rule
    ``w[:, c] += eta * (r - w[:, c])`` (Hebbian with decay, pre = hidden rate r) makes each
    column the running mean of its class's hidden rates; the class is the nearest column.
    """

    def __init__(self, net: SpikingMLP, eta: float = 0.05) -> None:
        self.net = net
        self.eta = eta
        self.w = torch.zeros(net.cfg.n_hidden, net.cfg.n_classes)

    @torch.no_grad()
    def learn(self, x: torch.Tensor, y: torch.Tensor) -> None:
        rates = self.net.hidden_counts(x) / self.net.cfg.ticks
        for r, c in zip(rates, y.tolist(), strict=True):
            self.w[:, c] += self.eta * (r - self.w[:, c])

    @torch.no_grad()
    def logits(self, x: torch.Tensor, w_fault: torch.Tensor | None = None) -> torch.Tensor:
        rates = self.net.hidden_counts(x, w_fault) / self.net.cfg.ticks
        return -torch.cdist(rates, self.w.T)
