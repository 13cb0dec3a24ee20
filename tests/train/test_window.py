"""The fused window against the autograd reference: same actions, same state, same gradients.

Every case runs three windows back to back (the state carried, detached, as training does) and
compares every parameter's gradient. In float64 the two engines differ only by summation order,
so they must agree to ~1e-12; each case also asserts that what it is meant to exercise happened
(spikes, clipped traces, dead neurons, a modulator that moves the rule)."""

from __future__ import annotations

import pytest
import torch

from train import snn
from train.config import TrainConfig
from train.errors import TrainError
from train.loop import train
from train.models import ChipFaults, ModelConfig, SpikingPolicy, build_policy
from train.window import AutogradWindow, FusedWindow, open_window

N_OBS, N_ACT, BATCH, STEPS, WINDOWS = 10, 2, 6, 10, 3


def make_policy(
    dtype: torch.dtype, faults: bool = False, eta: float = 0.03, **config
) -> SpikingPolicy:
    cfg = ModelConfig(config.pop("kind", "hp"), N_OBS, N_ACT, config.pop("n_hidden", 24), **config)
    policy = build_policy(cfg, seed=1).to(dtype)
    with torch.no_grad():  # a rule strong enough that the trace matters
        if policy.plastic:
            policy.eta_pre.fill_(eta)
            policy.alpha.fill_(0.5)
            if cfg.modulator:
                policy.mod_levels.copy_(torch.tensor([0.4, 1.7]))
    if faults:
        drawn = ChipFaults.sample(cfg, BATCH, 0.2, 0.2, torch.Generator().manual_seed(3), 1.0)
        policy.chip_faults = ChipFaults(
            drawn.hidden_keep.to(dtype),
            drawn.readout_keep.to(dtype),
            drawn.hidden_alive.to(dtype),
            drawn.faulty,
        )
    return policy


def run(
    policy: SpikingPolicy,
    engine: str,
    observations: torch.Tensor,
    trace: bool,
    windows: int = WINDOWS,
):
    """Gradients, actions and final states of ``windows`` windows on ``engine``."""
    policy.zero_grad()
    state = policy.initial_state(observations.shape[1])
    actions, states = [], []
    for _ in range(windows):
        window = open_window(policy, state, observations.shape[0], engine, trace)
        for obs in observations:
            window.step(obs)
        action, trace_sq, state = window.finish()
        loss = action.abs().mean() + (1e-3 * trace_sq.mean() if trace else 0.0)
        loss.backward()
        actions.append(action.detach())
        states.append(state)
    grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}
    return grads, torch.stack(actions), states


def observations(dtype: torch.dtype, batch: int = BATCH, steps: int = STEPS) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(steps, batch, N_OBS, generator=generator) * 1.5).to(dtype)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max().clamp(min=1e-30))


CASES = {
    "float": dict(),
    "float, chip faults, modulator": dict(faults=True, modulator=True),
    "float, integral readout, hard reset": dict(integral_shift=6, reset="hard"),
    "float, clip active": dict(h_max=0.05, eta=0.3),
    "gp": dict(kind="gp", faults=True),
    "lp, modulator": dict(kind="lp", modulator=True),
    "board": dict(quantized=True),
    "board, chip faults, modulator": dict(quantized=True, faults=True, modulator=True),
    "board, integral readout, clip active": dict(
        quantized=True, integral_shift=6, h_max=0.05, eta=0.3
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_fused_gradients_match_autograd_in_float64(case: str, monkeypatch) -> None:
    config = dict(CASES[case])
    policy = make_policy(torch.float64, **config)
    obs = observations(torch.float64)
    trace = policy.plastic and not policy.config.quantized
    clipped = []
    clip = snn.ClipAdd.apply

    def watched(h: torch.Tensor, hebb: torch.Tensor, h_max: torch.Tensor) -> torch.Tensor:
        clipped.append(bool(((h + hebb).abs() > h_max).any()))
        return clip(h, hebb, h_max)

    monkeypatch.setattr(snn.ClipAdd, "apply", watched)
    reference, ref_actions, ref_states = run(policy, "autograd", obs, trace)
    fused, actions, states = run(policy, "fused", obs, trace)

    assert reference.keys() == fused.keys()
    assert ("w_hidden" in fused) != case.startswith("lp")  # LP keeps its hidden weights fixed
    for name, grad in reference.items():
        assert grad.abs().max() > 0, f"{name} got no gradient: the case tests nothing there"
        assert relative(grad, fused[name]) < 1e-10, name
    assert torch.allclose(ref_actions, actions, rtol=0, atol=1e-9)
    for ref_state, state in zip(ref_states, states, strict=True):
        for ref_layer, layer in zip(ref_state, state, strict=True):
            for ref_t, t in zip(ref_layer, layer, strict=True):
                assert torch.allclose(ref_t, t, rtol=0, atol=1e-9)

    hidden = states[-1].hidden
    assert 0 < float(hidden.spikes.mean()) < 1
    if policy.config.quantized:  # the board's integers: exactly the reference's
        assert torch.equal(ref_actions, actions)
    assert any(clipped) == ("clip active" in case)
    if config.get("faults"):
        assert (policy.chip_faults.hidden_alive == 0).any()


def test_fused_float32_gradients_agree_on_the_demo_shape() -> None:
    policy = make_policy(torch.float32, faults=False, n_hidden=64, ticks=8, lam_logit=5.0)
    obs = observations(torch.float32, batch=16, steps=40)
    reference, _, _ = run(policy, "autograd", obs, True, windows=1)
    fused, _, _ = run(policy, "fused", obs, True, windows=1)
    for name, grad in reference.items():
        assert relative(grad, fused[name]) < 1e-5, name


def test_auto_picks_the_fused_engine_for_spiking_policies_on_the_cpu() -> None:
    obs = observations(torch.float32)
    spiking = make_policy(torch.float32)
    window = open_window(spiking, spiking.initial_state(BATCH), 2, "auto", False)
    assert isinstance(window, FusedWindow)
    lstm = build_policy(ModelConfig("lstm", N_OBS, N_ACT, 8))
    window = open_window(lstm, lstm.initial_state(BATCH), 2, "auto", False)
    assert isinstance(window, AutogradWindow)
    window.step(obs[0])
    assert window.finish()[0].shape == (1, BATCH, N_ACT)
    with pytest.raises(TrainError, match="fused engine runs the hp, gp and lp"):
        open_window(lstm, lstm.initial_state(BATCH), 2, "fused", False)
    with pytest.raises(TrainError, match="engine must be one of"):
        open_window(spiking, spiking.initial_state(BATCH), 2, "jit", False)


def test_a_fused_window_refuses_more_steps_than_it_holds_and_may_end_early() -> None:
    policy = make_policy(torch.float32)
    window = open_window(policy, policy.initial_state(BATCH), 1, "fused", False)
    window.step(observations(torch.float32)[0])
    with pytest.raises(TrainError, match="holds 1 control steps"):
        window.step(observations(torch.float32)[0])
    early = open_window(policy, policy.initial_state(BATCH), 5, "fused", False)
    for obs in observations(torch.float32)[:2]:
        early.step(obs)
    actions, _, _ = early.finish()
    assert actions.shape == (2, BATCH, N_ACT)
    actions.abs().mean().backward()
    assert policy.w_hidden.grad.abs().max() > 0


def test_training_on_either_engine_follows_the_same_losses(tmp_path) -> None:
    tiny = dict(batch=4, window=5, episode_steps=10, n_hidden=8, ticks=2, validate_every=10)
    common = dict(model="hp", steps=4, trace_penalty=1.0, stuck_synapses=0.2, **tiny)
    losses = {}
    for engine in ("fused", "autograd"):
        summary = train(TrainConfig(engine=engine, **common), tmp_path / engine)
        losses[engine] = summary["final_loss"]
    assert losses["fused"] == pytest.approx(losses["autograd"], rel=1e-4)


def test_the_fused_engine_is_refused_where_it_cannot_run() -> None:
    with pytest.raises(TrainError, match="--engine fused runs hp, gp and lp on the CPU"):
        TrainConfig(model="lstm", engine="fused")
