"""One checkpoint, three engines: torch, onnxruntime and the board agree as the issue asks."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

import robot_env
from deploy.engines import BoardController, TorchController, in_process_board
from deploy.faults import route_faults
from deploy.onnx_export import export_onnx, parity
from deploy.pack import pack_checkpoint
from deploy.quantise import quantise
from deploy.runner import run
from glocal.cli import main

ENV = "glocal/ArmReach-v0"


@pytest.fixture(scope="module")
def board(checkpoint):
    packed = pack_checkpoint(checkpoint, "tianjic")
    client = in_process_board(packed.data, tempfile.mkdtemp(), "tianjic")
    return BoardController(client, packed.image.meta["trace_unit"])


def test_torch_and_onnxruntime_agree_to_1e5_over_an_episode(checkpoint, tmp_path) -> None:
    path = export_onnx(checkpoint.policy, tmp_path / "model.onnx")
    result = parity(checkpoint.policy, path, ENV, steps=200, seed=3)
    assert result["steps"] == 200
    assert result["max_action_diff"] <= 1e-5 and result["max_state_diff"] <= 1e-5


def test_export_onnx_cli_runs_the_parity_check(checkpoint_dir, tmp_path, capsys) -> None:
    code = main(["export-onnx", str(checkpoint_dir), "--out", str(tmp_path / "m.onnx")])
    assert code == 0 and (tmp_path / "m.onnx").stat().st_size > 1000
    assert "onnxruntime vs torch over 300 steps" in capsys.readouterr().err


def open_loop(controller, observations: np.ndarray) -> np.ndarray:
    controller.set_learning(True)
    controller.reset()
    return np.array([controller.step(obs) for obs in observations])


def test_board_is_torch_with_board_numerics_and_adds_nothing_to_quantisation(
    checkpoint, board
) -> None:
    env = robot_env.make(ENV)
    obs, _ = env.reset(seed=1)
    teacher = robot_env.make_teacher(env, fault_aware=False)
    seen = []
    for _ in range(150):
        seen.append(obs)
        obs, *_ = env.step(teacher(obs))
    seen = np.array(seen)
    a_board = open_loop(board, seen)
    a_twin = open_loop(TorchController(checkpoint.policy, quantised=True), seen)
    a_float = open_loop(TorchController(checkpoint.policy), seen)
    # The board equals train's board numerics up to its int16 decoder weight (a few 1e-5).
    assert np.max(np.abs(a_board - a_twin)) < 1e-4
    # So the board is as far from float torch as quantisation itself puts it, no further.
    budget = np.sqrt(np.mean((a_twin - a_float) ** 2))
    assert np.sqrt(np.mean((a_board - a_float) ** 2)) <= budget + 1e-4
    # The budget itself is a property of the network (a spike that crosses its threshold one
    # tick earlier moves an action a lot), not a bound worth asserting on a tiny 8-update net;
    # what quantisation must guarantee is that no table clips and the weights round closely.
    for layer in quantise(checkpoint).report["layers"].values():
        assert layer["weights"]["clipped"] == 0
        assert layer["weights"]["relative"] < 0.05


def test_board_return_within_5_percent_of_torch_on_the_nominal_task(checkpoint, board) -> None:
    nominal = route_faults([])
    on_board = run(board, ENV, nominal, episodes=4, seed=10, steps=200)
    in_torch = run(TorchController(checkpoint.policy), ENV, nominal, episodes=4, seed=10, steps=200)
    r_board = on_board.summary()["return_mean"]
    r_torch = in_torch.summary()["return_mean"]
    assert abs(r_board - r_torch) <= 0.05 * abs(r_torch)


def test_learning_off_freezes_the_trace_on_every_engine(checkpoint, board) -> None:
    obs = np.random.default_rng(0).uniform(-1, 1, (20, checkpoint.policy.config.n_obs))
    for controller in (board, TorchController(checkpoint.policy)):
        controller.set_learning(False)
        controller.reset()
        for x in obs:
            controller.step(x)
        assert not np.any(controller.probe()["trace"])
        controller.set_learning(True)
        controller.reset()
        for x in obs:
            controller.step(x)
        assert np.any(controller.probe()["trace"])


def test_parity_catches_an_export_that_is_not_the_model(checkpoint, tmp_path) -> None:
    import copy

    import torch

    from deploy.errors import ParityError

    path = export_onnx(checkpoint.policy, tmp_path / "model.onnx")
    other = copy.deepcopy(checkpoint.policy)
    with torch.no_grad():
        other.w_readout.mul_(1.01)  # a 1 % change: far above float32's floor, far below a bug's
    with pytest.raises(ParityError, match="not the model"):
        parity(other, path, ENV, steps=50, seed=3)


def test_board_with_encoder_copies_probes_the_checkpoints_trace(checkpoint, board) -> None:
    packed = pack_checkpoint(checkpoint, "tianjic", encoder_copies=3)
    copied = BoardController.for_image(
        in_process_board(packed.data, tempfile.mkdtemp(), "tianjic"), packed.image.meta
    )
    observations = np.random.default_rng(4).uniform(-1, 1, (25, packed.network.n_obs))
    np.testing.assert_array_equal(open_loop(copied, observations), open_loop(board, observations))
    probed, plain = copied.probe()["trace"], board.probe()["trace"]
    assert probed.shape == (packed.network.n_obs + packed.network.n_hidden, plain.shape[1])
    assert np.abs(plain).sum() > 0
    np.testing.assert_array_equal(probed, plain)
