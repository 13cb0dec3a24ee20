"""Map a quantised network onto a board profile's cores, check the design rules, count resources.

The network (``docs/train.md``) is a recurrent hidden layer and a membrane readout. A core sums
only its own axons, so every core of a layer receives all of that layer's inputs: a layer wider
than a core is split by *neurons* over several cores, each with the full fan-in. Hidden core
``c`` holding neurons ``start..stop`` sends neuron ``start + j`` to axon ``n_obs + start + j`` of
every hidden core (recurrence) and to axon ``start + j`` of every readout core; the readout's
neuron ``a`` feeds action ``a`` through the decoder. Chunks shrink below a core's neuron count
when the routes of a full chunk would exceed the profile's routes per core.

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

A modulator (the third factor of the rule) is one hidden neuron; ``train.quant`` names it as
neuron ``j`` of the layer, and every hidden core's ``mod_src`` becomes the core and local index
that hold neuron ``j``.

A fan-in beyond a core's axons cannot be split without changing the arithmetic (a neuron's
membrane is one core's sum), so that is a mapping error that says what to change. The design
rules themselves are ``firmware_sim.rules``, one readable sentence per broken rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from deploy.errors import MappingError
from deploy.quantise import QuantisedNetwork
from firmware_sim import spec
from firmware_sim.image import BoardImage
from firmware_sim.profiles import Profile
from firmware_sim.rules import violations


@dataclass(frozen=True)
class Span:
    """One core of a layer: which of the layer's neurons it holds."""

    layer: str
    core_id: int
    start: int
    stop: int


def chunk_size(n_neurons: int, per_core: int, routes_per_core: int, other_cores: int) -> int:
    """Largest neurons-per-core whose routes (one per target core) fit the profile."""
    for size in range(min(per_core, n_neurons), 0, -1):
        targets = math.ceil(n_neurons / size) + other_cores
        if size * targets <= routes_per_core:
            return size
    raise MappingError(
        f"even one neuron per core needs more than {routes_per_core} routes; use a board "
        "profile with more routes per core."
    )


def spans(layer: str, n_neurons: int, size: int, first_core: int) -> list[Span]:
    return [
        Span(layer, first_core + k, start, min(start + size, n_neurons))
        for k, start in enumerate(range(0, n_neurons, size))
    ]


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


def modulator_source(tables: dict[str, np.ndarray], layer: list[Span]) -> np.ndarray:
    """The spec's ``(core_id, neuron)`` of a layer's modulator, which train.quant names as
    ``(0, j)`` with ``j`` the neuron's index in the layer; ``(-1, -1)`` stays."""
    j = int(tables["mod_src"][1])
    if j < 0:
        return tables["mod_src"]
    holder = next(s for s in layer if s.start <= j < s.stop)
    return np.array([holder.core_id, j - holder.start], dtype=np.int16)


def plan(
    q: QuantisedNetwork, profile: Profile, encoder_copies: int = 1, readout_copies: int = 1
) -> list[Span]:
    """Which core holds which neurons; raises a MappingError that says what to change."""
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
    n_readout_neurons = readout_copies * len(q.dec_w)
    readout_size = min(n_readout_neurons, profile.neurons_per_core)
    n_readout = math.ceil(n_readout_neurons / readout_size)
    hidden_size = chunk_size(
        q.n_hidden, profile.neurons_per_core, profile.routes_per_core, n_readout
    )
    layout = spans("hidden", q.n_hidden, hidden_size, 0)
    layout += spans("readout", n_readout_neurons, readout_size, len(layout))
    if len(layout) > profile.n_cores:
        fewer = "use fewer readout copies, " if readout_copies > 1 else ""
        raise MappingError(
            f"the network needs {len(layout)} cores but a {profile.name} board has "
            f"{profile.n_cores}; {fewer}train a smaller network or pack for a larger profile."
        )
    return layout


def map_network(
    q: QuantisedNetwork,
    profile: Profile,
    meta: dict[str, Any] | None = None,
    encoder_copies: int = 1,
    readout_copies: int = 1,
) -> BoardImage:
    """The board image of ``q`` on ``profile``; every design rule is checked before it returns."""
    layout = plan(q, profile, encoder_copies, readout_copies)
    encoder_rows = encoder_copies * q.n_obs
    hidden_tables = copy_encoder_rows(q.hidden, q.n_obs, encoder_copies)
    readout_tables, readout_dec_w = copy_readout_neurons(q.readout, q.dec_w, readout_copies)
    dec_dst_all = np.tile(np.arange(q.n_act), len(readout_dec_w) // q.n_act)
    hidden = [s for s in layout if s.layer == "hidden"]
    readout = [s for s in layout if s.layer == "readout"]
    hidden_tables = {**hidden_tables, "mod_src": modulator_source(hidden_tables, hidden)}
    cores = []
    for span in layout:
        tables = hidden_tables if span.layer == "hidden" else readout_tables
        n_axons = tables["weights"].shape[0]
        n = span.stop - span.start
        enc_src = np.full(n_axons, -1, np.int16)
        enc_gain = np.zeros(n_axons, np.int16)
        enc_bias = np.zeros(n_axons, np.int16)
        dec_dst = np.full(n, -1, np.int16)
        dec_w = np.zeros(n, np.int16)
        if span.layer == "hidden":
            enc_src[:encoder_rows] = np.tile(np.arange(q.n_obs), encoder_copies)
            enc_gain[:encoder_rows] = np.tile(q.enc_gain, encoder_copies)
            enc_bias[:encoder_rows] = np.tile(q.enc_bias, encoder_copies)
            targets = [(t.core_id, encoder_rows) for t in hidden]
            targets += [(t.core_id, 0) for t in readout]
        else:
            dec_dst[:] = dec_dst_all[span.start : span.stop]
            dec_w[:] = readout_dec_w[span.start : span.stop]
            targets = []
        local = np.arange(n)
        cores.append(
            {
                "core_id": span.core_id,
                "n_axons": n_axons,
                "n_neurons": n,
                "weights": tables["weights"][:, span.start : span.stop].copy(),
                "theta": tables["theta"][span.start : span.stop].copy(),
                "decay_shift": tables["decay_shift"][span.start : span.stop].copy(),
                "alpha": tables["alpha"].copy(),
                "lam": tables["lam"].copy(),
                "h_max": tables["h_max"].copy(),
                "eta": tables["eta"].copy(),
                "beta": tables["beta"][span.start : span.stop].copy(),
                "f_table": tables["f_table"].copy(),
                "mod_src": tables["mod_src"].copy(),
                "mod_levels": tables["mod_levels"].copy(),
                "enc_src": enc_src,
                "enc_gain": enc_gain,
                "enc_bias": enc_bias,
                "dec_dst": dec_dst,
                "dec_w": dec_w,
                "route_src": np.tile(local, len(targets)).astype(np.int16),
                "route_dst_core": np.repeat([t[0] for t in targets], n).astype(np.int16),
                "route_dst_axon": np.concatenate(
                    [offset + span.start + local for _, offset in targets] or [local[:0]]
                ).astype(np.int16),
            }
        )
    board = {
        "ticks_per_step": q.ticks,
        "obs_dim": q.n_obs,
        "act_dim": q.n_act,
        "reset_mode": q.reset_mode,
        "enc_mode": spec.ENC_CURRENT,
        "dec_mode": spec.DEC_MEMBRANE,
        "dec_bias": q.dec_bias.copy(),
        "dec_shift": q.dec_shift.copy(),
    }
    meta = {
        **(meta or {}),
        "hidden_cores": [s.core_id for s in hidden],
        "encoder_copies": encoder_copies,
        "readout_copies": readout_copies,
    }
    image = BoardImage(profile.name, board, cores, meta, dict(q.scales))
    broken = violations(image, profile)
    if broken:
        raise MappingError("the mapped image breaks the design rules: " + " ".join(broken))
    return image


def resources(image: BoardImage, profile: Profile) -> dict[str, Any]:
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
