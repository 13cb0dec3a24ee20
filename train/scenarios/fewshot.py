"""Few-shot Omniglot: a feature extractor, then a plastic LIF layer that binds support to labels.

The binding layer is one :func:`train.snn.layer_step` layer. Its axons are ``[features (F),
label axons (N)]`` and its neurons are the N classes of the episode::

    W[:F, j] = w_feat        one shared column: class identities are new in every episode
    W[F + c, c] = label_w    fixed; the label current makes neuron c fire while class c is shown
    eta_pre[F:] = 0          label axons never learn

Support image ``i`` of class ``c`` is shown for ``ticks`` ticks with label axon ``c`` at 1, with
learning on, so the Hebbian trace ``H[:F, c]`` grows with the active features while neuron c fires
(and, for ``beta_post > 0``, shrinks on the silent neurons). Queries are shown with the label axons
at 0, learning off (the trace frozen) and the membranes starting from rest; the class is the
neuron with the highest score ``spike count + clip(v_mem / theta, -1, 1)`` (spikes first, the
membrane breaks ties). The board runs the same protocol (``deploy.fewshot_board``).

Models, on the same data and iteration budget:

- **HP**: extractor and rule (``w_feat``, ``alpha``, ``lambda``, ``eta``, ``beta``, ``theta``)
  meta-trained end to end through the episode (bilevel: the inner loop is the Hebbian binding
  in the forward pass, the outer loop BPTT with the rectangular surrogate).
- **GP**: the extractor trained globally as a classifier of the meta-train classes; in each
  test episode a fresh LIF output layer (the same neurons, no trace) is fitted to the support
  set by gradient descent (``gp_steps`` Adam steps through the spikes): global learning only.
- **LP**: nothing learned by gradients: a fixed front end (:class:`PooledPixels`) and a hand-set
  Hebbian rule: local learning only.
- **Prototype** (the reference row, :data:`PROTOTYPE`): HP's extractor, then the cosine
  nearest-prototype readout instead of the binding layer, which should at least match it.

:func:`classify` scores one given support/query set with any of these readouts.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from train.errors import TrainError
from train.scenarios.common import descend, mean_ci95, seed_everything
from train.scenarios.data import CharacterSet, OneShotRun, sample_episodes
from train.snn import LayerParams, LayerState, Numerics, PlasticParams, init_layer_state, layer_step

log = logging.getLogger(__name__)

FLOAT = Numerics()  # train.snn's float numerics (the board's are train.quant.BoardNumerics)
# Test episodes draw from seed + TEST_SEED_OFFSET, never a training episode's stream (the seed
# itself); the board's few-shot table uses its own (deploy.fewshot_board.EPISODE_SEED_OFFSET).
TEST_SEED_OFFSET = 10_000
# The reference row of every few-shot table: a cosine nearest-prototype readout of HP's own
# extractor features, which the spiking binding layer should at least match.
PROTOTYPE = "prototype (HP features)"


@dataclass(frozen=True)
class FewShotConfig:
    """Sizes and budget of one few-shot run (the defaults fit a few CPU minutes)."""

    image_size: int = 28
    n_features: int = 64
    ticks: int = 8
    decay_shift: int = 1
    label_weight: float = 2.0  # in thresholds: the label current alone fires every tick
    h_max: float = 0.25  # sets the int16 trace resolution on the board: keep it tight
    train_way: int = 5
    train_query: int = 3
    meta_batch: int = 16
    iterations: int = 1200
    lr: float = 2e-3
    gp_steps: int = 25
    gp_lr: float = 0.5
    test_episodes: int = 1000
    eval_batch: int = 100


class FeatureExtractor(nn.Module):
    """Three strided 3x3 convolutions and a linear map to ``n_features`` values in (-1, 1)."""

    def __init__(self, n_features: int, image_size: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
        )
        side = image_size
        for _ in range(3):
            side = (side + 1) // 2
        self.fc = nn.Linear(32 * side * side, n_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(..., H, W) images to (..., n_features) features in (-1, 1)."""
        lead = images.shape[:-2]
        x = images.reshape(-1, 1, *images.shape[-2:])
        z = self.fc(self.conv(x).flatten(1))
        # centred per image: a Hebbian dot product then compares shapes, not overall ink
        feats = torch.tanh(z - z.mean(dim=1, keepdim=True))
        return feats.reshape(*lead, -1)


class PooledPixels(nn.Module):
    """LP's fixed front end (nothing learned): the image average-pooled to ``side x side``,
    centred and scaled per image, squashed into (-1, 1): ``n_features = side**2``."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.side = int(round(n_features**0.5))
        if self.side**2 != n_features:
            raise TrainError(f"pooled pixels need a square feature count, not {n_features}.")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        lead = images.shape[:-2]
        x = images.reshape(-1, 1, *images.shape[-2:])
        z = nn.functional.adaptive_avg_pool2d(x, self.side).flatten(1)
        z = z - z.mean(dim=1, keepdim=True)
        feats = torch.tanh(z / (z.std(dim=1, keepdim=True) + 1e-6))
        return feats.reshape(*lead, -1)


class BindingRule(nn.Module):
    """The plastic binding layer's trainable numbers, class-agnostic (any N-way)."""

    def __init__(self, n_features: int, cfg: FewShotConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.w_feat = nn.Parameter(torch.zeros(n_features))
        self.log_alpha = nn.Parameter(torch.tensor(0.0))
        self.lam_logit = nn.Parameter(torch.tensor(4.0))  # lambda ~ 0.98: keep the bindings
        self.eta = nn.Parameter(torch.full((n_features,), 0.01))
        self.beta = nn.Parameter(torch.tensor(0.2))
        self.log_theta = nn.Parameter(torch.tensor(0.0))
        self.log_temp = nn.Parameter(torch.tensor(-1.0))

    def layer(self, n_way: int) -> LayerParams:
        """The binding layer for an N-way episode (float units, threshold of order 1)."""
        n_feat = self.w_feat.shape[0]
        theta = self.log_theta.exp()
        label = torch.eye(n_way) * self.cfg.label_weight * theta.detach()
        w = torch.cat([self.w_feat.unsqueeze(1).expand(n_feat, n_way), label])
        rule = PlasticParams(
            alpha=self.log_alpha.exp(),
            lam=torch.sigmoid(self.lam_logit),
            eta_pre=torch.cat([self.eta, torch.zeros(n_way)]),
            beta_post=self.beta.expand(n_way),
            h_max=torch.full((n_feat + n_way, 1), self.cfg.h_max),
        )
        return LayerParams(
            w=w, theta=theta.expand(n_way), decay_shift=self.cfg.decay_shift, plastic=rule
        )


def hand_set_rule(n_features: int, cfg: FewShotConfig) -> BindingRule:
    """LP's rule: no feature weight, unit gain, no decay, plain Hebbian (``beta = 0``: only the
    firing neuron learns, so later support images never overwrite earlier bindings).

    The rate keeps a bound trace's current below a tenth of the threshold even for a query equal
    to the support image (``|x|^2 <= n_features``): features alone never fire a neuron, so no
    class captures another's support image, and the query's membrane (the score's tie-breaker)
    ranks the classes by the Hebbian dot product.
    """
    rule = BindingRule(n_features, cfg)
    with torch.no_grad():
        rule.lam_logit.fill_(20.0)
        rule.eta.fill_(0.1 / (cfg.ticks * n_features))
        rule.beta.fill_(0.0)
    return rule


def frozen(layer: LayerParams) -> LayerParams:
    """Learning off: the trace neither decays nor grows (the board's ``learning = False``)."""
    rule = layer.plastic
    if rule is None:
        return layer
    off = replace(rule, lam=torch.ones_like(rule.lam), eta_pre=torch.zeros_like(rule.eta_pre))
    return replace(layer, plastic=off)


def bind_support(
    x_support: torch.Tensor,
    n_way: int,
    k_shot: int,
    layer: LayerParams,
    ticks: int,
    numerics: Numerics = FLOAT,
    label_level: float = 1.0,
) -> LayerState:
    """Show the support set class by class (label current on), learning on; the final state.

    ``x_support`` (B, n_way * k_shot, F) are the features as axon inputs (board units when the
    numerics are the board's); ``label_level`` is a label axon's input when on.
    """
    batch = x_support.shape[0]
    state = init_layer_state(layer, batch)
    eye = torch.eye(n_way, dtype=x_support.dtype) * label_level
    for i in range(n_way * k_shot):
        x = torch.cat([x_support[:, i], eye[i // k_shot].expand(batch, n_way)], dim=1)
        for _ in range(ticks):
            state = layer_step(x, state, layer, numerics)
    return state


def query_scores(
    x_query: torch.Tensor,
    trace: torch.Tensor,
    layer: LayerParams,
    ticks: int,
    numerics: Numerics = FLOAT,
) -> torch.Tensor:
    """Scores (B, Q, N) of queries (B, Q, F) against bound traces (B, A, N), learning off."""
    batch, n_q, _ = x_query.shape
    n_way = layer.w.shape[1]
    fixed = frozen(layer)
    state = init_layer_state(fixed, batch * n_q)
    state = state._replace(h=trace.repeat_interleave(n_q, dim=0))
    x = torch.cat([x_query.reshape(batch * n_q, -1), x_query.new_zeros(batch * n_q, n_way)], 1)
    counts = torch.zeros_like(state.v_mem)
    for _ in range(ticks):
        state = layer_step(x, state, fixed, numerics)
        counts = counts + state.spikes
    score = counts + (state.v_mem / fixed.theta).clamp(-1.0, 1.0)
    return score.reshape(batch, n_q, n_way)


def episode_scores(
    extractor: nn.Module,
    rule: BindingRule,
    support: torch.Tensor,
    query: torch.Tensor,
    n_way: int,
    k_shot: int,
) -> torch.Tensor:
    """HP and LP: features, Hebbian binding of the support set, query scores (B, Q, N)."""
    layer = rule.layer(n_way)
    state = bind_support(extractor(support), n_way, k_shot, layer, rule.cfg.ticks)
    return query_scores(extractor(query), state.h, layer, rule.cfg.ticks)


def labels_of(batch: int, n_way: int, per_class: int) -> torch.Tensor:
    return torch.arange(n_way).repeat_interleave(per_class).expand(batch, -1)


def iterations(cfg: FewShotConfig, label: str) -> tqdm:
    """The meta-iterations as a progress bar on stderr (minutes per seed on a CPU)."""
    return tqdm(range(cfg.iterations), desc=label, unit="it", file=sys.stderr, leave=False)


def meta_train_hp(
    chars: CharacterSet, cfg: FewShotConfig, seed: int
) -> tuple[FeatureExtractor, BindingRule, list[float]]:
    """Bilevel meta-training of extractor and rule on N-way 1-shot episodes; the loss curve."""
    gen = seed_everything(seed)
    rng = np.random.default_rng(seed)
    extractor = FeatureExtractor(cfg.n_features, cfg.image_size)
    rule = BindingRule(cfg.n_features, cfg)
    opt = torch.optim.Adam([*extractor.parameters(), *rule.parameters()], lr=cfg.lr)
    del gen
    losses = []
    for it in iterations(cfg, f"few-shot HP seed {seed}"):
        s, q = sample_episodes(chars, cfg.train_way, 1, cfg.train_query, cfg.meta_batch, rng)
        scores = episode_scores(
            extractor, rule, torch.from_numpy(s), torch.from_numpy(q), cfg.train_way, 1
        )
        labels = labels_of(cfg.meta_batch, cfg.train_way, cfg.train_query)
        logits = scores * rule.log_temp.exp()
        loss = nn.functional.cross_entropy(logits.reshape(-1, cfg.train_way), labels.reshape(-1))
        losses.append(descend(opt, loss))
        if it % 100 == 0:
            log.info("HP meta-iteration %d: loss %.3f", it, losses[-1])
    return extractor, rule, losses


def pretrain_gp(
    chars: CharacterSet, cfg: FewShotConfig, seed: int
) -> tuple[FeatureExtractor, list[float]]:
    """GP's extractor: a classifier of all meta-train classes, same iterations and image count."""
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    extractor = FeatureExtractor(cfg.n_features, cfg.image_size)
    head = nn.Linear(cfg.n_features, len(chars))
    opt = torch.optim.Adam([*extractor.parameters(), *head.parameters()], lr=cfg.lr)
    per_batch = cfg.meta_batch * cfg.train_way * (1 + cfg.train_query)
    losses = []
    for it in iterations(cfg, f"few-shot GP seed {seed}"):
        classes = rng.integers(len(chars), size=per_batch)
        images = np.stack([chars.images[c][rng.integers(len(chars.images[c]))] for c in classes])
        logits = head(extractor(torch.from_numpy(images)))
        loss = nn.functional.cross_entropy(logits * 4.0, torch.from_numpy(classes))
        losses.append(descend(opt, loss))
        if it % 100 == 0:
            log.info("GP pre-training iteration %d: loss %.3f", it, losses[-1])
    return extractor, losses


def gp_episode_scores(
    extractor: FeatureExtractor,
    support: torch.Tensor,
    query: torch.Tensor,
    n_way: int,
    k_shot: int,
    cfg: FewShotConfig,
) -> torch.Tensor:
    """GP: fit each episode's own LIF output weights to its support set by gradient descent.

    The per-episode weights ride in the layer's per-batch synaptic matrix (the ``H`` slot with
    ``alpha = 1`` and learning off), so every episode of the batch learns its own weights while
    all share one step function.
    """
    with torch.no_grad():
        f_s, f_q = extractor(support), extractor(query)
    batch, n_feat = f_s.shape[0], f_s.shape[-1]
    layer = LayerParams(
        w=torch.zeros(n_feat + n_way, n_way),
        theta=torch.ones(n_way),
        decay_shift=cfg.decay_shift,
        plastic=PlasticParams(
            alpha=torch.tensor(1.0),
            lam=torch.tensor(1.0),
            eta_pre=torch.zeros(n_feat + n_way),
            beta_post=torch.zeros(n_way),
            h_max=torch.full((n_feat + n_way, 1), 1e6),
        ),
    )
    w_ep = torch.zeros(batch, n_feat + n_way, n_way, requires_grad=True)
    opt = torch.optim.Adam([w_ep], lr=cfg.gp_lr / cfg.n_features**0.5)
    labels = labels_of(batch, n_way, k_shot).reshape(-1)
    for _ in range(cfg.gp_steps):
        scores = query_scores(f_s, w_ep, layer, cfg.ticks)
        # f_s as "queries" of its own episode: (B, n_way * k_shot, N)
        descend(opt, nn.functional.cross_entropy(scores.reshape(-1, n_way), labels))
    with torch.no_grad():
        return query_scores(f_q, w_ep.detach(), layer, cfg.ticks)


Readout = Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]
"""``(support (B, N*K, H, W), query (B, Q, H, W), N, K) -> scores (B, Q, N)``; the support set
is shown class by class (item ``i`` is class ``i // K``)."""


def plastic_readout(extractor: nn.Module, rule: BindingRule) -> Readout:
    """HP (the meta-learned extractor and rule) or LP (pooled pixels, hand-set rule)."""

    def scores(s: torch.Tensor, q: torch.Tensor, n_way: int, k_shot: int) -> torch.Tensor:
        with torch.no_grad():
            return episode_scores(extractor, rule, s, q, n_way, k_shot)

    return scores


def gp_readout(extractor: nn.Module, cfg: FewShotConfig) -> Readout:
    """GP: a fresh LIF output layer fitted to each episode's support set by gradient descent."""

    def scores(s: torch.Tensor, q: torch.Tensor, n_way: int, k_shot: int) -> torch.Tensor:
        return gp_episode_scores(extractor, s, q, n_way, k_shot, cfg)

    return scores


def prototype_readout(extractor: nn.Module) -> Readout:
    """The reference: cosine similarity of each query's features to each class's prototype
    (the mean of its unit-length support features), on the same extractor, nothing spiking."""

    def scores(s: torch.Tensor, q: torch.Tensor, n_way: int, k_shot: int) -> torch.Tensor:
        with torch.no_grad():
            f_s = nn.functional.normalize(extractor(s), dim=-1)
            f_q = nn.functional.normalize(extractor(q), dim=-1)
        protos = f_s.reshape(f_s.shape[0], n_way, k_shot, -1).mean(2)
        return torch.bmm(f_q, nn.functional.normalize(protos, dim=-1).transpose(1, 2))

    return scores


def classify(
    readout: Readout, support: np.ndarray, query: np.ndarray, k_shot: int = 1
) -> np.ndarray:
    """The class (0..N-1) of each query image of one given episode.

    ``support`` (N * K, H, W) holds K images per class, class by class (image ``i`` is class
    ``i // K``); ``query`` is (Q, H, W); images as :func:`~train.scenarios.data.decode_image`
    makes them. **Support order matters for HP and LP**: the binding layer sees the support set
    as a sequence, and its trace decays by ``lambda`` every tick and (with ``beta_post > 0``)
    shrinks on the silent neurons while later classes are shown, so the first classes' bindings
    are the weakest when the queries come: reorder the classes and the answer may change. GP and
    the prototype readout do not depend on the order.
    """
    if len(support) % k_shot:
        raise TrainError(f"{len(support)} support images do not split into {k_shot} per class.")
    n_way = len(support) // k_shot
    s = torch.from_numpy(np.ascontiguousarray(support, dtype=np.float32))
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))
    return readout(s[None], q[None], n_way, k_shot)[0].argmax(-1).numpy()


def score_runs(readouts: dict[str, Readout], runs: Sequence[OneShotRun]) -> dict:
    """Accuracy of each readout on each given one-shot run, and the mean over runs:
    ``{"runs": [{"run", "n_way", "accuracy": {readout: a}}], "mean": {readout: a}}``."""
    rows = []
    for run in runs:
        accuracy = {
            name: float((classify(readout, run.support, run.query) == run.labels).mean())
            for name, readout in readouts.items()
        }
        rows.append({"run": run.name, "n_way": len(run.support), "accuracy": accuracy})
    mean = {name: float(np.mean([r["accuracy"][name] for r in rows])) for name in readouts}
    return {"runs": rows, "mean": mean}


def evaluate(
    score_fn: Readout,
    chars: CharacterSet,
    n_way: int,
    k_shot: int,
    episodes: int,
    batch: int,
    seed: int,
) -> dict[str, float]:
    """Accuracy over ``episodes`` N-way K-shot test episodes (1 query per class), 95% CI."""
    rng = np.random.default_rng(seed)
    per_episode: list[float] = []
    done = 0
    while done < episodes:
        b = min(batch, episodes - done)
        s, q = sample_episodes(chars, n_way, k_shot, 1, b, rng)
        scores = score_fn(torch.from_numpy(s), torch.from_numpy(q), n_way, k_shot)
        correct = (scores.argmax(-1) == labels_of(b, n_way, 1)).float().mean(1)
        per_episode.extend(correct.tolist())
        done += b
    mean, ci = mean_ci95(per_episode)
    return {"accuracy": mean, "ci95": ci, "episodes": episodes}


def run_fewshot_seed(
    train_chars: CharacterSet,
    test_chars: CharacterSet,
    cfg: FewShotConfig,
    seed: int,
    ways: tuple[int, ...] = (5, 20),
) -> dict:
    """Train HP and GP, build LP, and evaluate all three and the prototype reference on HP's
    features on the same test episodes."""
    out: dict = {"seed": seed, "config": asdict(cfg), "models": {}}
    t0 = time.perf_counter()
    hp_ext, hp_rule, hp_losses = meta_train_hp(train_chars, cfg, seed)
    t_hp = time.perf_counter() - t0
    gp_ext, gp_losses = pretrain_gp(train_chars, cfg, seed)
    t_gp = time.perf_counter() - t0 - t_hp
    lp_ext = PooledPixels(cfg.n_features)
    lp_rule = hand_set_rule(cfg.n_features, cfg)
    for module in (hp_ext, gp_ext, lp_ext):
        module.eval()
    fns = {
        "HP": plastic_readout(hp_ext, hp_rule),
        "GP": gp_readout(gp_ext, cfg),
        "LP": plastic_readout(lp_ext, lp_rule),
        PROTOTYPE: prototype_readout(hp_ext),
    }
    for name, fn in fns.items():
        out["models"][name] = {
            f"{n}-way": evaluate(
                fn, test_chars, n, 1, cfg.test_episodes, cfg.eval_batch, TEST_SEED_OFFSET + seed
            )
            for n in ways
        }
    out["train_seconds"] = {"HP": t_hp, "GP": t_gp}
    out["loss_curves"] = {"HP": hp_losses, "GP": gp_losses}
    out["hp_rule"] = rule_summary(hp_rule)
    out["_modules"] = {"extractor": hp_ext, "rule": hp_rule, "gp_extractor": gp_ext}
    return out


def rule_summary(rule: BindingRule) -> dict[str, float]:
    with torch.no_grad():
        return {
            "alpha": float(rule.log_alpha.exp()),
            "lambda": float(torch.sigmoid(rule.lam_logit)),
            "eta_mean": float(rule.eta.mean()),
            "beta": float(rule.beta),
            "theta": float(rule.log_theta.exp()),
            "w_feat_mean": float(rule.w_feat.mean()),
        }
