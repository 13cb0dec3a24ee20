"""Map quantised layers onto a board profile's cores, check the design rules, count resources.

The one mapper is :func:`map_chain`: it places a chain of layers (:mod:`deploy.chain`) in core
order. A core sums only its own axons, so every core of a layer receives all of that layer's
inputs: a layer wider than a core is split by *neurons* over several cores, each with the full
fan-in. A core holding neurons ``start..stop`` sends neuron ``start + j`` to axon ``start + j``
of every core of the next layer and, in a recurrent layer, to axon ``n_in + start + j`` of every
core of its own layer (``n_in`` = the layer's axons before its recurrent ones). Chunks shrink
below a core's neuron count when the routes of a full chunk would exceed the profile's routes
per core.

The trained network (``docs/train.md``) is the chain of a recurrent hidden layer and a membrane
readout (:func:`trained_chain`); :func:`map_network` maps it, with the encoder and readout
copies below and mapping errors that say what to change in training or packing. The few-shot
board, the HIL conformance image and the benchmarks map their own chains.

Encoder copies (``encoder_copies = K``, default 1) spread each observation over ``K`` axons with
the same ``enc_src``: every weight ``w`` of an encoder row becomes ``K`` integers that sum to
``w`` exactly, and only the first copy learns (the others have ``eta = 0``, so their trace stays
zero). A healthy board computes the same currents, so actions are unchanged (as long as no
first copy's ``w_eff`` saturates where the original would not); a stuck-at-zero synapse then
takes ``w / K`` with it instead of ``w``. The encoder rows are where stuck synapses hurt most (10
inputs per hidden neuron, against 64 recurrent ones), so copies are bought there only. The routed
rows follow the ``K * n_obs`` encoder rows.

Readout copies (``readout_copies = R``, default 1) give every action ``R`` readout neurons with
the same weight column; the decoder weight of the action is spread over them (integers that sum
to it exactly), so a healthy board decodes the same action, and a dead readout neuron or a
stuck readout synapse costs ``1/R`` of one copy's drive instead of the whole action: without
copies a readout neuron is a single point of failure (its action falls to the decoder bias).
An integral readout (``docs/train.md``) already gives every action two neurons, fast and slow
(neuron ``a`` and ``n_act + a``); copies repeat that whole readout, so readout neuron ``j`` of
copy ``c`` is board neuron ``c * n_readout + j`` and feeds action ``j mod n_act``. Copies cost
neurons, not routes (a route feeds a whole readout core).

A modulator (the third factor of the rule) is one neuron, named as ``(layer, neuron)`` of the
chain (``train.quant`` names a hidden neuron ``j`` as ``(0, j)``); every core of a layer it
gates gets, as ``mod_src``, the core and local index that hold that neuron.

A fan-in beyond a core's axons cannot be split without changing the arithmetic (a neuron's
membrane is one core's sum), so that is a mapping error that says what to change. The design
rules themselves are ``firmware_sim.rules``, one readable sentence per broken rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from deploy.chain import Chain, Decoder, Encoder, Layer, per_element
from deploy.errors import MappingError
from deploy.quantise import QuantisedNetwork
from firmware_sim.profiles import Profile
from firmware_sim.rules import violations
from firmware_sim.tables import BoardTables
from protocol import numeric


@dataclass(frozen=True)
class Span:
    """One core of a layer: which of the layer's neurons it holds (``layer`` is its index in
    the chain)."""

    layer: int
    core_id: int
    start: int
    stop: int


def chunk_size(
    n_neurons: int, per_core: int, routes_per_core: int, other_cores: int, recurrent: bool
) -> int:
    """Largest neurons-per-core whose routes (one per target core: ``other_cores``, plus the
    layer's own cores when it is recurrent) fit the profile."""
    for size in range(min(per_core, n_neurons), 0, -1):
        targets = other_cores + (math.ceil(n_neurons / size) if recurrent else 0)
        if size * targets <= routes_per_core:
            return size
    raise MappingError(
        f"even one neuron per core needs more than {routes_per_core} routes; use a board "
        "profile with more routes per core."
    )


def spans(layer: int, n_neurons: int, size: int, first_core: int) -> list[Span]:
    return [
        Span(layer, first_core + k, start, min(start + size, n_neurons))
        for k, start in enumerate(range(0, n_neurons, size))
    ]


def plan_chain(chain: Chain, profile: Profile) -> list[Span]:
    """Which core holds which neurons: layers in core order, each split into the largest
    chunks whose routes fit (sized from the last layer back, as a layer's routes count the
    next layer's cores)."""
    sizes: list[int] = []
    next_cores = 0
    for layer in reversed(chain.layers):
        n_neurons = layer.shape[1]
        size = chunk_size(
            n_neurons,
            profile.neurons_per_core,
            profile.routes_per_core,
            next_cores,
            layer.recurrent,
        )
        sizes.insert(0, size)
        next_cores = math.ceil(n_neurons / size)
    layout: list[Span] = []
    for index, (layer, size) in enumerate(zip(chain.layers, sizes, strict=True)):
        layout += spans(index, layer.shape[1], size, len(layout))
    return layout


def spread(weights: np.ndarray, copies: int) -> np.ndarray:
    """``copies`` blocks of integer rows whose sum is ``weights`` exactly, each entry within one
    of ``weights / copies``: shape ``(copies * n_rows, ...)``."""
    base = np.floor_divide(weights, copies)
    rest = weights - base * copies  # in [0, copies): the first ``rest`` copies take one more
    return np.concatenate([base + (rest > c) for c in range(copies)]).astype(weights.dtype)


def copy_encoder_rows(tables: dict[str, np.ndarray], n_obs: int, copies: int) -> dict[str, Any]:
    """The hidden layer's tables with each encoder row spread over ``copies`` rows; only the
    first copy keeps its learning rate."""
    if copies == 1:
        return tables
    weights, eta = tables["weights"], tables["eta"]
    silent = np.zeros(((copies - 1) * n_obs, *eta.shape[1:]), eta.dtype)
    return {
        **tables,
        "weights": np.concatenate([spread(weights[:n_obs], copies), weights[n_obs:]]),
        "eta": np.concatenate([eta[:n_obs], silent, eta[n_obs:]]),
    }


def copy_readout_neurons(
    tables: dict[str, np.ndarray], dec_w: np.ndarray, copies: int
) -> tuple[dict[str, Any], np.ndarray]:
    """The readout's tables with every neuron repeated ``copies`` times (copy-major), and the
    decoder weights spread over the copies."""
    if copies == 1:
        return tables, dec_w
    per_neuron = ("theta", "decay_shift", "beta")
    return {
        **tables,
        "weights": np.tile(tables["weights"], (1, copies)),
        **{key: np.tile(tables[key], copies) for key in per_neuron},
    }, spread(dec_w, copies)


def trained_chain(q: QuantisedNetwork, encoder_copies: int = 1, readout_copies: int = 1) -> Chain:
    """The trained network as a chain: the recurrent hidden layer (encoder rows first, each
    spread over ``encoder_copies`` rows) and the membrane readout (``readout_copies`` copies)."""
    hidden = copy_encoder_rows(q.hidden, q.n_obs, encoder_copies)
    readout, dec_w = copy_readout_neurons(q.readout, q.dec_w, readout_copies)
    recurrent_rows = np.zeros(q.n_hidden, np.int16)
    encoder = Encoder(
        src=np.concatenate([np.tile(np.arange(q.n_obs), encoder_copies), recurrent_rows - 1]),
        gain=np.concatenate([np.tile(q.enc_gain, encoder_copies), recurrent_rows]),
        bias=np.concatenate([np.tile(q.enc_bias, encoder_copies), recurrent_rows]),
        mode=numeric.ENC_CURRENT,
    )
    decoder = Decoder(
        dst=np.tile(np.arange(q.n_act), len(dec_w) // q.n_act),
        w=dec_w,
        bias=q.dec_bias,
        shift=q.dec_shift,
        mode=numeric.DEC_MEMBRANE,
    )
    layers = [Layer.from_tables(hidden, recurrent=True), Layer.from_tables(readout)]
    return Chain(layers, encoder, decoder, q.n_obs, q.n_act, q.ticks, q.reset_mode, q.scales)


def plan(
    q: QuantisedNetwork, profile: Profile, encoder_copies: int = 1, readout_copies: int = 1
) -> list[Span]:
    """Which core holds which neurons of the trained network (layer 0 hidden, 1 readout);
    raises a MappingError that says what to change."""
    for name, copies in (("encoder", encoder_copies), ("readout", readout_copies)):
        if copies < 1:
            raise MappingError(f"{name} copies must be at least 1, not {copies}.")
    encoder_rows = encoder_copies * q.n_obs
    fan_in = encoder_rows + q.n_hidden
    if fan_in > profile.axons_per_core:
        fit = profile.axons_per_core - encoder_rows
        inputs = f"{q.n_obs} observations + {q.n_hidden} recurrent"
        remedies = "pack for a larger profile"
        if encoder_copies > 1:
            inputs = f"{q.n_obs} observations x {encoder_copies} copies + {q.n_hidden} recurrent"
            remedies = "use fewer encoder copies or " + remedies
        if fit > 0:
            remedies = f"train with at most {fit} hidden neurons, " + remedies
        raise MappingError(
            f"the hidden layer takes {fan_in} inputs ({inputs}) but a {profile.name} core has "
            f"{profile.axons_per_core} axons; {remedies}."
        )
    layout = plan_chain(trained_chain(q, encoder_copies, readout_copies), profile)
    if len(layout) > profile.n_cores:
        fewer = "use fewer readout copies, " if readout_copies > 1 else ""
        raise MappingError(
            f"the network needs {len(layout)} cores but a {profile.name} board has "
            f"{profile.n_cores}; {fewer}train a smaller network or pack for a larger profile."
        )
    return layout


def modulator_source(modulator: tuple[int, int] | None, layout: list[Span]) -> np.ndarray:
    """The spec's ``(core_id, neuron)`` of a ``(layer, neuron)`` modulator; ``(-1, -1)`` for
    none."""
    if modulator is None:
        return np.array([-1, -1], dtype=np.int16)
    layer, neuron = modulator
    holder = next((s for s in layout if s.layer == layer and s.start <= neuron < s.stop), None)
    if holder is None:
        raise MappingError(f"the modulator (layer {layer}, neuron {neuron}) is not in the chain.")
    return np.array([holder.core_id, neuron - holder.start], dtype=np.int16)


PER_NEURON = ("theta", "decay_shift", "beta", "dec_dst", "dec_w")
"""Tables a split layer divides among its cores (``weights`` by column); the others every core
of the layer holds whole."""


def io_tables(chain: Chain, index: int) -> dict[str, np.ndarray]:
    """Encoder rows (per axon) and decoder columns (per neuron) of layer ``index``: only the
    first layer has an encoder, only the last a decoder."""
    n_axons, n_neurons = chain.layers[index].shape
    encoder, decoder = chain.encoder, chain.decoder
    first, last = index == 0, index == len(chain.layers) - 1
    return {
        "enc_src": per_element(encoder.src if first else -1, n_axons, np.int16),
        "enc_gain": per_element(encoder.gain if first else 0, n_axons, np.int16),
        "enc_bias": per_element(encoder.bias if first else 0, n_axons, np.int16),
        "dec_dst": per_element(decoder.dst if last else -1, n_neurons, np.int16),
        "dec_w": per_element(decoder.w if last else 0, n_neurons, np.int16),
    }


def routes(span: Span, targets: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    """Neuron ``start + j`` of ``span`` to axon ``first + start + j`` of each target
    ``(core_id, first)``."""
    local = np.arange(span.stop - span.start)
    return {
        "route_src": np.tile(local, len(targets)).astype(np.int16),
        "route_dst_core": np.repeat([core for core, _ in targets], local.size).astype(np.int16),
        "route_dst_axon": np.concatenate(
            [first + span.start + local for _, first in targets] or [local[:0]]
        ).astype(np.int16),
    }


def map_chain(chain: Chain, profile: Profile, meta: dict[str, Any] | None = None) -> BoardTables:
    """The board image of ``chain`` on ``profile``; every design rule is checked before it
    returns. This is the one mapper: a trained network comes here through :func:`map_network`."""
    layout = plan_chain(chain, profile)
    cores = []
    for index, layer in enumerate(chain.layers):
        n_axons, n_neurons = layer.shape
        tables = {
            **layer.tables(),
            "mod_src": modulator_source(layer.modulator, layout),
            "mod_levels": np.array(layer.mod_levels, np.int16),
            **io_tables(chain, index),
        }
        own = [s for s in layout if s.layer == index]
        targets = [(s.core_id, n_axons - n_neurons) for s in own if layer.recurrent]
        targets += [(s.core_id, 0) for s in layout if s.layer == index + 1]
        for span in own:
            neurons = slice(span.start, span.stop)
            core: dict[str, Any] = {
                "core_id": span.core_id,
                "n_axons": n_axons,
                "n_neurons": span.stop - span.start,
            }
            for name, table in tables.items():
                part = table[:, neurons] if name == "weights" else table
                core[name] = (part[neurons] if name in PER_NEURON else part).copy()
            cores.append({**core, **routes(span, targets)})
    image = BoardTables(profile.name, chain.board(), cores, dict(meta or {}), dict(chain.scales))
    broken = violations(image, profile)
    if broken:
        raise MappingError("the mapped image breaks the design rules: " + " ".join(broken))
    return image


def map_network(
    q: QuantisedNetwork,
    profile: Profile,
    meta: dict[str, Any] | None = None,
    encoder_copies: int = 1,
    readout_copies: int = 1,
) -> BoardTables:
    """The board image of the trained network ``q`` on ``profile``, design rules checked."""
    layout = plan(q, profile, encoder_copies, readout_copies)
    meta = {
        **(meta or {}),
        "hidden_cores": [s.core_id for s in layout if s.layer == 0],
        "encoder_copies": encoder_copies,
        "readout_copies": readout_copies,
    }
    return map_chain(trained_chain(q, encoder_copies, readout_copies), profile, meta)


def resources(image: BoardTables, profile: Profile) -> dict[str, Any]:
    """Cores, neurons, synapses, weight and trace memory, and utilisation per core."""
    per_core = []
    for core in image.cores:
        a, n = int(core["n_axons"]), int(core["n_neurons"])
        plastic = int(core["alpha"][0]) != 0 and bool(np.any(core["eta"] != 0))
        per_core.append(
            {
                "core_id": int(core["core_id"]),
                "axons": a,
                "neurons": n,
                "synapses": int(np.count_nonzero(core["weights"])),
                "routes": int(core["route_src"].size),
                "weight_bytes": a * n,  # int8
                "trace_bytes": a * n * 2 if plastic else 0,  # int16 H per synapse
                "axon_use": a / profile.axons_per_core,
                "neuron_use": n / profile.neurons_per_core,
                "route_use": int(core["route_src"].size) / profile.routes_per_core,
            }
        )
    total = {
        key: sum(c[key] for c in per_core)
        for key in ("neurons", "synapses", "routes", "weight_bytes", "trace_bytes")
    }
    return {
        "profile": profile.name,
        "cores": len(per_core),
        "cores_available": profile.n_cores,
        **total,
        "per_core": per_core,
    }


def render_resources(report: dict[str, Any]) -> str:
    """The resource report as a small text table."""
    lines = [
        f"{report['cores']} of {report['cores_available']} {report['profile']} cores, "
        f"{report['neurons']} neurons, {report['synapses']} synapses, "
        f"{report['weight_bytes']} B weights, {report['trace_bytes']} B traces",
        "  core  axons  neurons  synapses  routes  axon%  neuron%  route%",
    ]
    for c in report["per_core"]:
        lines.append(
            f"  {c['core_id']:>4}  {c['axons']:>5}  {c['neurons']:>7}  {c['synapses']:>8}  "
            f"{c['routes']:>6}  {100 * c['axon_use']:>5.1f}  {100 * c['neuron_use']:>7.1f}  "
            f"{100 * c['route_use']:>6.1f}"
        )
    return "\n".join(lines)
