"""Few-shot episodes on the emulated board: the binding layer packed into one core image.

The host runs the feature extractor; the board runs the plastic binding layer
(:mod:`train.scenarios.fewshot`) as one core whose axons are encoder axons: observation ``k < F``
is feature ``k``, observation ``F + c`` is the label of class ``c`` (1 while a support image of
class c is shown, else 0). Every axon has the encoder gain ``input_scale`` (``enc_gain =
input_scale * 256``), so a feature in (-1, 1) arrives as an int8 current and a label as
``input_scale``. ``eta = 0`` on the label axons and ``W[F + c, c]`` is fixed, as in torch.

Protocol per episode (``docs/scenarios.md``): RESET; learning on; one STEP per support image;
learning off; per query one STEP, then the decoder's spike counts (``dec_mode = 0``, weight 1)
and the membranes (READ) give ``count + clip(v_mem / theta, -1, 1)``; between queries a blank
STEP of ``REST_TICKS`` zero-input ticks lets the membranes leak back to rest (with
``decay_shift = 1`` a positive residue of 1 fine unit may stay: ``1 - (1 >> 1) = 1``).

:func:`fewshot_board` is ``glocal fewshot-board``: it reads the scenario's HP checkpoints
(``fewshot-hp-seedN.pt``, written by ``glocal train --scenario few-shot``) and reports the
board's accuracy beside torch's integer model and torch float on the same episodes.
:func:`fewshot_runs` is ``glocal scenario few-shot-runs``: given one-shot runs in Lake et al.'s
layout, scored by HP in torch and on the board (:func:`board_readout`), GP and the prototype.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deploy.chain import Chain, Decoder, Encoder, Layer
from deploy.errors import DeployError
from deploy.evaluate import Progress, Tally
from deploy.mapping import map_chain
from firmware_sim.engine import Engine
from firmware_sim.profiles import get_profile
from firmware_sim.tables import BoardTables
from protocol.numeric import ENC_GAIN_ONE
from train.checkpoint import load_record
from train.quant import BoardNumerics, layer_scales, layer_tables, quantise_layer
from train.scenarios.common import mean_ci95
from train.scenarios.data import (
    CharacterSet,
    load_omniglot,
    read_runs,
    sample_episodes,
    split_meta,
)
from train.scenarios.fewshot import (
    PROTOTYPE,
    BindingRule,
    FeatureExtractor,
    FewShotConfig,
    Readout,
    bind_support,
    gp_readout,
    plastic_readout,
    prototype_readout,
    query_scores,
    score_runs,
)
from train.scenarios.runner import SPLIT_SEED, TEST_FRACTION
from train.snn import LayerParams

REST_TICKS = 32


@dataclass(frozen=True)
class BoardBinding:
    """The binding layer in board units and what the host needs to drive it."""

    layer: LayerParams  # integer-valued (train.quant.quantise_layer)
    tables: dict[str, np.ndarray]
    input_scale: int
    n_features: int
    n_way: int


BOARD_INPUT_SCALE = 4
BOARD_H_MAX = 0.0625
"""Deployment choices, picked on 100 meta-train episodes (5- and 20-way, seeds 0 and 2) among
input scales 4, 8 and trace clips 0.25, 0.125, 0.0625: a tighter clip makes one int16 trace unit
finer and a smaller input scale makes ``eta_q = eta * c_h / r**2`` larger, so the floored
Hebbian increments (small anti-Hebbian terms floor to -1) lose less; training used h_max 0.25."""


def deployed_layer(rule: BindingRule, n_way: int, h_max: float | None = None) -> LayerParams:
    """The N-way binding layer as deployed: the trained rule with the board's trace clip."""
    with torch.no_grad():
        layer = rule.layer(n_way)
    if h_max is None:
        return layer
    clip = torch.full_like(layer.plastic.h_max, h_max)
    return replace(layer, plastic=replace(layer.plastic, h_max=clip))


def quantise_binding(
    rule: BindingRule, n_way: int, input_scale: int, h_max: float | None = None
) -> BoardBinding:
    """Quantise the N-way binding layer with train.quant's scales (every axon an encoder row)."""
    layer = deployed_layer(rule, n_way, h_max)
    with torch.no_grad():
        n_axons = layer.w.shape[0]
        rows = torch.full((n_axons,), float(input_scale))
        scales = layer_scales(layer, rows, float(layer.plastic.h_max[-1]))
        q = quantise_layer(layer, scales)
    q = LayerParams(
        w=q.w.double(),
        theta=q.theta.double(),
        decay_shift=q.decay_shift,
        reset=q.reset,
        plastic=replace(
            q.plastic,
            **{k: v.double() for k, v in vars(q.plastic).items() if isinstance(v, torch.Tensor)},
        ),
    )
    return BoardBinding(q, layer_tables(q), input_scale, n_axons - n_way, n_way)


def encode_features(features: torch.Tensor, input_scale: int) -> torch.Tensor:
    """The board's encoder applied to features (float64): int8 currents as floats."""
    gain = torch.full((features.shape[-1],), float(input_scale * ENC_GAIN_ONE), dtype=torch.float64)
    return BoardNumerics().encode(features.double(), gain, torch.zeros_like(gain))


def torch_board_scores(
    binding: BoardBinding, f_support: torch.Tensor, f_query: torch.Tensor, ticks: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same episode in torch with the board's integer numerics: (trace, scores)."""
    numerics = BoardNumerics()
    with torch.no_grad():
        x_s = encode_features(f_support, binding.input_scale)
        state = bind_support(
            x_s, binding.n_way, 1, binding.layer, ticks, numerics, float(binding.input_scale)
        )
        x_q = encode_features(f_query, binding.input_scale)
        return state.h, query_scores(x_q, state.h, binding.layer, ticks, numerics)


def build_board_image(binding: BoardBinding, ticks: int, profile: str = "tianjic") -> BoardTables:
    """A one-core firmware_sim image of the binding layer."""
    n_axons = binding.n_features + binding.n_way
    chain = Chain(
        [Layer.from_tables(binding.tables)],
        Encoder(src=np.arange(n_axons), gain=binding.input_scale * ENC_GAIN_ONE),
        Decoder(dst=np.arange(binding.n_way), w=1),
        obs_dim=n_axons,
        act_dim=binding.n_way,
        ticks_per_step=ticks,
    )
    return map_chain(chain, get_profile(profile), {"scenario": "few-shot", "n_way": binding.n_way})


class BoardEpisodes:
    """Runs few-shot episodes on a firmware_sim Engine holding the binding image."""

    def __init__(self, binding: BoardBinding, ticks: int, profile: str = "tianjic") -> None:
        self.binding = binding
        self.engine = Engine(build_board_image(binding, ticks, profile))
        self.theta = binding.tables["theta"].astype(np.float64)

    def bind(self, f_support: np.ndarray) -> np.ndarray:
        """RESET, then one learning STEP per support image (class i); the trace afterwards."""
        engine, n_way = self.engine, self.binding.n_way
        engine.reset()
        engine.learning = True
        for c in range(n_way):
            engine.step(np.concatenate([f_support[c], np.eye(n_way)[c]]))
        engine.learning = False
        engine.step(np.zeros(engine.obs_dim), ticks=REST_TICKS)
        core = engine.core_ids[0]
        return engine.read_traces()[core]

    def scores(self, f_query: np.ndarray) -> np.ndarray:
        """Scores (Q, N) of each query with learning off, resting between queries."""
        engine, n_way = self.engine, self.binding.n_way
        core = engine.core_ids[0]
        out = []
        for f in f_query:
            counts = engine.step(np.concatenate([f, np.zeros(n_way)])).astype(np.float64)
            v = engine.read_membranes()[core].astype(np.float64)
            out.append(counts + np.clip(v / self.theta, -1.0, 1.0))
            engine.step(np.zeros(engine.obs_dim), ticks=REST_TICKS)
        return np.stack(out)


def evaluate_on_board(
    extractor: FeatureExtractor,
    rule: BindingRule,
    chars: CharacterSet,
    n_way: int,
    episodes: int,
    seed: int,
    input_scale: int = BOARD_INPUT_SCALE,
    h_max: float | None = BOARD_H_MAX,
    profile: str = "tianjic",
    tick: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Accuracy of N-way 1-shot episodes on the board and, on the same episodes, in torch
    (float, and with the board's integer numerics) for the deployed layer (trace clip
    ``h_max``), with 95% CIs and the decision agreement of board and torch-int;
    ``tick(row)`` after each episode, with the board's running accuracy."""
    binding = quantise_binding(rule, n_way, input_scale, h_max)
    layer = deployed_layer(rule, n_way, h_max)
    board = BoardEpisodes(binding, rule.cfg.ticks, profile)
    rng = np.random.default_rng(seed)
    hits: dict[str, list[float]] = {"board": [], "torch_float": [], "torch_int": []}
    agree = 0
    for _ in range(episodes):
        s, q = sample_episodes(chars, n_way, 1, 1, 1, rng)
        with torch.no_grad():
            f_s, f_q = extractor(torch.from_numpy(s)), extractor(torch.from_numpy(q))
            float_scores = query_scores(
                f_q, bind_support(f_s, n_way, 1, layer, rule.cfg.ticks).h, layer, rule.cfg.ticks
            )[0]
        _, int_scores = torch_board_scores(binding, f_s, f_q, rule.cfg.ticks)
        board.bind(f_s[0].double().numpy())
        board_scores = board.scores(f_q[0].double().numpy())
        truth = np.arange(n_way)
        board_pred = board_scores.argmax(1)
        int_pred = int_scores[0].argmax(1).numpy()
        hits["board"].append(float((board_pred == truth).mean()))
        hits["torch_int"].append(float((int_pred == truth).mean()))
        hits["torch_float"].append(float((float_scores.argmax(1).numpy() == truth).mean()))
        agree += int((board_pred == int_pred).sum())
        if tick is not None:
            tick(f"{n_way}-way: board {np.mean(hits['board']):.3f} so far")
    out: dict[str, float] = {
        "episodes": episodes,
        "input_scale": input_scale,
        "h_max": float(layer.plastic.h_max[-1]),
    }
    for name, values in hits.items():
        out[f"{name}_accuracy"], out[f"{name}_ci95"] = mean_ci95(values)
    out["board_vs_torch_int_agreement"] = agree / (episodes * n_way)
    return out


CHECKPOINT_FORMAT = "glocal-scenario-checkpoint"
CHECKPOINT_GLOB = "fewshot-hp-seed*.pt"
EPISODE_SEED_OFFSET = 20_000
"""Default episode seed: ``20_000 + the checkpoint's training seed``, the episodes of the board
table in ``docs/scenarios.md`` (torch's own test episodes use ``10_000 + seed``)."""


@dataclass(frozen=True)
class FewShotCheckpoint:
    """An HP model of the few-shot scenario (``fewshot-hp-seedN.pt``) and how its data split."""

    path: Path
    cfg: FewShotConfig
    seed: int
    rule: BindingRule
    extractor: FeatureExtractor | None  # None in a checkpoint that only holds the rule
    split_seed: int
    test_fraction: float
    split: str = "characters"  # or "alphabets" (train.scenarios.data.SPLITS)


def read_fewshot_checkpoint(path: str | Path) -> FewShotCheckpoint:
    """Load a few-shot scenario checkpoint (modules in eval mode); a clear error otherwise."""

    path = Path(path)
    if not path.is_file():
        raise DeployError(f"no few-shot checkpoint at {path}.")

    record = load_record(path, DeployError)
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise DeployError(f"{path} is not a scenario checkpoint (fewshot-hp-seedN.pt).")
    if record.get("scenario") != "few-shot":
        raise DeployError(
            f"{path} holds the {record.get('scenario')!r} scenario, not few-shot; pass a "
            "fewshot-hp-seedN.pt written by `glocal train --scenario few-shot`."
        )
    if record.get("model") == "GP":
        raise DeployError(
            f"{path} holds GP's extractor, which has no binding layer; pass the "
            "fewshot-hp-seedN.pt beside it (GP is read from there)."
        )
    cfg = FewShotConfig(**record["config"])
    rule = BindingRule(cfg.n_features, cfg)
    rule.load_state_dict(record["rule"])
    rule.eval()
    extractor = None
    if record.get("extractor"):
        extractor = FeatureExtractor(cfg.n_features, cfg.image_size)
        extractor.load_state_dict(record["extractor"])
        extractor.eval()
    split = record.get("split", {})  # older checkpoints: the runner's defaults of the time
    return FewShotCheckpoint(
        path,
        cfg,
        int(record.get("seed", 0)),
        rule,
        extractor,
        int(split.get("seed", SPLIT_SEED)),
        float(split.get("test_fraction", TEST_FRACTION)),
        str(split.get("kind", "characters")),
    )


def check_board_fits(n_features: int | None, n_way: int, profile: str) -> None:
    """A DeployError unless an N-way binding layer fits one core of ``profile`` (its neurons;
    with ``n_features``, its axons too)."""
    core = get_profile(profile)
    if n_way > core.neurons_per_core:
        raise DeployError(
            f"a {n_way}-way layer needs {n_way} neurons; one core of the {profile} "
            f"profile has {core.neurons_per_core}: ask for fewer ways."
        )
    if n_features is not None and n_features + n_way > core.axons_per_core:
        raise DeployError(
            f"{n_features} features + {n_way} label axons exceed the "
            f"{core.axons_per_core} axons of one {profile} core: ask for fewer ways."
        )


def require_extractor(ck: FewShotCheckpoint) -> FeatureExtractor:
    if ck.extractor is None:
        raise DeployError(f"{ck.path} has no feature extractor to run the host side with.")
    return ck.extractor


def gp_beside(ck: FewShotCheckpoint) -> FeatureExtractor | None:
    """GP's extractor saved beside an HP checkpoint (``fewshot-gp-seedN.pt``), if there."""
    path = ck.path.with_name(ck.path.name.replace("fewshot-hp-", "fewshot-gp-"))
    if path == ck.path or not path.is_file():
        return None
    record = load_record(path, DeployError)
    if not isinstance(record, dict) or record.get("model") != "GP":
        raise DeployError(f"{path} is not the GP model of a few-shot run.")
    extractor = FeatureExtractor(ck.cfg.n_features, ck.cfg.image_size)
    extractor.load_state_dict(record["extractor"])
    return extractor.eval()


def board_readout(rule: BindingRule, extractor: FeatureExtractor, profile: str) -> Readout:
    """HP with the binding on the emulated board (1-shot): the host extracts the features, the
    board binds the support set and scores each query (:class:`BoardEpisodes`)."""
    boards: dict[int, BoardEpisodes] = {}

    def scores(s: torch.Tensor, q: torch.Tensor, n_way: int, k_shot: int) -> torch.Tensor:
        if k_shot != 1:
            raise DeployError(f"the board binds one support image per class, not {k_shot}.")
        if n_way not in boards:
            binding = quantise_binding(rule, n_way, BOARD_INPUT_SCALE, BOARD_H_MAX)
            boards[n_way] = BoardEpisodes(binding, rule.cfg.ticks, profile)
        board = boards[n_way]
        with torch.no_grad():
            f_s, f_q = extractor(s).double().numpy(), extractor(q).double().numpy()
        out = []
        for support, query in zip(f_s, f_q, strict=True):
            board.bind(support)
            out.append(board.scores(query))
        return torch.from_numpy(np.stack(out))

    return scores


def fewshot_runs(
    checkpoint: str | Path, runs_folder: str | Path, profile: str = "tianjic"
) -> dict[str, Any]:
    """Score one-shot runs in Lake et al.'s all-runs layout with a few-shot checkpoint.

    Readouts: HP in torch, HP with the binding on the board (where an N-way layer fits one
    core of ``profile``; else ``board_skipped`` says why), GP when ``fewshot-gp-seedN.pt``
    lies beside the checkpoint, and the cosine-prototype reference on HP's features. Returns
    per-run and mean accuracy and the Markdown table (``--json``).
    """
    ck = read_fewshot_checkpoint(checkpoint)
    extractor = require_extractor(ck)
    runs = read_runs(runs_folder, ck.cfg.image_size)
    readouts: dict[str, Readout] = {"HP": plastic_readout(extractor, ck.rule)}
    summary: dict[str, Any] = {"checkpoint": str(ck.path), "runs_folder": str(runs_folder)}
    try:
        check_board_fits(ck.cfg.n_features, max(len(r.support) for r in runs), profile)
        readouts["HP on board"] = board_readout(ck.rule, extractor, profile)
    except DeployError as misfit:
        summary["board_skipped"] = str(misfit)
    gp = gp_beside(ck)
    if gp is not None:
        readouts["GP"] = gp_readout(gp, ck.cfg)
    readouts[PROTOTYPE] = prototype_readout(extractor)
    summary.update(score_runs(readouts, runs))
    summary["table"] = render_runs_table(summary)
    return summary


def render_runs_table(summary: dict[str, Any]) -> str:
    """Per-run accuracy of every readout, then the mean over runs."""
    names = list(summary["mean"])
    lines = ["| run | N | " + " | ".join(names) + " |", "| --- | --- |" + " --- |" * len(names)]
    for row in summary["runs"]:
        cells = " | ".join(_pct(row["accuracy"][n]) for n in names)
        lines.append(f"| {row['run']} | {row['n_way']} | {cells} |")
    lines.append("| mean | | " + " | ".join(_pct(summary["mean"][n]) for n in names) + " |")
    return "\n".join(lines) + "\n"


def fewshot_checkpoints(path: str | Path) -> list[Path]:
    """``path`` itself, or every ``fewshot-hp-seedN.pt`` of a scenario run folder."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(path.glob(CHECKPOINT_GLOB))
        if found:
            return found
        raise DeployError(
            f"{path} holds no {CHECKPOINT_GLOB}; train one with "
            f"`glocal train --scenario few-shot --out {path}`."
        )
    raise DeployError(f"no few-shot checkpoint or run folder at {path}.")


def fewshot_board(
    checkpoint: str | Path,
    ways: Sequence[int] = (5, 20),
    episodes: int = 1000,
    seed: int | None = None,
    data_root: str | Path | None = None,
    out: str | Path | None = None,
    profile: str = "tianjic",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Few-shot episodes of every checkpoint under ``checkpoint`` on the emulated board.

    Each N-way binding layer is packed into a one-core image and run by on-chip learning
    (``firmware_sim`` Engine, in-process) on meta-test characters; the same episodes run in
    torch with the board's integer numerics and in torch float. ``seed`` fixes the episodes
    (default ``20_000 + the training seed``). With ``out``, writes ``fewshot-board.json`` and
    ``fewshot-board.md`` there. ``progress(done, total, row)`` after each episode. Returns
    the summary (``--json``).
    """
    ways = [int(n) for n in ways]
    if not ways or min(ways) < 2:
        raise DeployError(f"--ways needs class counts of at least 2, not {ways}.")
    if episodes < 1:
        raise DeployError(f"--episodes must be at least 1, not {episodes}.")
    check_board_fits(None, max(ways), profile)
    loaded = [read_fewshot_checkpoint(p) for p in fewshot_checkpoints(checkpoint)]
    for ck in loaded:
        require_extractor(ck)
        check_board_fits(ck.cfg.n_features, max(ways), profile)
    chars: dict[tuple[int, str, float, int], CharacterSet] = {}
    runs = []
    tick = Tally(len(loaded) * len(ways) * episodes, progress)
    for ck in loaded:
        key = (ck.cfg.image_size, ck.split, ck.test_fraction, ck.split_seed)
        if key not in chars:
            _, chars[key] = split_meta(
                load_omniglot(data_root, ck.cfg.image_size),
                ck.split,
                ck.test_fraction,
                ck.split_seed,
            )
        episode_seed = EPISODE_SEED_OFFSET + ck.seed if seed is None else seed
        results = {
            f"{n}-way": evaluate_on_board(
                ck.extractor,
                ck.rule,
                chars[key],
                n,
                episodes,
                episode_seed,
                profile=profile,
                tick=tick,
            )
            for n in ways
        }
        runs.append(
            {
                "checkpoint": str(ck.path),
                "seed": ck.seed,
                "episode_seed": episode_seed,
                "ways": results,
            }
        )
    table = render_table(runs)
    summary: dict[str, Any] = {
        "episodes": episodes,
        "ways": ways,
        "input_scale": BOARD_INPUT_SCALE,
        "h_max": BOARD_H_MAX,
        "profile": profile,
        "runs": runs,
        "table": table,
    }
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "fewshot-board.json").write_text(
            json.dumps(summary, indent=2, default=_json_number) + "\n"
        )
        (folder / "fewshot-board.md").write_text(table)
        summary["out"] = str(folder)
    return summary


def _json_number(value: Any) -> Any:
    return float(value) if isinstance(value, np.floating | np.integer) else str(value)


def _pct(value: float, ci: float | None = None) -> str:
    text = f"{100 * value:.1f}"
    if ci is not None and math.isfinite(ci):
        text += f" ± {100 * ci:.1f}"
    return text


def render_table(runs: Sequence[dict[str, Any]]) -> str:
    """The Markdown table: accuracy ± 95% CI on the board, torch-int and torch float."""
    lines = [
        "| seed | N | episodes | board | torch-int | torch float | board = torch-int decisions |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        for way, r in run["ways"].items():
            lines.append(
                f"| {run['seed']} | {way} | {r['episodes']} "
                f"| {_pct(r['board_accuracy'], r['board_ci95'])} "
                f"| {_pct(r['torch_int_accuracy'], r['torch_int_ci95'])} "
                f"| {_pct(r['torch_float_accuracy'], r['torch_float_ci95'])} "
                f"| {_pct(r['board_vs_torch_int_agreement'])}% |"
            )
    return "\n".join(lines) + "\n"
