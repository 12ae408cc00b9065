"""CMD and the MI bound against values worked out by hand."""

import math

import numpy as np
import pytest
import torch

from msa.model.losses import (
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

    # q models the projection H is computed on (docs/model-spec.md section 9), both sides
    # standardised over the batch by hand: (v - mean) / unbiased std, per column
    def by_hand(v: torch.Tensor) -> torch.Tensor:
        a = v.detach().numpy()
        return torch.from_numpy((a - a.mean(0)) / a.std(0, ddof=1))

    z = by_hand(mi.entropy["acoustic"].project(h["acoustic"]))
    log_q = mi.predictors["acoustic"](by_hand(h_t), z).mean()
    entropy = mi.entropy["acoustic"].of_projected(z, labels)
    assert got.item() == pytest.approx((log_q + entropy).item())
    # standardised: scaling and shifting either side leaves the bound where it was
    scaled = {"acoustic": 1e-3 * h["acoustic"] + 0.5, "visual": h["visual"]}
    assert mi.lower_bound(1e-4 * h_t - 2.0, scaled, both, labels).item() != pytest.approx(got.item())  # g is nonlinear
    assert mi.lower_bound(1e-4 * h_t - 2.0, h, both, labels).item() == pytest.approx(got.item(), rel=1e-6)
    terms = mi.terms(h_t, h, both, labels)  # the two terms the epoch log reports
    assert terms.log_q.item() == pytest.approx(log_q.item()) and terms.entropy.item() == pytest.approx(entropy.item())
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


def test_q_predicts_the_entropy_projection_and_has_a_ceiling():
    """log q and H live in one space (the d/4 projection), and q's log-variance is floored at
    log(jitter), where H stops falling: shrinking the vectors cannot raise the bound without
    limit. log q <= p/2 (-log jitter - log 2 pi), reached only when q is exact."""
    jitter = 1e-4
    mi = MIBound(dim=6, hidden=8, proj_dim=3, memory=0, jitter=jitter).double()
    q = mi.predictors["visual"]
    assert q.mean[-1].out_features == q.logvar[-1].out_features == 3
    with torch.no_grad():  # a head that asks for a variance far below the floor
        q.logvar[-1].weight.zero_()
        q.logvar[-1].bias.fill_(-50.0)
    x = torch.rand(4, 6, dtype=torch.float64)
    assert torch.allclose(q.log_variance(x), torch.full((4, 3), math.log(jitter), dtype=torch.float64))
    ceiling = 3 / 2 * (-math.log(jitter) - math.log(2 * math.pi))
    assert torch.allclose(q(x, q.mean(x)), torch.full((4,), ceiling, dtype=torch.float64))
    # above the floor the head's value is kept (to softplus precision)
    with torch.no_grad():
        q.logvar[-1].bias.fill_(-1.0)
    assert torch.allclose(q.log_variance(x), torch.full((4, 3), -1.0, dtype=torch.float64), atol=1e-3)


def test_a_checkpoint_with_the_old_full_width_q_loads_with_a_fresh_q():
    """Checkpoints written when q predicted all of h_m hold a q of another shape: it is left out
    (q is refitted by the estimator stage and no prediction reads it); the rest loads."""
    torch.manual_seed(0)
    mi = MIBound(dim=4, hidden=8, proj_dim=2, memory=0, jitter=1e-4)
    fresh_q = {k: v.clone() for k, v in mi.predictors.state_dict().items()}
    old = dict(mi.state_dict())
    for m in MIBound.PAIRS:
        for head in ("mean", "logvar"):
            old[f"predictors.{m}.{head}.2.weight"] = torch.ones(4, 8)
            old[f"predictors.{m}.{head}.2.bias"] = torch.zeros(4)
    old["entropy.acoustic.project.0.weight"] = torch.full((2, 4), 0.5)
    mi.load_state_dict(old)  # strict: nothing missing, nothing unexpected
    assert all(torch.equal(v, fresh_q[k]) for k, v in mi.predictors.state_dict().items())
    assert torch.equal(mi.entropy["acoustic"].project[0].weight, torch.full((2, 4), 0.5))
    # a q of the current shape loads as stored
    current = dict(mi.state_dict())
    current["predictors.visual.mean.2.bias"] = torch.full((2,), 7.0)
    mi.load_state_dict(current)
    assert torch.equal(mi.predictors["visual"].mean[2].bias, torch.full((2,), 7.0))


def test_main_stage_log_q_gives_the_log_variance_head_no_gradient():
    """The main stage's log q has the estimator's value, but no route through q's log-variance:
    the encoders cannot win it by moving x to where that head extrapolates ever lower."""
    torch.manual_seed(0)
    q = GaussianPredictor(3, 2, 4).double()
    x = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    y = torch.rand(5, 2, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(q.bound_term(x, y), q(x, y))
    q.bound_term(x, y).sum().backward()
    assert all(p.grad is None for p in q.logvar.parameters())
    # what reaches x and y is the squared error's gradient at q's current variance
    var = torch.exp(q.logvar(x)).detach()
    x2, y2 = x.detach().clone().requires_grad_(True), y.detach().clone().requires_grad_(True)
    (-0.5 * ((y2 - q.mean(x2)) ** 2 / var).sum()).backward()
    assert torch.allclose(x.grad, x2.grad) and torch.allclose(y.grad, y2.grad)


def test_entropy_projection_is_a_fixed_buffer_that_still_passes_gradient_to_y():
    torch.manual_seed(0)
    est = EntropyEstimator(y_dim=4, proj_dim=2, memory=0, jitter=1e-4).double()
    assert list(est.parameters()) == []  # nothing an optimiser could move
    # stored under nn.Linear's names: checkpoints from when it was trained load unchanged
    assert set(est.state_dict()) == {"project.0.weight", "project.0.bias"}
    y = torch.rand(12, 4, dtype=torch.float64, requires_grad=True)
    h = est(y, t([1.0, -1.0] * 6))
    h.backward()
    assert y.grad is not None and y.grad.abs().sum() > 0  # H still spreads Y itself
    w = est.state_dict()["project.0.weight"]
    assert torch.allclose(est.project(y), torch.tanh(y @ w.T + est.state_dict()["project.0.bias"]))


def test_entropy_projection_is_saved_and_loaded_with_the_checkpoint(tmp_path, tokenizer):
    from conftest import tiny_model
    from msa.model.checkpoint import load_checkpoint, save_checkpoint

    model = tiny_model(seed=3)
    key = "mi.entropy.visual.project.0.weight"
    assert key in model.state_dict()
    with torch.no_grad():
        model.mi.entropy["visual"].project[0].weight.add_(1.0)  # not the seed's draw: it must come from the file
    loaded = load_checkpoint(save_checkpoint(tmp_path / "ck", model, tokenizer)).model
    assert torch.equal(loaded.state_dict()[key], model.state_dict()[key])


@pytest.mark.slow  # loads the packaged MiniLM
def test_default_checkpoint_trained_projection_loads_into_the_buffer():
    """checkpoints/default was trained when the projection was a parameter; its values load."""
    from msa.model.checkpoint import WEIGHTS_FILE, load_checkpoint, load_tensors
    from msa.testing import ROOT

    folder = ROOT / "checkpoints" / "default"
    model = load_checkpoint(folder).model
    stored = load_tensors(folder / WEIGHTS_FILE)
    for m in MIBound.PAIRS:
        for name in ("weight", "bias"):
            key = f"mi.entropy.{m}.project.0.{name}"
            assert torch.equal(model.state_dict()[key], stored[key].float())
