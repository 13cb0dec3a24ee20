"""What the board runs: a core image's board section and per-core tables (docs/board-spec.md §5).

Two things are called "image" nowhere else: the *core image* is the signed wire format
(``protocol.image``, a ``.glc`` file); ``BoardTables`` is what the board decodes it into and
runs (``firmware_sim.tables_io`` converts between the two). ``TABLES`` is the schema every core
must follow (checked by ``firmware_sim.rules``). The board only runs images: mapping a
network onto cores is the host's job (``deploy.mapping``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from firmware_sim.errors import BoardError
from protocol import numeric

CORE_INTS = ("core_id", "n_axons", "n_neurons")
BOARD_INTS = ("ticks_per_step", "obs_dim", "act_dim", "reset_mode", "enc_mode", "dec_mode")

Shape = Callable[[int, int, int], tuple[int, ...]]
"""A table's shape from (n_axons, n_neurons, n_routes)."""

TABLES: dict[str, tuple[type, Shape]] = {
    "weights": (np.int8, lambda a, n, e: (a, n)),
    "theta": (np.int32, lambda a, n, e: (n,)),
    "decay_shift": (np.int8, lambda a, n, e: (n,)),
    "alpha": (np.int16, lambda a, n, e: (1,)),
    "lam": (np.int32, lambda a, n, e: (1,)),
    "h_max": (np.int16, lambda a, n, e: (1,)),
    "eta": (np.int16, lambda a, n, e: (a,)),
    "beta": (np.int16, lambda a, n, e: (n,)),
    "f_table": (np.int16, lambda a, n, e: (numeric.F_TABLE_SIZE,)),
    "mod_src": (np.int16, lambda a, n, e: (2,)),
    "mod_levels": (np.int16, lambda a, n, e: (2,)),
    "enc_src": (np.int16, lambda a, n, e: (a,)),
    "enc_gain": (np.int16, lambda a, n, e: (a,)),
    "enc_bias": (np.int16, lambda a, n, e: (a,)),
    "dec_dst": (np.int16, lambda a, n, e: (n,)),
    "dec_w": (np.int16, lambda a, n, e: (n,)),
    "route_src": (np.int16, lambda a, n, e: (e,)),
    "route_dst_core": (np.int16, lambda a, n, e: (e,)),
    "route_dst_axon": (np.int16, lambda a, n, e: (e,)),
}
BOARD_TABLES: dict[str, tuple[type, Callable[[int], tuple[int, ...]]]] = {
    "dec_bias": (np.int32, lambda act_dim: (act_dim,)),
    "dec_shift": (np.int8, lambda act_dim: (act_dim,)),
}


@dataclass
class BoardTables:
    """An image as the board sees it: profile name, board section, per-core tables."""

    profile: str
    board: dict[str, Any]
    cores: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)

    def core(self, core_id: int) -> dict[str, Any]:
        for core in self.cores:
            if int(core["core_id"]) == core_id:
                return core
        raise BoardError(f"the image has no core {core_id}.")
