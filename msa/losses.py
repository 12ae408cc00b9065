"""Losses: central moment discrepancy (CMD), the mutual-information lower bound, the task loss.

docs/model-spec.md sections 2, 3 and 5.
"""

from __future__ import annotations

import math
from collections import deque

import torch
import torch.nn as nn
import torch.nn.functional as F

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


def gaussian_log_likelihood(y: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(y; mean, diag(exp(logvar))), summed over the last dimension.

    The full likelihood, with its -1/2 log var term: MMIM's code drops it, which lets the variance
    grow without bound (docs/model-spec.md section 3).
    """
    return -0.5 * (((y - mean) ** 2) * torch.exp(-logvar) + logvar + _LOG_2PI).sum(-1)


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, out))


class GaussianPredictor(nn.Module):
    """q(y | x): a diagonal Gaussian whose mean and log-variance are MLPs of x."""

    def __init__(self, x_dim: int, y_dim: int, hidden: int):
        super().__init__()
        self.mean = _mlp(x_dim, hidden, y_dim)
        self.logvar = _mlp(x_dim, hidden, y_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample log q(y|x), shape (N,)."""
        return gaussian_log_likelihood(y, self.mean(x), self.logvar(x))


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


class EntropyEstimator(nn.Module):
    """H(Y) over the current batch plus a memory of recent batches' (detached) projections.

    Y is first mapped through a small tanh projection (MMIM: d / 4) so the covariance is well
    conditioned. While either polarity has too few samples for a full-rank covariance the
    estimate is skipped (returns None).
    """

    def __init__(self, y_dim: int, proj_dim: int, memory: int, jitter: float):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(y_dim, proj_dim), nn.Tanh())
        self.jitter = jitter
        self.memory: dict[str, deque[torch.Tensor]] = {
            "pos": deque(maxlen=memory),
            "neg": deque(maxlen=memory),
        }

    def reset_memory(self) -> None:
        for m in self.memory.values():
            m.clear()

    def forward(self, y: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
        z = self.project(y)
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


class MIBound(nn.Module):
    """I(text; m) >= E log q(h_m | h_t) + H(h_m) for m in (acoustic, visual)  [6]-[10].

    ``predictors`` are the q networks, trained alone in the estimator stage; ``entropy`` belongs
    to the main stage.
    """

    PAIRS = ("acoustic", "visual")

    def __init__(self, dim: int, hidden: int, proj_dim: int, memory: int, jitter: float):
        super().__init__()
        self.predictors = nn.ModuleDict({m: GaussianPredictor(dim, dim, hidden) for m in self.PAIRS})
        self.entropy = nn.ModuleDict({m: EntropyEstimator(dim, proj_dim, memory, jitter) for m in self.PAIRS})

    def reset_memory(self) -> None:
        for e in self.entropy.values():
            e.reset_memory()

    def estimator_loss(
        self, h_text: torch.Tensor, h: dict[str, torch.Tensor], both: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """-E log q(y|x) on detached encoder outputs (stage 1). ``both[m]`` masks samples with text and m."""
        losses = []
        for m in self.PAIRS:
            mask = both[m]
            if mask.any():
                losses.append(-self.predictors[m](h_text[mask].detach(), h[m][mask].detach()).mean())
        return torch.stack(losses).sum() if losses else h_text.new_zeros(())

    def lower_bound(
        self, h_text: torch.Tensor, h: dict[str, torch.Tensor], both: dict[str, torch.Tensor], labels: torch.Tensor
    ) -> torch.Tensor:
        """I_SI(t, a) + I_SI(t, v); L_SI is its negative [10]."""
        total = h_text.new_zeros(())
        for m in self.PAIRS:
            mask = both[m]
            if not mask.any():
                continue
            total = total + self.predictors[m](h_text[mask], h[m][mask]).mean()
            entropy = self.entropy[m](h[m][mask], labels[mask])
            if entropy is not None:
                total = total + entropy
        return total


def task_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_task = MAE over samples with a known label [17]."""
    known = torch.isfinite(labels)
    if not known.any():
        raise ValueError("task_loss needs at least one labelled sample")
    return F.l1_loss(scores[known], labels[known])
