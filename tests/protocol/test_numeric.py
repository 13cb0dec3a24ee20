"""The board's numbers are declared in protocol.numeric and nowhere else."""

from __future__ import annotations

import ast
from pathlib import Path

from protocol import numeric

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = {name for name in vars(numeric) if name.isupper()}


def module_level_names(path: Path) -> set[str]:
    """Names a module assigns at its top level (plain, annotated and tuple assignments)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            elements = target.elts if isinstance(target, ast.Tuple) else [target]
            names |= {e.id for e in elements if isinstance(e, ast.Name)}
    return names


def test_no_product_module_declares_a_contract_number_again() -> None:
    again = {
        f"{path.relative_to(ROOT)}: {name}"
        for package in (
            "protocol",
            "firmware_sim",
            "train",
            "deploy",
            "robot_env",
            "glocal",
            "studies",
            "benchmarks",
        )
        for path in (ROOT / package).rglob("*.py")
        if path != ROOT / "protocol" / "numeric.py"
        for name in module_level_names(path) & CONTRACT
    }
    assert not again, f"declared outside protocol/numeric.py: {sorted(again)}"


def test_the_contract_is_pure_python() -> None:
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse((ROOT / "protocol" / "numeric.py").read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])
    }
    assert imported <= {"__future__", "functools"}


def test_derived_limits_follow_the_widths() -> None:
    assert (numeric.WEIGHT_MIN, numeric.WEIGHT_MAX) == (-128, 127)
    assert (numeric.V_MIN, numeric.V_MAX) == (-(2**23), 2**23 - 1)
    assert (numeric.W_EFF_MIN, numeric.W_EFF_MAX) == (-(2**15), 2**15 - 1)
    assert numeric.ENC_SHIFT == 24 and numeric.LAMBDA_ONE == 65536 and numeric.MOD_ONE == 256
