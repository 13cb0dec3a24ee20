"""Train's mirror of the board is the board, tick for tick (``docs/board-spec.md`` §3).

``train.quant.BoardNumerics`` runs ``train.snn``'s step in float64; ``firmware_sim.Engine`` runs
the image that deploy quantises and maps from the same checkpoint, split over several cores. The
board draws its own on-chip faults (stuck-at-zero synapses, dead neurons); train gets the same
ones as its fault masks. After every tick the two must agree exactly on every membrane, every
spike and every plastic trace as it would be read (pending lazy decay applied), not only on the
actions: a one-LSB slip in any rounding shows here long before it moves an action by 1e-4.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch

from deploy.mapping import map_network
from deploy.quantise import Checkpoint, load_checkpoint, quantise
from firmware_sim.engine import Engine
from firmware_sim.faults import Fault
from firmware_sim.profiles import Profile
from protocol.numeric import AGE_MAX, LAMBDA_FRAC, lambda_powers
from tests.deploy.conftest import observations, train_small
from train.quant import BoardNumerics
from train.snn import LayerParams, LayerState, NetParams, init_net_state, net_step

SHIPPED = "train/checkpoints/armreach_hp"
SPLIT = Profile("split", 4, 4, 128, 6, 128)
"""Six neurons per core: 64 hidden neurons take 11 cores, 16 take 3 (the last ones partly)."""
FAULTS = (Fault("stuck-zero", magnitude=0.1, seed=11), Fault("dead-neuron", magnitude=0.1, seed=12))
Span = tuple[int, int, int]  # (core_id, first neuron of the layer, one past the last)


@pytest.fixture(scope="module")
def modulated(tmp_path_factory) -> Checkpoint:
    checkpoint = load_checkpoint(train_small(tmp_path_factory.mktemp("mod"), modulator=True))
    with torch.no_grad():
        checkpoint.policy.mod_levels.copy_(torch.tensor([-0.5, 2.25]))
        checkpoint.policy.eta_pre.mul_(10.0)  # 8 updates leave a weak rule; make it act
    return checkpoint


def layer_spans(image: Any) -> dict[str, list[Span]]:
    """Which cores hold which neurons of each layer (the mapper lays a layer out in order)."""
    hidden = set(image.meta["hidden_cores"])
    spans: dict[str, list[Span]] = {"hidden": [], "readout": []}
    for core in sorted(image.cores, key=lambda c: int(c["core_id"])):
        layer = spans["hidden" if int(core["core_id"]) in hidden else "readout"]
        start = layer[-1][2] if layer else 0
        layer.append((int(core["core_id"]), start, start + int(core["n_neurons"])))
    return spans


def join(per_core: dict[int, np.ndarray], spans: list[Span]) -> np.ndarray:
    """A layer's values from its cores, neurons along the last axis, as int64."""
    return np.concatenate([per_core[core_id] for core_id, _, _ in spans], axis=-1).astype(np.int64)


def with_board_faults(layer: LayerParams, engine: Engine, spans: list[Span]) -> LayerParams:
    """``layer`` with the board's stuck synapses and dead neurons as train's fault masks."""
    faults = engine.read_faults()
    stuck = join({c: f["stuck"] for c, f in faults.items()}, spans)
    dead = join({c: f["dead"] for c, f in faults.items()}, spans)
    keep = torch.tensor(1.0 - stuck, dtype=torch.float64)[None]
    alive = torch.tensor(1.0 - dead, dtype=torch.float64)[None]
    return replace(layer, synapse_keep=keep, neuron_alive=alive)


def trace_as_read(state: LayerState, lam_q: int) -> np.ndarray:
    """Train's trace with each row's pending lazy decay applied, as the board's READ gives it."""
    powers = np.array(lambda_powers(lam_q), np.int64)
    age = np.minimum(state.age[0].numpy().astype(np.int64), AGE_MAX)
    return (state.h[0].numpy().astype(np.int64) * powers[age][:, None]) >> LAMBDA_FRAC


def ints(t: torch.Tensor) -> np.ndarray:
    return t[0].numpy().astype(np.int64)


def run_side_by_side(checkpoint: Checkpoint, steps: int) -> dict[str, int]:
    """Step train's mirror and the board together, asserting equality after every tick; returns
    what happened (so a test can check that the run exercised what it claims)."""
    q = quantise(checkpoint)
    image = map_network(q, SPLIT)
    spans = layer_spans(image)
    engine = Engine(image, SPLIT)
    engine.learning = True
    for fault in FAULTS:
        engine.inject(fault)
    twin = copy.deepcopy(checkpoint.policy).double()
    with torch.no_grad():
        board = twin.board_net().params
    params: NetParams = replace(
        board,
        ticks=1,  # one net_step per board tick: train's state is visible after each
        hidden=with_board_faults(board.hidden, engine, spans["hidden"]),
        readout=with_board_faults(board.readout, engine, spans["readout"]),
    )
    lam_q = int(q.hidden["lam"][0])
    position = {core_id: p for p, core_id in enumerate(engine.core_ids)}
    numerics = BoardNumerics()
    state = init_net_state(params, 1)
    seen = {"spikes": 0, "mod_spikes": 0, "ticks": 0}
    for obs in observations(q.n_obs, steps):
        current = engine.encode(obs)
        obs_t = torch.tensor(obs[None], dtype=torch.float64)
        x_in = numerics.encode(obs_t, board.enc_gain, board.enc_bias)
        assert np.all(current.reshape(len(spans["hidden"]), q.n_obs) == ints(x_in))
        for _ in range(q.ticks):
            spikes = engine.run_tick(current)
            with torch.no_grad():
                _, state = net_step(obs_t, state, params, numerics)
            per_core = {
                c: spikes[position[c], : stop - start] for c, start, stop in spans["hidden"]
            }
            assert np.array_equal(join(per_core, spans["hidden"]), ints(state.hidden.spikes))
            membranes = engine.read_membranes()
            assert np.array_equal(join(membranes, spans["hidden"]), ints(state.hidden.v_mem))
            assert np.array_equal(join(membranes, spans["readout"]), ints(state.readout.v_mem))
            traces = engine.read_traces()
            assert np.array_equal(join(traces, spans["hidden"]), trace_as_read(state.hidden, lam_q))
            assert not join(traces, spans["readout"]).any()  # the readout has no plastic rule
            seen["ticks"] += 1
            seen["spikes"] += int(state.hidden.spikes.sum())
            mod = board.hidden.plastic.mod_neuron if board.hidden.plastic else -1
            seen["mod_spikes"] += int(state.hidden.spikes[0, mod]) if mod >= 0 else 0
    seen["trace_units"] = int(np.abs(trace_as_read(state.hidden, lam_q)).sum())
    seen["stuck"] = int((params.hidden.synapse_keep == 0).sum())
    seen["dead"] = int((params.hidden.neuron_alive == 0).sum())
    seen["hidden_cores"] = len(spans["hidden"])
    return seen


def test_trained_checkpoint_split_over_cores_with_faults_is_the_board_tick_for_tick() -> None:
    seen = run_side_by_side(load_checkpoint(SHIPPED), steps=25)
    assert seen["hidden_cores"] == 11 and seen["stuck"] > 0 and seen["dead"] > 0
    assert seen["spikes"] > seen["ticks"] and seen["trace_units"] > 0


def test_modulated_rule_split_over_cores_with_faults_is_the_board_tick_for_tick(
    modulated,
) -> None:
    seen = run_side_by_side(modulated, steps=25)
    assert seen["hidden_cores"] == 3 and seen["stuck"] > 0 and seen["trace_units"] > 0
    # the modulator spiked on some ticks and not on others: both levels of m were in play
    assert 0 < seen["mod_spikes"] < seen["ticks"]
