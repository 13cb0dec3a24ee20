"""The mechanism study's candidates: each starts as its plain counterpart, and learning off
really stops both the trace and the intrinsic gain."""

import pytest
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


@pytest.mark.parametrize("modulation", ["threshold", "gain"])
def test_with_zero_gain_each_modulated_candidate_is_today_hp(modulation):
    obs = observations()
    plain, _ = rollout(build_policy(ModelConfig("hp", 10, 2, n_hidden=16), seed=3).eval(), obs)
    gated, state = rollout(candidate(modulation), obs)
    # the signed gain scales the current through per-sample weights: equal up to summation order
    assert torch.allclose(plain, gated, rtol=0, atol=1e-5 if modulation == "gain" else 0)
    assert state.rate.shape == (3, MODULATORS) and state.rate.abs().sum() > 0


@pytest.mark.parametrize("modulation", ["threshold", "gain"])
def test_learning_off_stops_the_modulation_and_the_trace(modulation):
    obs = observations()
    policy = candidate(modulation)
    with torch.no_grad():  # strong enough that some signed gains reverse a neuron's input
        policy.gain.normal_(0.0, 3.0, generator=torch.Generator().manual_seed(0))
    on, on_state = rollout(policy, obs)
    policy.learning = False
    off, off_state = rollout(policy, obs)
    frozen_policy = candidate(None)
    frozen_policy.learning = False
    frozen, _ = rollout(frozen_policy, obs)
    assert not torch.allclose(on, off)  # the modulation acts when learning is on
    # and off is the frozen plain network (exactly, where nothing is scaled per sample)
    assert torch.allclose(off, frozen, rtol=0, atol=1e-5 if modulation == "gain" else 0)
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
