"""Board profiles as data: how many cores, how big, how many routes (docs/board-spec.md §6).

Datapath widths are not part of a profile: every profile runs the same integer semantics
(``firmware_sim.spec``); a profile only says how much of it there is.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware_sim.errors import BoardError


@dataclass(frozen=True)
class Profile:
    """Resource limits of one board."""

    name: str
    mesh_rows: int
    mesh_cols: int
    axons_per_core: int
    neurons_per_core: int
    routes_per_core: int

    @property
    def n_cores(self) -> int:
        return self.mesh_rows * self.mesh_cols

    def mesh_position(self, core_id: int) -> tuple[int, int]:
        """(row, column) of a core on the mesh."""
        return divmod(core_id, self.mesh_cols)


PROFILES: dict[str, Profile] = {
    "tianjic": Profile("tianjic", 12, 13, 256, 256, 1024),
    "small": Profile("small", 2, 4, 32, 32, 128),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a clear error names the ones that exist."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise BoardError(f"unknown board profile {name!r}; choose one of: {known}.") from None
