"""The float step: surrogate gradient, the plastic trace by hand, gradcheck through plasticity."""

from __future__ import annotations

import pytest
import torch

from train.snn import (
    ClipAdd,
    LayerParams,
    LayerState,
    PlasticParams,
    init_layer_state,
    layer_step,
    spike,
)


def test_spike_fires_at_threshold_and_has_a_rectangular_gradient() -> None:
    u = torch.tensor([-0.6, -0.5, -0.2, 0.0, 0.3, 0.49, 0.7], requires_grad=True)
    s = spike(u, 1.0)
    assert s.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]  # >=, so u == 0 fires
    s.sum().backward()
    assert u.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_surrogate_width_scales_height_and_support() -> None:
    u = torch.tensor([-1.5, -0.9, 0.9, 1.5], requires_grad=True)
    spike(u, 2.0).sum().backward()
    assert u.grad.tolist() == [0.0, 0.5, 0.5, 0.0]


def _tiny_layer(reset: str = "soft") -> LayerParams:
    rule = PlasticParams(
        alpha=torch.tensor(0.5),
        lam=torch.tensor(0.5),
        eta_pre=torch.tensor([0.2, 0.4]),
        beta_post=torch.tensor([0.25, 0.5]),
        h_max=torch.tensor([[1.0], [1.0]]),
    )
    return LayerParams(
        w=torch.tensor([[1.0, 0.2], [0.5, -0.4]]),
        theta=torch.tensor([1.0, 1.0]),
        decay_shift=1,
        reset=reset,
        plastic=rule,
    )


def test_one_plastic_tick_matches_a_hand_computation() -> None:
    params = _tiny_layer()
    state = LayerState(
        v_mem=torch.tensor([[0.4, 0.2]]),
        spikes=torch.zeros(1, 2),
        h=torch.tensor([[[0.2, -0.4], [0.0, 0.6]]]),
        age=torch.zeros(1, 2),
    )
    x = torch.tensor([[1.0, 0.0]])
    new = layer_step(x, state, params)
    # decay: H = 0.5 * H = [[0.1, -0.2], [0, 0.3]]
    # current: x . (W + 0.5 H) = [1 + 0.05, 0.2 - 0.1] = [1.05, 0.1]
    # leak (shift 1) and add: v = [0.2 + 1.05, 0.1 + 0.1] = [1.25, 0.2]
    # fire (theta 1): s = [1, 0]; soft reset: v = [0.25, 0.2]
    assert new.spikes.tolist() == [[1.0, 0.0]]
    assert torch.allclose(new.v_mem, torch.tensor([[0.25, 0.2]]))
    # Hebbian: eta_i x_i (s_j - beta_j): row 0: 0.2 * [0.75, -0.5] = [0.15, -0.1]; row 1 idle
    expected_h = torch.tensor([[[0.25, -0.3], [0.0, 0.3]]])
    assert torch.allclose(new.h, expected_h)


def test_trace_is_clipped_at_h_max_and_hard_reset_zeroes() -> None:
    params = _tiny_layer("hard")
    state = init_layer_state(params, 1)
    state = state._replace(h=torch.tensor([[[1.9, 1.9], [0.0, 0.0]]]))
    new = layer_step(torch.tensor([[5.0, -5.0]]), state, params)
    # currents: 5 * (W_0 + 0.5 * 0.95) - 5 * W_1 = [4.875, 5.375]: both fire, both reset to 0
    assert new.spikes.tolist() == [[1.0, 1.0]]
    assert new.v_mem.tolist() == [[0.0, 0.0]]
    # row 0: 0.95 + 0.2 * 5 * [0.75, 0.5] > 1; row 1: 0.4 * -5 * [0.75, 0.5] < -1
    assert new.h[0].tolist() == [[1.0, 1.0], [-1.0, -1.0]]


def test_gradcheck_through_three_plastic_steps() -> None:
    """Neurons are kept far from the surrogate window (one never fires, one always does), where
    the surrogate and the true derivative agree, so finite differences check every other path:
    integration, leak, reset, decay and the Hebbian trace."""
    g = torch.Generator().manual_seed(0)
    dt = torch.float64
    n_pre, n_post = 3, 2
    x_seq = torch.rand(3, 2, n_pre, generator=g, dtype=dt)
    w = torch.randn(n_pre, n_post, generator=g, dtype=dt).requires_grad_()
    alpha = torch.tensor(0.7, dtype=dt, requires_grad=True)
    lam = torch.tensor(0.8, dtype=dt, requires_grad=True)
    eta = torch.rand(n_pre, generator=g, dtype=dt).requires_grad_()
    beta = torch.rand(n_post, generator=g, dtype=dt).requires_grad_()
    theta = torch.tensor([50.0, -50.0], dtype=dt)

    def run(w, alpha, lam, eta, beta):
        rule = PlasticParams(alpha, lam, eta, beta, torch.full((n_pre, 1), 10.0, dtype=dt))
        params = LayerParams(w=w, theta=theta, decay_shift=2, plastic=rule)
        state = init_layer_state(params, 2)
        outs = []
        for x in x_seq:
            state = layer_step(x, state, params)
            outs.append(state.v_mem)
        return torch.stack(outs), state.h

    assert torch.autograd.gradcheck(run, (w, alpha, lam, eta, beta))
    v, h = run(w, alpha, lam, eta, beta)
    assert h.abs().sum() > 0  # the trace did move
    # far from the window at every tick (soft reset keeps the always-firing one far above)
    assert (v[..., 0] < theta[0] - 1).all()


def test_trace_clip_gradient_passes_inside_and_stops_where_clipped() -> None:
    """The fused clip against finite differences (float64, no entry at the edge) and against
    autograd's minimum/maximum on values on both sides of +-h_max."""
    g = torch.Generator().manual_seed(3)
    dt = torch.float64
    h = (torch.rand(2, 3, 4, generator=g, dtype=dt) * 4 - 2).requires_grad_()
    hebb = (torch.rand(2, 3, 4, generator=g, dtype=dt) - 0.5).requires_grad_()
    h_max = torch.tensor([[0.5], [1.0], [1.5]], dtype=dt)
    assert ((h + hebb).abs() - h_max).abs().min() > 1e-3  # finite differences stay on one side
    assert torch.autograd.gradcheck(lambda a, b: ClipAdd.apply(a, b, h_max), (h, hebb))

    out = ClipAdd.apply(h, hebb, h_max)
    reference = torch.minimum(torch.maximum(h + hebb, -h_max), h_max)
    assert torch.equal(out, reference)
    grad_out = torch.rand(out.shape, generator=g, dtype=dt)
    ours = torch.autograd.grad(out, (h, hebb), grad_out)
    theirs = torch.autograd.grad(reference, (h, hebb), grad_out)
    clipped = (h + hebb).abs() > h_max
    assert clipped.any() and (~clipped).any()
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
        assert (a[clipped] == 0).all()


@pytest.mark.parametrize("reset", ["soft", "hard"])
def test_surrogate_gradient_reaches_weights_through_spikes(reset: str) -> None:
    params = _tiny_layer(reset)
    w = params.w.clone().requires_grad_()
    from dataclasses import replace

    state = init_layer_state(params, 1)
    total = 0.0
    for _ in range(4):
        state = layer_step(torch.tensor([[0.6, 0.3]]), state, replace(params, w=w))
        total = total + state.spikes.sum()
    total.backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_integral_readout_answers_a_lasting_drive_gain_times_more_strongly() -> None:
    """A slow readout neuron (shift 8) fed what its fast twin (shift 2) is fed: at first it adds
    little, and in the steady state it adds ``integral_gain`` times the fast neuron's share."""
    from train.models import ModelConfig, build_policy

    config = ModelConfig("gp", n_obs=1, n_act=1, n_hidden=1, ticks=1, integral_shift=8)
    policy = build_policy(config).double().requires_grad_(False)
    policy.w_readout.copy_(torch.tensor([[0.5, 0.5]]))
    readout, gains = policy.net_params().readout, policy.readout_gains()
    drive = torch.ones(1, 1, dtype=torch.float64)  # the hidden neuron spiking every tick
    state = init_layer_state(readout, 1)
    shares = []
    for _ in range(4000):
        state = layer_step(drive, state, readout)
        shares.append((state.v_mem * gains).squeeze(0))
    first, last = shares[0], shares[-1]
    assert float(first[1]) == pytest.approx(float(first[0]) / 16)  # gain 4 * 2**(2 - 8)
    assert float(last[1]) == pytest.approx(4.0 * float(last[0]), rel=1e-3)
