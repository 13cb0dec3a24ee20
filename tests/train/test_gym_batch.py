"""GymBatch (Reacher-v5 with a moving target) against hand-stepped robot_env envs, fault timing,
teachers, staggered targets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytestmark = pytest.mark.mujoco

import robot_env  # noqa: E402
from train.fault_batch import FaultBatch, fault_spec  # noqa: E402
from train.gym_batch import GymBatch  # noqa: E402

KINDS = np.array(["gain-loss", "bias-torque", "none"])


def faults(onset: int = 2) -> FaultBatch:
    return FaultBatch(KINDS, np.array([1, 0, 0]), np.array([0.3, 0.07, 0.0]), np.full(3, onset))


def hand_envs(batch: FaultBatch, seed: int, steps: int) -> tuple[list, list]:
    """The envs GymBatch should hold, built and seeded by hand (no stagger: phase 0), and their
    first observations; fewer than 50 steps, so no target moves."""
    env_seeds = np.random.default_rng(seed).integers(0, 2**31, batch.kind.shape[0])
    envs, observations = [], []
    for i, env_seed in enumerate(env_seeds):
        row = (batch.kind[i], batch.joint[i], batch.magnitude[i], batch.onset[i])
        spec = fault_spec(*row)
        env = robot_env.make(
            robot_env.REACHER_MOVING_TARGET, [spec] if spec else [], max_episode_steps=steps
        )
        observations.append(env.reset(seed=int(env_seed))[0])
        envs.append(env)
    return envs, observations


def test_gym_batch_steps_exactly_like_hand_stepped_fault_wrapped_envs() -> None:
    batch = faults()
    gym_batch = GymBatch(batch, seed=7, steps=20)
    envs, first = hand_envs(batch, 7, 20)
    np.testing.assert_array_equal(gym_batch.observe(), np.stack(first).astype(np.float32))
    actions = np.random.default_rng(1).uniform(-1, 1, (12, 3, 2)).astype(np.float32)
    for action in actions:
        expected = [env.step(a) for env, a in zip(envs, action, strict=True)]
        obs, reward = gym_batch.step(action)
        np.testing.assert_array_equal(obs, np.stack([e[0] for e in expected]).astype(np.float32))
        np.testing.assert_array_equal(reward, [e[1] for e in expected])
    assert gym_batch.t == 12


def test_fault_onset_acts_on_its_step() -> None:
    onset = 5
    faulted = GymBatch(
        FaultBatch(np.array(["reversed-motor"]), np.array([0]), np.array([-1.0]), np.array([5])),
        seed=3,
        steps=20,
    )
    healthy = GymBatch(
        FaultBatch(np.array(["none"]), np.array([0]), np.array([0.0]), np.array([5])),
        seed=3,
        steps=20,
    )
    action = np.array([[0.5, 0.2]], np.float32)
    for t in range(onset + 2):
        assert faulted.active[0] == (t >= onset)
        seen_faulted, seen_healthy = faulted.step(action)[0], healthy.step(action)[0]
        # the observation after step t differs once step t's action went through the fault
        assert np.array_equal(seen_faulted, seen_healthy) == (t < onset), t


def test_teachers_act_as_robot_env_make_teacher() -> None:
    batch = faults(onset=3)
    gym_batch = GymBatch(batch, seed=11, steps=20)
    envs, obs = hand_envs(batch, 11, 20)
    teachers = {aware: [robot_env.make_teacher(env, aware) for env in envs] for aware in (0, 1)}
    for t in range(8):
        for aware in (False, True):
            expected = np.stack([teach(o) for teach, o in zip(teachers[aware], obs, strict=True)])
            np.testing.assert_array_equal(gym_batch.teacher(aware), expected)
        action = gym_batch.teacher(t % 2 == 0)  # alternate, so both teachers steer
        gym_batch.step(action)
        obs = [env.step(a)[0] for env, a in zip(envs, action, strict=True)]


def test_staggered_episodes_move_their_targets_every_50_steps_on_their_own_phase() -> None:
    batch = FaultBatch(np.array(["none"] * 3), np.zeros(3, int), np.zeros(3), np.zeros(3, int))
    gym_batch = GymBatch(batch, seed=5, stagger=True, steps=120)
    phases = [env.unwrapped.phase for env in gym_batch.envs]
    assert len(set(phases)) > 1
    targets = [gym_batch.observe()[:, 4:6]]
    for _ in range(120):
        obs, _ = gym_batch.step(gym_batch.teacher(True))
        targets.append(obs[:, 4:6])
    moved = np.any(np.diff(np.stack(targets), axis=0) != 0, axis=2)  # (steps, B)
    for i, phase in enumerate(phases):
        expected = [t for t in range(1, 121) if (t + phase) % 50 == 0]
        assert list(np.flatnonzero(moved[:, i]) + 1) == expected


def test_three_reacher_updates_write_a_checkpoint_that_names_the_task(tmp_path: Path) -> None:
    from train.checkpoint import read_checkpoint
    from train.loop import TrainConfig, train

    cfg = TrainConfig(
        task="Reacher-v5",
        model="hp",
        steps=3,
        batch=2,
        window=5,
        episode_steps=10,
        n_hidden=8,
        ticks=2,
        validate_every=3,
    )
    summary = train(cfg, tmp_path)
    assert np.isfinite(summary["final_loss"]) and np.isfinite(summary["final_val_return"])
    assert json.loads((tmp_path / "config.json").read_text())["train"]["task"] == "Reacher-v5"
    record = read_checkpoint(tmp_path)
    assert record["train"]["task"] == "Reacher-v5"
    assert record["network"]["w_hidden"].shape == (10 + 8, 8)
