"""CMD and the MI bound against values worked out by hand."""

import math

import numpy as np
import pytest
import torch

from msa.losses import (
    EntropyEstimator,
    GaussianPredictor,
    MIBound,
    cmd,
    covariance_logdet,
    gaussian_log_likelihood,
    mixture_entropy,
    task_loss,
)


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_cmd_hand_computed_moments():
    # x: mean 0.3, centred (-0.1, 0.1): C2 = 0.01, C3 = 0, C4 = 1e-4, C5 = 0. y: mean 0.6, all C_k = 0.
    x, y = t([[0.2], [0.4]]), t([[0.6], [0.6]])
    assert cmd(x, y, k=5).item() == pytest.approx(0.3 + 0.01 + 1e-4, abs=1e-12)
    assert cmd(x, y, k=2).item() == pytest.approx(0.3 + 0.01, abs=1e-12)
    assert cmd(x, y, k=1).item() == pytest.approx(0.3, abs=1e-12)
    # the k-th term is divided by |b - a|^k
    assert cmd(x, y, k=5, bounds=(0, 2)).item() == pytest.approx(0.3 / 2 + 0.01 / 4 + 1e-4 / 16, abs=1e-12)


def test_cmd_uses_l2_norm_over_dimensions_and_is_symmetric():
    # per dimension: mean diff 0, C2 = 0.25, C4 = 0.0625; two equal dims -> each norm * sqrt(2)
    x, y = t([[0.0, 0.0], [1.0, 1.0]]), t([[0.5, 0.5], [0.5, 0.5]])
    assert cmd(x, y).item() == pytest.approx(math.sqrt(2) * (0.25 + 0.0625), abs=1e-12)
    assert cmd(y, x).item() == pytest.approx(cmd(x, y).item(), abs=1e-12)


def test_cmd_of_identical_inputs_is_zero_with_finite_gradients():
    x = torch.rand(8, 4, dtype=torch.float64, requires_grad=True)
    y = x.detach().clone().requires_grad_(True)
    loss = cmd(x, y)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()


def test_cmd_rejects_mismatched_widths():
    with pytest.raises(ValueError, match="cmd expects"):
        cmd(torch.rand(3, 2), torch.rand(3, 4))


def test_gaussian_log_likelihood_is_the_full_density():
    # log N(1; 0, e^0) = -1/2 (1 + log 2 pi); with var = e^2: -1/2 (1/e^2 + 2 + log 2 pi)
    y, mean = t([[1.0]]), t([[0.0]])
    assert gaussian_log_likelihood(y, mean, t([[0.0]])).item() == pytest.approx(-0.5 * (1 + math.log(2 * math.pi)))
    assert gaussian_log_likelihood(y, mean, t([[2.0]])).item() == pytest.approx(
        -0.5 * (math.exp(-2) + 2 + math.log(2 * math.pi))
    )
    # summed over dimensions
    two = gaussian_log_likelihood(t([[1.0, 1.0]]), t([[0.0, 0.0]]), t([[0.0, 0.0]])).item()
    assert two == pytest.approx(-(1 + math.log(2 * math.pi)))


def test_predictor_with_fixed_outputs_matches_formula():
    q = GaussianPredictor(3, 2, 4).double()
    with torch.no_grad():
        for net, bias in ((q.mean, [0.5, -0.5]), (q.logvar, [math.log(4.0), 0.0])):
            net[-1].weight.zero_()
            net[-1].bias.copy_(t(bias))
    x, y = torch.rand(5, 3, dtype=torch.float64), t([[1.5, 0.5]] * 5)
    # dim 1: (1.5-0.5)^2 / 4 + log 4; dim 2: (0.5+0.5)^2 / 1 + 0
    expected = -0.5 * ((0.25 + math.log(4.0) + math.log(2 * math.pi)) + (1.0 + math.log(2 * math.pi)))
    assert torch.allclose(q(x, y), t([expected] * 5))


def test_covariance_logdet_on_samples_of_known_covariance():
    rng = np.random.default_rng(0)
    cov = np.array([[2.0, 0.6], [0.6, 1.0]])  # det = 1.64
    z = torch.from_numpy(rng.multivariate_normal([0, 0], cov, size=40000))
    assert covariance_logdet(z, jitter=0.0).item() == pytest.approx(math.log(1.64), abs=0.03)
    # the mixture entropy: 1/4 (log det S_pos + log det S_neg)
    neg = torch.from_numpy(rng.multivariate_normal([1, 1], np.diag([4.0, 0.5]), size=40000))
    assert mixture_entropy(z, neg, jitter=0.0).item() == pytest.approx(
        0.25 * (math.log(1.64) + math.log(2.0)), abs=0.03
    )


def test_covariance_logdet_small_exact_and_finite_when_degenerate():
    # two points (0,0), (2,0): biased covariance diag(1, 0) + jitter 0.5 -> det 1.5 * 0.5
    z = t([[0.0, 0.0], [2.0, 0.0]])
    assert covariance_logdet(z, jitter=0.5).item() == pytest.approx(math.log(0.75))
    same = torch.ones(6, 3, dtype=torch.float64, requires_grad=True)
    out = covariance_logdet(same, jitter=1e-4)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(same.grad).all()


def test_entropy_estimator_skips_until_full_rank_then_uses_memory():
    est = EntropyEstimator(y_dim=4, proj_dim=2, memory=100, jitter=1e-4).double()
    est.train()
    y = torch.rand(4, 4, dtype=torch.float64)
    labels = t([1.0, -1.0, 0.0, 2.0])  # 2 pos, 1 neg: not enough for a 2-d covariance
    assert est(y, labels) is None
    assert len(est.memory["pos"]) == 2 and len(est.memory["neg"]) == 1  # zero labels left out
    y2 = torch.rand(6, 4, dtype=torch.float64)
    labels2 = t([1.0, 1.0, -1.0, -1.0, -2.0, 0.5])
    h = est(y2, labels2)
    assert h is not None
    z2 = est.project(y2)
    pos = torch.cat([z2[labels2 > 0], torch.stack(list(est.memory["pos"])[:2])])
    neg = torch.cat([z2[labels2 < 0], torch.stack(list(est.memory["neg"])[:1])])
    assert h.item() == pytest.approx(mixture_entropy(pos, neg, 1e-4).item())
    est.reset_memory()
    assert not est.memory["pos"] and not est.memory["neg"]


def test_mi_bound_is_loglik_plus_entropy_on_pairs_present():
    torch.manual_seed(0)
    mi = MIBound(dim=4, hidden=8, proj_dim=2, memory=0, jitter=1e-4).double()
    n = 12
    h_t = torch.rand(n, 4, dtype=torch.float64)
    h = {"acoustic": torch.rand(n, 4, dtype=torch.float64), "visual": torch.rand(n, 4, dtype=torch.float64)}
    labels = t([1, -1] * 6)
    both = {"acoustic": torch.ones(n, dtype=torch.bool), "visual": torch.zeros(n, dtype=torch.bool)}
    got = mi.lower_bound(h_t, h, both, labels)
    expected = mi.predictors["acoustic"](h_t, h["acoustic"]).mean() + mi.entropy["acoustic"](h["acoustic"], labels)
    assert got.item() == pytest.approx(expected.item())
    # the estimator loss trains only q and never reaches the encoders' outputs
    h_t.requires_grad_(True)
    loss = mi.estimator_loss(h_t, h, both)
    loss.backward()
    assert h_t.grad is None
    assert mi.predictors["acoustic"].mean[0].weight.grad is not None
    assert mi.predictors["visual"].mean[0].weight.grad is None


def test_task_loss_ignores_unknown_labels():
    assert task_loss(t([1.0, 2.0, 0.0]), t([0.0, float("nan"), 1.0])).item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        task_loss(t([1.0]), t([float("nan")]))
