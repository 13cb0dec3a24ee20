"""export-onnx puts a graph at --out only once it has passed the parity check."""

from __future__ import annotations

import pytest

from deploy import onnx_export
from deploy.onnx_export import export_checked
from glocal.cli import EXIT_USAGE, main
from robot_env.errors import EnvError

PREVIOUS = b"a graph that passed an earlier parity check"


@pytest.fixture
def not_the_model(monkeypatch):
    """Exports a graph whose readout is 1 % off the model's, which parity must refuse."""
    import torch

    step_module = onnx_export.step_module

    def off_by_one_percent(policy):
        with torch.no_grad():
            policy.w_readout.mul_(1.01)  # export_onnx hands over its own copy of the policy
        return step_module(policy)

    monkeypatch.setattr(onnx_export, "step_module", off_by_one_percent)


def export(checkpoint_dir, out, *flags: str) -> int:
    return main(["export-onnx", str(checkpoint_dir), "--out", str(out), "--steps", "50", *flags])


def test_a_failed_parity_check_keeps_the_previous_file_and_leaves_no_temporary(
    checkpoint_dir, tmp_path, capsys, not_the_model
) -> None:
    out = tmp_path / "model.onnx"
    out.write_bytes(PREVIOUS)
    assert export(checkpoint_dir, out) == EXIT_USAGE
    assert out.read_bytes() == PREVIOUS
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("glocal export-onnx: error: onnxruntime and torch differ by ")
    assert "(tolerances 1e-05 and 1e-04)" in err
    assert f"nothing was written to {out}." in err


def test_a_failed_parity_check_writes_nothing_where_there_was_nothing(
    checkpoint_dir, tmp_path, not_the_model
) -> None:
    assert export(checkpoint_dir, tmp_path / "model.onnx") == EXIT_USAGE
    assert list(tmp_path.iterdir()) == []


def test_a_passing_export_replaces_the_previous_file(checkpoint_dir, tmp_path) -> None:
    out = tmp_path / "model.onnx"
    out.write_bytes(PREVIOUS)
    assert export(checkpoint_dir, out) == 0
    assert out.read_bytes().startswith(b"\x08") and out.stat().st_size > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_any_failure_of_the_check_removes_the_temporary(checkpoint, tmp_path) -> None:
    out = tmp_path / "model.onnx"
    out.write_bytes(PREVIOUS)
    with pytest.raises(EnvError, match="NoSuchEnv"):
        export_checked(checkpoint.policy, out, env_id="glocal/NoSuchEnv-v0", steps=5)
    assert out.read_bytes() == PREVIOUS
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
