"""``glocal`` verbs owned by ``protocol``: ``inspect``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """Add ``glocal inspect IMAGE``."""
    inspect = subparsers.add_parser(
        "inspect",
        parents=parents,
        help="summarise a core image: cores, neurons, synapses, section sizes, hash, signature",
        description=(
            "Read a core image (.glc), check its magic, version, SHA-256 and (with --key) its "
            "signature, and print what it holds."
        ),
    )
    inspect.add_argument("image", help="the core image file")
    inspect.add_argument(
        "--key", help="Ed25519 public key (PEM, 32 raw bytes or hex) the signature must verify"
    )
    inspect.set_defaults(handler=inspect_command)


def inspect_command(args: argparse.Namespace) -> dict[str, Any]:
    from protocol.image import load_public_key, open_image, summarize

    public_key = load_public_key(args.key) if args.key else None
    summary = summarize(open_image(Path(args.image).read_bytes(), public_key))
    summary["file"] = str(args.image)
    if not args.json:
        print(render(summary), file=sys.stderr)
    return summary


def render(summary: dict[str, Any]) -> str:
    """The human view of an image summary."""
    p = summary["provenance"]
    lines = [
        f"{summary['file']}: core image format {summary['format']}, {summary['bytes']} bytes",
        f"  profile     {summary['profile']}",
        f"  provenance  task {p['task']}, seed {p['seed']}, git {p['git_revision']}, "
        f"created {p['created']}",
        f"  cores {summary['cores']}, neurons {summary['neurons']}, axons {summary['axons']}, "
        f"synapses {summary['synapses']}",
        "  core  axons  neurons  synapses  bytes",
    ]
    lines += [
        f"  {c['core_id']:>4}  {c['n_axons']:>5}  {c['n_neurons']:>7}  {c['synapses']:>8}  "
        f"{c['bytes']:>5}"
        for c in summary["per_core"]
    ]
    sizes = ", ".join(f"{name} {size}" for name, size in summary["section_bytes"].items())
    lines += [
        f"  section bytes: {sizes}",
        f"  sha256      {summary['sha256']}",
        f"  signature   {summary['signature']}",
    ]
    return "\n".join(lines)
