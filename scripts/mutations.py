"""Equation errors the tests must catch, as data: one edit each (`scripts/mutation_check.py`).

Each `Mutation` replaces ``old`` (which must occur exactly once in ``file``) by ``new``. The first
five are the edits of the issue "A trimodal training path you can trust", which once left the
whole model/loss/training suite green; the rest are errors a reviewer of docs/model-spec.md
would fear. An edit that no longer applies (the code moved on) is an error of the check, not a
surviving mutation: update its ``old`` text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    """One edit of one file: ``old`` (exactly once in ``file``) becomes ``new``."""

    id: str
    description: str
    file: str
    old: str
    new: str


MODEL, LOSSES = "msa/model/network.py", "msa/model/losses.py"
TRAINING, METRICS = "msa/training/loop.py", "msa/metrics.py"

MUTATIONS: tuple[Mutation, ...] = (
    # --- the five ---------------------------------------------------------------------
    Mutation(
        "mi_sign",
        "the MI term's sign flipped in the main loss (L_SI = +I_SI)",
        TRAINING,
        "l_si = -terms.total",
        "l_si = terms.total",
    ),
    Mutation(
        "q_in_main_optimiser",
        "q's parameters put in the main optimiser",
        TRAINING,
        'groups: list[dict[str, Any]] = [{"params": model.main_parameters(), "lr": cfg.lr}]',
        'groups: list[dict[str, Any]] = [{"params": model.main_parameters() + model.estimator_parameters(), '
        '"lr": cfg.lr}]',
    ),
    Mutation(
        "gates_fed_z_z",
        "the gates fed [Z; Z] instead of [Z; m]",
        MODEL,
        "both = torch.cat([z, m], dim=-1)",
        "both = torch.cat([z, z], dim=-1)",
    ),
    Mutation(
        "gates_swapped",
        "g_r and g_f swapped in Z~ = LN(g_f * m + g_r * Z)",
        MODEL,
        "mixed = self.norm_mix(fusion * m + retain * z)",
        "mixed = self.norm_mix(retain * m + fusion * z)",
    ),
    Mutation(
        "cmd_k1_in_main_step",
        "L_DI computed with K = 1 in the main step",
        TRAINING,
        "l_cmd = representation_loss(out.utterances, out.present, cfg.cmd_moments)",
        "l_cmd = representation_loss(out.utterances, out.present, 1)",
    ),
    # --- the gated layer [11]-[15] ---------------------------------------------------------------
    Mutation(
        "gates_fed_m_z",
        "the gates fed [m; Z]: the halves of W_r, W_f read the wrong streams",
        MODEL,
        "both = torch.cat([z, m], dim=-1)",
        "both = torch.cat([m, z], dim=-1)",
    ),
    Mutation(
        "fusion_gate_on_z",
        "the fusion gate multiplies Z instead of m",
        MODEL,
        "mixed = self.norm_mix(fusion * m + retain * z)",
        "mixed = self.norm_mix(fusion * z + retain * z)",
    ),
    Mutation(
        "retain_gate_identity",
        "the retain gate's LN replaced by the identity",
        MODEL,
        "self.retain_act: nn.Module = nn.LayerNorm(d)",
        "self.retain_act: nn.Module = nn.Identity()",
    ),
    Mutation(
        "gates_share_one_ln",
        "both gates share one LayerNorm (one affine scale and shift)",
        MODEL,
        "self.fusion_act: nn.Module = nn.LayerNorm(d)",
        "self.fusion_act: nn.Module = self.retain_act",
    ),
    Mutation(
        "ffn_residual_dropped",
        "the residual of the FFN sublayer dropped: Z' = LN(FFN(Z~))",
        MODEL,
        "out = self.norm_out(mixed + self.dropout(self.ffn(mixed)))",
        "out = self.norm_out(self.dropout(self.ffn(mixed)))",
    ),
    Mutation(
        "no_gates_residual_dropped",
        "without gates Z~ = LN(m) instead of LN(m + Z)",
        MODEL,
        "mixed = self.norm_mix(m + z)",
        "mixed = self.norm_mix(m)",
    ),
    # --- fusion and head [16], [19] --------------------------------------------------------------
    Mutation(
        "masked_mean_ignores_mask",
        "masked_mean averages padded positions too",
        MODEL,
        "w = mask.unsqueeze(-1).to(x.dtype)",
        "w = torch.ones_like(mask).unsqueeze(-1).to(x.dtype)",
    ),
    Mutation(
        "head_input_order",
        "the head reads h_t (+) Z_TA (+) Z_TV instead of Z_TA (+) Z_TV (+) h_t",
        MODEL,
        "fused = torch.cat([pooled[b] for b in BRANCHES] + [text_utterance], dim=-1)",
        "fused = torch.cat([text_utterance] + [pooled[b] for b in BRANCHES], dim=-1)",
    ),
    Mutation(
        "q_in_main_parameters",
        "main_parameters() no longer leaves q out",
        MODEL,
        "skip = {id(p) for p in self.estimator_parameters()} | {id(p) for p in self.text.backbone.parameters()}",
        "skip = {id(p) for p in self.text.backbone.parameters()}",
    ),
    # --- CMD and L_DI [4]-[5] --------------------------------------------------------------------
    Mutation(
        "cmd_moment_normalisation",
        "CMD's k-th moment divided by |b-a| instead of |b-a|^k",
        LOSSES,
        "total = total + _safe_norm(cx.pow(i).mean(0) - cy.pow(i).mean(0)) / span**i",
        "total = total + _safe_norm(cx.pow(i).mean(0) - cy.pow(i).mean(0)) / span",
    ),
    Mutation(
        "cmd_k_off_by_one",
        "CMD stops at moment K - 1",
        LOSSES,
        "for i in range(2, k + 1):",
        "for i in range(2, k):",
    ),
    Mutation(
        "cmd_raw_moments",
        "CMD compares raw moments E[x^k] instead of central ones",
        LOSSES,
        "cx, cy = x - mx, y - my",
        "cx, cy = x, y",
    ),
    Mutation(
        "cmd_ignores_presence",
        "L_DI over all samples, stand-ins of absent modalities included",
        LOSSES,
        "both = present[:, MODALITIES.index(a)] & present[:, MODALITIES.index(b)]",
        "both = torch.ones_like(present[:, 0])",
    ),
    Mutation(
        "cmd_wrong_pair",
        "L_DI's third pair (v, a) replaced by (t, a) a second time",
        LOSSES,
        'CMD_PAIRS = (("text", "acoustic"), ("text", "visual"), ("visual", "acoustic"))',
        'CMD_PAIRS = (("text", "acoustic"), ("text", "visual"), ("text", "acoustic"))',
    ),
    # --- the MI bound and the main loss [6]-[10], [17]-[18] --------------------------------------
    Mutation(
        "entropy_sign",
        "I_SI = E log q - H instead of E log q + H",
        LOSSES,
        "return self.log_q + self.entropy",
        "return self.log_q - self.entropy",
    ),
    Mutation(
        "log_q_without_logvar",
        "log q without its -1/2 log var term (MMIM's code)",
        LOSSES,
        "return -0.5 * (((y - mean) ** 2) * torch.exp(-logvar) + logvar + _LOG_2PI).sum(-1)",
        "return -0.5 * (((y - mean) ** 2) * torch.exp(-logvar) + _LOG_2PI).sum(-1)",
    ),
    Mutation(
        "bound_logvar_not_detached",
        "the main stage differentiates q's log-variance (the encoders can chase a falling log var)",
        LOSSES,
        "return gaussian_log_likelihood(y, self.mean(x), self.log_variance(x).detach())",
        "return gaussian_log_likelihood(y, self.mean(x), self.log_variance(x))",
    ),
    Mutation(
        "estimator_not_detached",
        "the estimator step back-propagates into the encoders",
        LOSSES,
        "target = self.project(m, h[m][mask].detach())\n"
        "                losses.append(-self.predictors[m](standardise(h_text[mask].detach()), target).mean())",
        "target = self.project(m, h[m][mask])\n"
        "                losses.append(-self.predictors[m](standardise(h_text[mask]), target).mean())",
    ),
    Mutation(
        "mi_nothing_standardised",
        "the bound on the raw vectors, as before the fix (the main step's pull collapses them)",
        LOSSES,
        "return (v - v.mean(0)) / v.std(0).clamp_min(eps)",
        "return v",
    ),
    Mutation(
        "mi_target_not_standardised",
        "q and H see g(h_m) unstandardised: shrinking a vector moves the bound again",
        LOSSES,
        "return standardise(self.entropy[m].project(y))",
        "return self.entropy[m].project(y)",
    ),
    Mutation(
        "mi_text_not_standardised",
        "the main stage's q reads h_t unstandardised (its pull collapses the text vector)",
        LOSSES,
        "log_q = log_q + self.predictors[m].bound_term(standardise(h_text[mask]), z).mean()",
        "log_q = log_q + self.predictors[m].bound_term(h_text[mask], z).mean()",
    ),
    Mutation(
        "estimator_optimiser_all_parameters",
        "the estimator's optimiser holds every parameter, not only q's",
        TRAINING,
        "estimator = torch.optim.Adam(model.estimator_parameters(), lr=cfg.lr) if cfg.use_mi else None",
        "estimator = torch.optim.Adam(model.parameters(), lr=cfg.lr) if cfg.use_mi else None",
    ),
    Mutation(
        "mi_detached_in_main_loss",
        "alpha * L_SI added as a constant: no gradient reaches the encoders",
        TRAINING,
        "loss = loss + cfg.alpha * l_si",
        "loss = loss + cfg.alpha * l_si.detach()",
    ),
    Mutation(
        "alpha_on_cmd",
        "L_DI weighted by alpha instead of beta",
        TRAINING,
        "loss = loss + cfg.beta * l_cmd",
        "loss = loss + cfg.alpha * l_cmd",
    ),
    Mutation(
        "mi_pairs_ignore_text",
        "I_SI(t, m) on samples without text (the text stand-in) too",
        TRAINING,
        'return {m: text & out.present[:, MODALITIES.index(m)] for m in ("acoustic", "visual")}',
        'return {m: out.present[:, MODALITIES.index(m)] for m in ("acoustic", "visual")}',
    ),
    # --- metrics (section 6) ----------------------------------------------------------------------
    Mutation(
        "has0_non0_swapped",
        "has0 uses > 0 and non0 uses >= 0",
        METRICS,
        "has0_p, has0_y = p >= 0, y >= 0\n    non0 = y != 0\n    non0_p, non0_y = p[non0] > 0, y[non0] > 0",
        "has0_p, has0_y = p > 0, y > 0\n    non0 = y != 0\n    non0_p, non0_y = p[non0] >= 0, y[non0] >= 0",
    ),
    Mutation(
        "non0_keeps_zero_labels",
        "non0 keeps the samples whose label is 0",
        METRICS,
        "non0 = y != 0",
        "non0 = y == y",
    ),
    Mutation(
        "acc7_no_clip",
        "Acc-7 rounds without clipping to [-3, 3]",
        METRICS,
        "r7p, r7y = np.round(np.clip(p, -3, 3)), np.round(np.clip(y, -3, 3))",
        "r7p, r7y = np.round(p), np.round(y)",
    ),
    Mutation(
        "acc7_half_up",
        "Acc-7 rounds halves up instead of to even (numpy's, MMSA's)",
        METRICS,
        "r7p, r7y = np.round(np.clip(p, -3, 3)), np.round(np.clip(y, -3, 3))",
        "r7p, r7y = np.floor(np.clip(p, -3, 3) + 0.5), np.floor(np.clip(y, -3, 3) + 0.5)",
    ),
)
