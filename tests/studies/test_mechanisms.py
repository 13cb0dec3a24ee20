"""The mechanism study's candidates: each starts as its plain counterpart, and learning off
really stops both the trace and the intrinsic gain."""

import torch

from studies.mechanisms import MODULATORS, MechanismPolicy
from train.models import ModelConfig, build_policy


def rollout(policy, obs):
    state = policy.initial_state(obs.shape[1])
    actions = []
    with torch.no_grad():
        for x in obs:
            action, state = policy(x, state)
            actions.append(action)
    return torch.stack(actions), state


def candidate(modulation: str | None, kind: str = "hp") -> MechanismPolicy:
    config = ModelConfig(kind, n_obs=10, n_act=2, n_hidden=16)
    policy = MechanismPolicy(config, modulation, torch.Generator().manual_seed(3))
    policy.load_state_dict(build_policy(config, seed=3).state_dict(), strict=False)
    return policy.eval()


def observations(steps: int = 12, batch: int = 3) -> torch.Tensor:
    return torch.randn(steps, batch, 10, generator=torch.Generator().manual_seed(1))


def test_with_zero_gain_the_intrinsic_candidate_is_today_hp():
    obs = observations()
    plain, _ = rollout(build_policy(ModelConfig("hp", 10, 2, n_hidden=16), seed=3).eval(), obs)
    gated, state = rollout(candidate("threshold"), obs)
    assert torch.equal(plain, gated)
    assert state.rate.shape == (3, MODULATORS) and state.rate.abs().sum() > 0


def test_learning_off_stops_the_gain_and_the_trace():
    obs = observations()
    policy = candidate("threshold")
    with torch.no_grad():
        policy.gain.normal_(0.0, 2.0, generator=torch.Generator().manual_seed(0))
    on, on_state = rollout(policy, obs)
    policy.learning = False
    off, off_state = rollout(policy, obs)
    frozen_policy = candidate(None)
    frozen_policy.learning = False
    frozen, _ = rollout(frozen_policy, obs)
    assert not torch.allclose(on, off)  # the gain acts when learning is on
    assert torch.equal(off, frozen)  # and off is the frozen plain network exactly
    assert off_state.net.hidden.h.abs().sum() == 0 and on_state.net.hidden.h.abs().sum() > 0


def test_train_builds_the_study_candidate(tmp_path):
    from studies.mechanisms import build
    from train.checkpoint import load_record
    from train.config import TrainConfig
    from train.loop import train

    cfg = TrainConfig(model="hp", steps=2, batch=2, window=4, n_hidden=8, episode_steps=20)
    train(cfg, tmp_path, resume=False, build_policy=build("hp-ip"))
    state = load_record(tmp_path / "model.pt")["state_dict"]
    assert state["gain"].shape == (8, MODULATORS)


def test_the_plain_candidates_train_fused_and_load_as_mechanism_policies(tmp_path):
    from studies.mechanisms import build, load_candidate
    from train.config import TrainConfig
    from train.loop import train
    from train.models import SpikingPolicy

    policy = build("hp")(ModelConfig("hp", 10, 2, 8))
    assert type(policy) is SpikingPolicy  # what open_window runs fused
    cfg = TrainConfig(model="hp", steps=2, batch=2, window=4, n_hidden=8, episode_steps=20)
    folder = tmp_path / "hp-seed0"
    train(cfg, folder, resume=False, build_policy=build("hp"))
    loaded = load_candidate(folder)
    assert isinstance(loaded, MechanismPolicy) and not loaded.intrinsic


def test_with_zero_gain_the_signed_gain_candidate_is_today_hp_and_learning_off_stops_it():
    obs = observations()
    plain, _ = rollout(build_policy(ModelConfig("hp", 10, 2, n_hidden=16), seed=3).eval(), obs)
    policy = candidate("gain")
    gated, _ = rollout(policy, obs)
    assert torch.allclose(plain, gated, atol=1e-5)
    with torch.no_grad():  # a gain that reverses some neurons' input
        policy.gain.normal_(0.0, 3.0, generator=torch.Generator().manual_seed(0))
    on, _ = rollout(policy, obs)
    policy.learning = False
    off, _ = rollout(policy, obs)
    frozen_policy = candidate(None)
    frozen_policy.learning = False
    frozen, _ = rollout(frozen_policy, obs)
    assert not torch.allclose(on, off)
    assert torch.allclose(off, frozen, atol=1e-5)
