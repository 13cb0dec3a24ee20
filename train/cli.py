"""``glocal`` verbs owned by ``train``."""

from __future__ import annotations

import argparse


def register(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """Add this package's verbs (none yet)."""
