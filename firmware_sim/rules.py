"""Design rules: one function per rule, each returning ``None`` or one sentence that says what
to change (docs/board-spec.md §7). ``check`` runs them in order; an image that breaks any rule
never becomes active on the board.

Structural rules (profile, core count, sizes, tables) run first because the value rules index
into the tables they vouch for.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from firmware_sim.errors import DesignRuleError
from firmware_sim.profiles import Profile
from firmware_sim.tables import BOARD_INTS, BOARD_TABLES, CORE_INTS, TABLES, BoardTables
from protocol import numeric

Rule = Callable[[BoardTables, Profile], str | None]


def profile_matches(image: BoardTables, profile: Profile) -> str | None:
    if image.profile != profile.name:
        return (
            f"The image is built for profile {image.profile!r} but this board is "
            f"{profile.name!r}; rebuild it for {profile.name!r}."
        )
    return None


def core_count_and_ids(image: BoardTables, profile: Profile) -> str | None:
    if not image.cores:
        return "The image has no cores; map at least one layer onto a core."
    if len(image.cores) > profile.n_cores:
        return (
            f"The image uses {len(image.cores)} cores but the board has {profile.n_cores}; "
            "use fewer or smaller layers."
        )
    for core in image.cores:
        for name in CORE_INTS:
            if not isinstance(core.get(name), int | np.integer):
                return (
                    f"A core lacks the integer {name!r}; every core needs {', '.join(CORE_INTS)}."
                )
    ids = [int(core["core_id"]) for core in image.cores]
    if len(set(ids)) != len(ids):
        return "Two cores share a core_id; give every core its own id."
    bad = [i for i in ids if not 0 <= i < profile.n_cores]
    if bad:
        return f"Core id {bad[0]} is outside 0..{profile.n_cores - 1}; renumber the cores."
    return None


def core_sizes(image: BoardTables, profile: Profile) -> str | None:
    for core in image.cores:
        a, n = int(core["n_axons"]), int(core["n_neurons"])
        if not 1 <= a <= profile.axons_per_core:
            return (
                f"Core {core['core_id']} has {a} axons but a core takes "
                f"1..{profile.axons_per_core}; split the layer's inputs or shrink it."
            )
        if not 1 <= n <= profile.neurons_per_core:
            return (
                f"Core {core['core_id']} has {n} neurons but a core takes "
                f"1..{profile.neurons_per_core}; split the layer over more cores."
            )
    return None


def tables_present(image: BoardTables, profile: Profile) -> str | None:
    for core in image.cores:
        a, n = int(core["n_axons"]), int(core["n_neurons"])
        routes = core.get("route_src")
        e = routes.shape[0] if isinstance(routes, np.ndarray) and routes.ndim == 1 else 0
        for name, (dtype, shape) in TABLES.items():
            table = core.get(name)
            want = shape(a, n, e)
            if not isinstance(table, np.ndarray) or table.dtype != dtype or table.shape != want:
                got = f"{table.dtype} {table.shape}" if isinstance(table, np.ndarray) else "missing"
                return (
                    f"Core {core['core_id']} table {name!r} is {got} but must be "
                    f"{np.dtype(dtype)} {want}."
                )
    for name in BOARD_INTS:
        if not isinstance(image.board.get(name), int | np.integer):
            return f"The board section lacks the integer {name!r}."
    act_dim = int(image.board["act_dim"])
    for name, (dtype, shape) in BOARD_TABLES.items():
        table = image.board.get(name)
        want = shape(act_dim)
        if not isinstance(table, np.ndarray) or table.dtype != dtype or table.shape != want:
            return f"The board table {name!r} must be {np.dtype(dtype)} {want}."
    return None


def thresholds_in_range(image: BoardTables, profile: Profile) -> str | None:
    for core in image.cores:
        theta = core["theta"]
        if theta.min() < 1 or theta.max() > numeric.V_MAX:
            return (
                f"Core {core['core_id']} has a threshold outside 1..{numeric.V_MAX}; "
                "thresholds must be positive and fit the 24-bit membrane."
            )
    return None


def leak_shifts_in_range(image: BoardTables, profile: Profile) -> str | None:
    for core in image.cores:
        shift = core["decay_shift"]
        if shift.min() < 0 or shift.max() > numeric.MEMBRANE_BITS - 1:
            return (
                f"Core {core['core_id']} has a leak shift outside 0..{numeric.MEMBRANE_BITS - 1}."
            )
    return None


def plasticity_in_range(image: BoardTables, profile: Profile) -> str | None:
    for core in image.cores:
        lam, h_max = int(core["lam"][0]), int(core["h_max"][0])
        if not 0 <= lam <= numeric.LAMBDA_ONE:
            return (
                f"Core {core['core_id']} has lam={lam}; the trace decay must lie in "
                f"0..{numeric.LAMBDA_ONE} (Q0.16)."
            )
        if not 0 <= h_max <= numeric.TRACE_MAX:
            return (
                f"Core {core['core_id']} has h_max={h_max}; it must lie in 0..{numeric.TRACE_MAX}."
            )
    return None


def _core_index(image: BoardTables) -> dict[int, dict]:
    return {int(core["core_id"]): core for core in image.cores}


def routes_exist(image: BoardTables, profile: Profile) -> str | None:
    cores = _core_index(image)
    for core in image.cores:
        n = int(core["n_neurons"])
        src = core["route_src"]
        if src.size and (src.min() < 0 or src.max() >= n):
            return f"Core {core['core_id']} routes from a neuron it does not have (0..{n - 1})."
        for dst_core, dst_axon in zip(core["route_dst_core"], core["route_dst_axon"], strict=True):
            target = cores.get(int(dst_core))
            if target is None:
                return (
                    f"Core {core['core_id']} routes to core {dst_core}, which is not in the image."
                )
            if not 0 <= dst_axon < int(target["n_axons"]):
                return (
                    f"Core {core['core_id']} routes to axon {dst_axon} of core {dst_core}, "
                    f"which has axons 0..{int(target['n_axons']) - 1}."
                )
    return None


def routes_per_core(image: BoardTables, profile: Profile) -> str | None:
    for core in image.cores:
        if core["route_src"].size > profile.routes_per_core:
            return (
                f"Core {core['core_id']} has {core['route_src'].size} routes but a core holds "
                f"{profile.routes_per_core}; reduce the fan-out."
            )
    return None


def one_source_per_axon(image: BoardTables, profile: Profile) -> str | None:
    sources: dict[tuple[int, int], int] = {}
    for core in image.cores:
        for axon in np.flatnonzero(core["enc_src"] >= 0):
            sources[(int(core["core_id"]), int(axon))] = 1
    for core in image.cores:
        for dst_core, dst_axon in zip(core["route_dst_core"], core["route_dst_axon"], strict=True):
            key = (int(dst_core), int(dst_axon))
            if key in sources:
                return (
                    f"Axon {key[1]} of core {key[0]} has two sources; an axon takes one route "
                    "or the encoder, never both."
                )
            sources[key] = 1
    return None


def io_indices_in_range(image: BoardTables, profile: Profile) -> str | None:
    obs_dim, act_dim = int(image.board["obs_dim"]), int(image.board["act_dim"])
    for core in image.cores:
        if core["enc_src"].max(initial=-1) >= obs_dim or core["enc_src"].min(initial=0) < -1:
            return f"Core {core['core_id']} encodes an observation index outside 0..{obs_dim - 1}."
        if core["dec_dst"].max(initial=-1) >= act_dim or core["dec_dst"].min(initial=0) < -1:
            return f"Core {core['core_id']} decodes into an action index outside 0..{act_dim - 1}."
    return None


def modulator_exists(image: BoardTables, profile: Profile) -> str | None:
    cores = _core_index(image)
    for core in image.cores:
        mod_core, mod_neuron = (int(v) for v in core["mod_src"])
        if (mod_core, mod_neuron) == (-1, -1):
            continue
        target = cores.get(mod_core)
        if target is None or not 0 <= mod_neuron < int(target["n_neurons"]):
            return (
                f"Core {core['core_id']} names modulator neuron {mod_neuron} of core {mod_core}, "
                "which does not exist; use (-1, -1) for none."
            )
    return None


def board_settings_in_range(image: BoardTables, profile: Profile) -> str | None:
    board = image.board
    if not 1 <= int(board["ticks_per_step"]) <= numeric.MAX_TICKS_PER_STEP:
        return f"ticks_per_step must lie in 1..{numeric.MAX_TICKS_PER_STEP}."
    for name in ("reset_mode", "enc_mode", "dec_mode"):
        if int(board[name]) not in (0, 1):
            return f"{name} must be 0 or 1."
    if int(board["obs_dim"]) < 1 or int(board["act_dim"]) < 1:
        return "obs_dim and act_dim must be at least 1."
    return None


STRUCTURAL_RULES: tuple[Rule, ...] = (
    profile_matches,
    core_count_and_ids,
    core_sizes,
    tables_present,
)
VALUE_RULES: tuple[Rule, ...] = (
    thresholds_in_range,
    leak_shifts_in_range,
    plasticity_in_range,
    routes_exist,
    routes_per_core,
    one_source_per_axon,
    io_indices_in_range,
    modulator_exists,
    board_settings_in_range,
)


def violations(image: BoardTables, profile: Profile) -> list[str]:
    """Every broken rule as a sentence (structural failures stop the check early)."""
    for rule in STRUCTURAL_RULES:
        message = rule(image, profile)
        if message:
            return [message]
    return [message for rule in VALUE_RULES if (message := rule(image, profile))]


def check(image: BoardTables, profile: Profile) -> None:
    """Raise ``DesignRuleError`` with one sentence per broken rule, or return quietly."""
    found = violations(image, profile)
    if found:
        raise DesignRuleError(found)
