"""Every loss of the model, in one place: the central moment discrepancy (CMD) and L_DI, the
mutual-information lower bound L_SI, the task loss. `training.main_step` composes them.

docs/model-spec.md sections 2, 3 and 5.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import MODALITIES

_LOG_2PI = math.log(2.0 * math.pi)


def _safe_norm(v: torch.Tensor) -> torch.Tensor:
    """L2 norm whose gradient stays finite at zero (sqrt'(0) is infinite)."""
    sq = (v * v).sum()
    return torch.where(sq > 0, torch.sqrt(sq.clamp_min(1e-30)), torch.zeros_like(sq))


def cmd(x: torch.Tensor, y: torch.Tensor, k: int = 5, bounds: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Central moment discrepancy between two samples of bounded vectors [4].

    Parameters
    ----------
    x, y : (N, d) and (M, d) tensors with values in ``bounds``.
    k : highest central moment compared (the paper uses 5).
    bounds : the interval [a, b] the values live in; the k-th term is divided by |b - a|^k.

    Returns
    -------
    A scalar tensor: ||E x - E y|| / |b-a| + sum_{i=2..k} ||C_i(x) - C_i(y)|| / |b-a|^i.
    """
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"cmd expects (N, d) and (M, d) tensors, got {tuple(x.shape)} and {tuple(y.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    span = abs(bounds[1] - bounds[0])
    mx, my = x.mean(0), y.mean(0)
    cx, cy = x - mx, y - my
    total = _safe_norm(mx - my) / span
    for i in range(2, k + 1):
        total = total + _safe_norm(cx.pow(i).mean(0) - cy.pow(i).mean(0)) / span**i
    return total


# L_DI's pairs of utterance vectors [5]; the modality names index `MODALITIES`.
CMD_PAIRS = (("text", "acoustic"), ("text", "visual"), ("visual", "acoustic"))


def representation_loss(utterances: dict[str, torch.Tensor], present: torch.Tensor, k: int) -> torch.Tensor:
    """L_DI = 1/3 sum over the three pairs of CMD_K(h_a, h_b)  [5].

    Each pair is compared on the samples that carry both modalities (a stand-in is not a
    representation to align). A pair with fewer than two such samples in the batch has no
    moments and is left out, and the mean is over the pairs computed, so that a batch where a
    modality is rare weighs the other pairs as much as a full batch does (a fixed 1/3 would
    shrink L_DI there). No pair: 0.

    Parameters
    ----------
    utterances : modality -> (B, d) utterance vectors h_m.
    present : (B, 3) bool, in `MODALITIES` order.
    k : the highest central moment (the paper's K = 5).
    """
    values = []
    for a, b in CMD_PAIRS:
        both = present[:, MODALITIES.index(a)] & present[:, MODALITIES.index(b)]
        if int(both.sum()) >= 2:
            values.append(cmd(utterances[a][both], utterances[b][both], k=k))
    if not values:
        return present.new_zeros((), dtype=utterances["text"].dtype)
    return torch.stack(values).mean()


def gaussian_log_likelihood(y: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(y; mean, diag(exp(logvar))), summed over the last dimension.

    The full likelihood, with its -1/2 log var term: MMIM's code drops it, which lets the variance
    grow without bound (docs/model-spec.md section 3).
    """
    return -0.5 * (((y - mean) ** 2) * torch.exp(-logvar) + logvar + _LOG_2PI).sum(-1)


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, out))


class GaussianPredictor(nn.Module):
    """q(y | x): a diagonal Gaussian whose mean and log-variance are MLPs of x.

    ``logvar_floor`` (None: none) keeps the log-variance above a floor, smoothly
    (floor + softplus(head - floor)), so that log q has a ceiling: d/2 (-floor - log 2 pi).
    """

    def __init__(self, x_dim: int, y_dim: int, hidden: int, logvar_floor: float | None = None):
        super().__init__()
        self.mean = _mlp(x_dim, hidden, y_dim)
        self.logvar = _mlp(x_dim, hidden, y_dim)
        self.logvar_floor = logvar_floor

    def log_variance(self, x: torch.Tensor) -> torch.Tensor:
        """The log-variance q uses: the head's output, above the floor if there is one."""
        raw = self.logvar(x)
        if self.logvar_floor is None:
            return raw
        return self.logvar_floor + F.softplus(raw - self.logvar_floor)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample log q(y|x), shape (N,): what the estimator stage maximises over q."""
        return gaussian_log_likelihood(y, self.mean(x), self.log_variance(x))

    def bound_term(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample log q(y|x) as the main stage maximises it: the log-variance is detached.

        q is fixed in the main stage, so the -1/2 log var term is a constant there, except that
        the encoders could move x to where the log-variance head extrapolates ever lower: a gain
        won by collapsing the text vector (docs/model-spec.md section 9). Detached, the encoders
        see only the squared error weighted by q's current variance.
        """
        return gaussian_log_likelihood(y, self.mean(x), self.log_variance(x).detach())


def covariance_logdet(z: torch.Tensor, jitter: float) -> torch.Tensor:
    """log det of the (biased) sample covariance of z (N, p) plus jitter * I  [7]-[8]."""
    centred = z - z.mean(0, keepdim=True)
    cov = centred.T @ centred / z.shape[0]
    cov = cov + jitter * torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
    return torch.linalg.slogdet(cov)[1]


def mixture_entropy(positive: torch.Tensor, negative: torch.Tensor, jitter: float = 1e-4) -> torch.Tensor:
    """H(Y) of a two-component Gaussian mixture with equal priors, one component per polarity [9].

    ``1/4 * (log det Sigma_pos + log det Sigma_neg)`` (constant terms dropped, as in the paper).
    """
    return 0.25 * (covariance_logdet(positive, jitter) + covariance_logdet(negative, jitter))


def standardise(v: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(N, p) -> each column minus its mean, divided by its standard deviation over the N rows
    (unbiased, floored at ``eps``); gradients flow through both statistics. N >= 2."""
    return (v - v.mean(0)) / v.std(0).clamp_min(eps)


class FixedLinear(nn.Module):
    """y -> W y + b with W and b drawn once, as `nn.Linear` draws them, and kept as buffers.

    Buffers, not parameters: no optimiser can move them, yet they are in the state dict (saved
    and loaded with the checkpoint) under the names `nn.Linear` gives its parameters, so a
    checkpoint written when the projection was trained still loads.
    """

    def __init__(self, inp: int, out: int):
        super().__init__()
        drawn = nn.Linear(inp, out)  # same draw and RNG use as the trained projection it replaces
        self.register_buffer("weight", drawn.weight.detach().clone())
        self.register_buffer("bias", drawn.bias.detach().clone())

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return F.linear(y, self.weight, self.bias)


class EntropyEstimator(nn.Module):
    """H(Y) over the current batch plus a memory of recent batches' (detached) projections.

    Y is first mapped through a small tanh projection (MMIM: d / 4) so the covariance is well
    conditioned. The projection is a fixed random one: trained by the main stage it could raise
    H on its own, without Y spreading, and the memory's vectors, made with older projections,
    would no longer be comparable with the current batch's (docs/model-spec.md section 9).
    While either polarity has too few samples for a full-rank covariance the estimate is
    skipped (returns None).
    """

    def __init__(self, y_dim: int, proj_dim: int, memory: int, jitter: float):
        super().__init__()
        self.project = nn.Sequential(FixedLinear(y_dim, proj_dim), nn.Tanh())
        self.jitter = jitter
        self.memory: dict[str, deque[torch.Tensor]] = {
            "pos": deque(maxlen=memory),
            "neg": deque(maxlen=memory),
        }

    def reset_memory(self) -> None:
        for m in self.memory.values():
            m.clear()

    def forward(self, y: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
        return self.of_projected(self.project(y), labels)

    def of_projected(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
        """H from vectors already through `project` (`MIBound` projects once for q and H)."""
        groups = {"pos": z[labels > 0], "neg": z[labels < 0]}  # zero labels are left out
        full = {}
        for name, current in groups.items():
            remembered = list(self.memory[name])
            stacked = torch.cat([current, torch.stack(remembered)]) if remembered else current
            full[name] = stacked
        enough = all(v.shape[0] > z.shape[1] for v in full.values())
        if self.training:
            for name, current in groups.items():
                self.memory[name].extend(current.detach())
        if not enough:
            return None
        return mixture_entropy(full["pos"], full["neg"], self.jitter)


@dataclass
class BoundTerms:
    """The two terms of I_SI summed over the pairs present: E log q(y|x) and H(y) [6]."""

    log_q: torch.Tensor
    entropy: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.log_q + self.entropy


class MIBound(nn.Module):
    """I(text; m) >= I(text; g(h_m)) >= E log q(g(h_m) | h_t) + H(g(h_m)) for m in (acoustic,
    visual)  [6]-[10], g the entropy's fixed tanh projection.

    q models the same projected vector whose entropy H measures, so that the two terms trade in
    one space: the paper's log q over all of h_m (d dimensions) against H over d/4 projected ones
    can be raised without bound by shrinking h_m (docs/model-spec.md section 9). q's
    log-variance is floored at log(jitter), the scale below which H stops falling.

    Both sides are standardised over the batch's samples of the pair (`standardise`) before q
    and H see them: mutual information is unchanged by an invertible affine map of each
    dimension, so the bound is on the same I(h_t; g(h_m)), and no change of scale, shrinking a
    vector towards a point included, can move it. Unstandardised, the main step's pull of log q
    collapsed whichever side it reached (the text vector 30-350x on the planted benchmark without
    CMD; with the text side detached, the voice and face vectors up to 13x), while H sat at its
    jitter floor. A pair with fewer than two samples in a batch is left out.
    ``predictors`` are the q networks, trained alone in the estimator stage; the main stage
    treats them as fixed (`GaussianPredictor.bound_term`). ``entropy`` has no trained weights.
    """

    PAIRS = ("acoustic", "visual")

    def __init__(self, dim: int, hidden: int, proj_dim: int, memory: int, jitter: float):
        super().__init__()
        floor = math.log(jitter)
        self.predictors = nn.ModuleDict({m: GaussianPredictor(dim, proj_dim, hidden, floor) for m in self.PAIRS})
        self.entropy = nn.ModuleDict({m: EntropyEstimator(dim, proj_dim, memory, jitter) for m in self.PAIRS})
        self.register_load_state_dict_pre_hook(_refit_full_width_q)

    def reset_memory(self) -> None:
        for e in self.entropy.values():
            e.reset_memory()

    def project(self, m: str, y: torch.Tensor) -> torch.Tensor:
        """g(y): the fixed projection q predicts and H is computed on, for the pair (text, m),
        standardised over the batch (see the class docstring)."""
        return standardise(self.entropy[m].project(y))

    def estimator_loss(
        self, h_text: torch.Tensor, h: dict[str, torch.Tensor], both: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """-E log q(g(y)|x) on detached encoder outputs (stage 1). ``both[m]`` masks samples with text and m."""
        losses = []
        for m in self.PAIRS:
            mask = both[m]
            if int(mask.sum()) >= 2:
                target = self.project(m, h[m][mask].detach())
                losses.append(-self.predictors[m](standardise(h_text[mask].detach()), target).mean())
        return torch.stack(losses).sum() if losses else h_text.new_zeros(())

    def terms(
        self, h_text: torch.Tensor, h: dict[str, torch.Tensor], both: dict[str, torch.Tensor], labels: torch.Tensor
    ) -> BoundTerms:
        """The main stage's E log q and H, each summed over (t, a) and (t, v) [6], [10]."""
        log_q = entropy = h_text.new_zeros(())
        for m in self.PAIRS:
            mask = both[m]
            if int(mask.sum()) < 2:  # one sample has no spread to standardise by
                continue
            z = self.project(m, h[m][mask])
            log_q = log_q + self.predictors[m].bound_term(standardise(h_text[mask]), z).mean()
            h_m = self.entropy[m].of_projected(z, labels[mask])
            if h_m is not None:
                entropy = entropy + h_m
        return BoundTerms(log_q, entropy)

    def lower_bound(
        self, h_text: torch.Tensor, h: dict[str, torch.Tensor], both: dict[str, torch.Tensor], labels: torch.Tensor
    ) -> torch.Tensor:
        """I_SI(t, a) + I_SI(t, v); L_SI is its negative [10]."""
        return self.terms(h_text, h, both, labels).total


def _refit_full_width_q(module: MIBound, state_dict: dict[str, torch.Tensor], prefix: str, *_: object) -> None:
    """Load hook: a checkpoint written when q predicted all of h_m (d outputs, not d/4) keeps
    this model's fresh q instead. q is a training-time estimator that no prediction reads, and
    the estimator stage refits it from the first batch on; the rest of the checkpoint loads."""
    own = module.predictors.state_dict()
    stored = {k: state_dict.get(f"{prefix}predictors.{k}") for k in own}
    if any(v is not None and v.shape != own[k].shape for k, v in stored.items()):
        state_dict.update({f"{prefix}predictors.{k}": v for k, v in own.items()})


def task_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_task = MAE over samples with a known label [17]."""
    known = torch.isfinite(labels)
    if not known.any():
        raise ValueError("task_loss needs at least one labelled sample")
    return F.l1_loss(scores[known], labels[known])
