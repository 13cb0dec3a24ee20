"""Pack: checkpoint -> quantise -> map (design rules) -> core image (``.glc``), optionally signed.

The image carries the quantisation scales and, in ``meta``, what the host needs to read the
board back: the checkpoint's kind and sizes, which cores hold the hidden layer, and the float
value of one trace unit (for telemetry in float units).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deploy.errors import DeployError
from deploy.mapping import map_network, resources
from deploy.quantise import Checkpoint, QuantisedNetwork, load_checkpoint, quantise
from firmware_sim.errors import BoardError
from firmware_sim.profiles import get_profile
from firmware_sim.tables import BoardTables
from firmware_sim.tables_io import pack_tables
from protocol.image import Provenance


@dataclass(frozen=True)
class Packed:
    """A packed image and the reports that came with it."""

    data: bytes
    image: BoardTables
    network: QuantisedNetwork
    resources: dict[str, Any]
    checkpoint: Checkpoint


def git_revision() -> str:
    """The repository's HEAD (provenance), or ``unknown`` outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def load_signing_key(path: str | Path) -> Any:
    """An Ed25519 private key from a PEM file or 32 raw bytes."""

    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as error:
            raise DeployError(f"{path} is not a readable PEM private key ({error}).") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise DeployError(f"{path} holds a private key that is not Ed25519.")
        return key
    if len(data) == 32:
        return Ed25519PrivateKey.from_private_bytes(data)
    raise DeployError(f"{path} is not an Ed25519 private key (PEM or 32 raw bytes).")


def pack_checkpoint(
    checkpoint: str | Path | Checkpoint,
    profile: str = "tianjic",
    signing_key: Any = None,
    encoder_copies: int = 1,
    readout_copies: int = 1,
) -> Packed:
    """Quantise, map and pack ``checkpoint`` for ``profile`` (``encoder_copies`` and
    ``readout_copies``: see ``deploy.mapping``)."""

    ck = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    try:
        board_profile = get_profile(profile)
    except BoardError as error:
        raise DeployError(str(error)) from None
    network = quantise(ck)
    cfg = ck.policy.config
    meta = {
        "kind": cfg.kind,
        "n_obs": cfg.n_obs,
        "n_hidden": cfg.n_hidden,
        "n_act": cfg.n_act,
        "checkpoint": str(ck.path),
        "trace_unit": 1.0 / network.scales["hidden.trace_per_unit"],
    }
    image = map_network(network, board_profile, meta, encoder_copies, readout_copies)
    provenance = Provenance.now(ck.task, ck.seed, git_revision())
    data = pack_tables(image, signing_key, provenance)
    return Packed(data, image, network, resources(image, board_profile), ck)
