"""The training objectives of the reproduced papers, written as their formulas so that tests can check them
term by term.

Normalisation is explicit because it differs between papers and libraries: the Sheffield paper
divides weighted CE / focal by N, torch's CrossEntropyLoss(weight=w) divides by sum_i w_{y_i}.
`norm="n"` is the paper's, `norm="weight-sum"` is torch's. Soft-label losses divide by N (WBCE)
and N C (KLD). All losses are computed in float32 even under autocast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import HeadError

LOSSES = ("ce", "focal", "wbce", "kld", "amsoftmax", "ccc")  # the losses Objective implements
SOFT_LOSSES = ("wbce", "kld")  # losses whose formula is written for (soft) label vectors
COSINE_LOSSES = ("amsoftmax",)  # losses whose logits are cosines (the classifier normalises weights and inputs)


def class_weights(counts: np.ndarray, kind: str = "prior", norm: str = "none", power: float = 1.0) -> np.ndarray:
    """w_j = N / N_j (prior) or 1 (uniform); then normalised (classes: / C, mean: mean 1) and ** power.

    An empty class has no defined prior weight, so it is an error rather than an inf.
    """
    counts = np.asarray(counts, dtype=np.float64)
    C = len(counts)
    if kind == "uniform":
        w = np.ones(C)
    elif kind == "prior":
        if (counts <= 0).any():
            raise HeadError(f"prior class weights: class index(es) {np.flatnonzero(counts <= 0).tolist()} have no "
                            "samples in the split the weights are counted on")
        w = counts.sum() / counts
    else:
        raise HeadError(f"unknown class weights {kind!r}; choose uniform or prior")
    if norm == "classes":
        w = w / C
    elif norm == "mean":
        w = w / w.mean()
    elif norm != "none":
        raise HeadError(f"unknown weight normalisation {norm!r}; choose none, classes or mean")
    return (w ** power).astype(np.float32)


# Rows without a target are masked (multiplied out), never dropped by boolean indexing: indexing
# with a mask needs the count on the host, i.e. a device synchronisation every step.


def _reduce(per_sample: torch.Tensor, w_y: torch.Tensor, norm: str, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is not None:
        m = mask.to(per_sample.dtype)
        per_sample, w_y, count = per_sample * m, w_y * m, m.sum().clamp_min(1.0)
    else:
        count = max(per_sample.numel(), 1)
    if norm == "n":
        return per_sample.sum() / count
    if norm == "weight-sum":
        return per_sample.sum() / w_y.sum().clamp_min(1e-12)
    raise HeadError(f"unknown loss normalisation {norm!r}; choose n or weight-sum")


def _target_logp(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits.float(), dim=-1).gather(1, target.clamp_min(0)[:, None])[:, 0]


def weighted_ce(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, norm: str = "n",
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """L = 1/Z sum_i -w_{y_i} log p_i, Z = N or sum_i w_{y_i} (over rows where mask is true)."""
    logp = _target_logp(logits, target)
    w_y = weights[target.clamp_min(0)]
    return _reduce(-w_y * logp, w_y, norm, mask)


def focal(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, gamma: float = 2.0,
          norm: str = "n", mask: torch.Tensor | None = None) -> torch.Tensor:
    """L = 1/Z sum_i -w_{y_i} (1 - p_i)^gamma log p_i (Sheffield eq. for L'_focal)."""
    logp = _target_logp(logits, target)
    w_y = weights[target.clamp_min(0)]
    modulator = (1.0 - logp.exp()).clamp_min(0.0) ** gamma
    return _reduce(-w_y * modulator * logp, w_y, norm, mask)


def _rows(mask: torch.Tensor | None, n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | int]:
    if mask is None:
        return torch.ones((), dtype=like.dtype, device=like.device), max(n, 1)
    m = mask.to(like.dtype)[:, None]
    return m, m.sum().clamp_min(1.0)


def soft_ce(logits: torch.Tensor, soft: torch.Tensor, weights: torch.Tensor, gamma: float = 0.0,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """CONILIUM eq. 1 (gamma 0): L = -1/N sum_i sum_c w_c y_ic (1 - p_ic)^gamma log p_ic.

    With one-hot y this is exactly weighted_ce / focal with norm "n".
    """
    logp = F.log_softmax(logits.float(), dim=-1)
    term = soft * logp * weights[None, :]
    if gamma:
        term = term * (1.0 - logp.exp()).clamp_min(0.0) ** gamma
    m, n = _rows(mask, soft.shape[0], term)
    return -(term * m).sum() / n


def wbce(logits: torch.Tensor, soft: torch.Tensor, weights: torch.Tensor,
         mask: torch.Tensor | None = None) -> torch.Tensor:
    """L = -1/N sum_i sum_c w_c [y log s + (1 - y) log(1 - s)], s = sigmoid(logit) (CONILIUM eq. 2)."""
    x = logits.float()
    # log sigmoid(x) and log(1 - sigmoid(x)) = log sigmoid(-x), stable for large |x|
    term = soft * F.logsigmoid(x) + (1.0 - soft) * F.logsigmoid(-x)
    m, n = _rows(mask, x.shape[0], term)
    return -(term * weights[None, :] * m).sum() / n


def kld(logits: torch.Tensor, soft: torch.Tensor, weights: torch.Tensor,
        mask: torch.Tensor | None = None) -> torch.Tensor:
    """L = 1/(N C) sum_i sum_c w_c y log(y / yhat), yhat = softmax, 0 log 0 = 0 (CONILIUM eq. 3, w = 1)."""
    logq = F.log_softmax(logits.float(), dim=-1)
    logy = torch.where(soft > 0, soft, torch.ones_like(soft)).log()
    term = torch.where(soft > 0, soft * (logy - logq), torch.zeros_like(soft))
    m, n = _rows(mask, soft.shape[0], term)
    return (term * weights[None, :] * m).sum() / (n * soft.shape[1])


def amsoftmax_logits(cosine: torch.Tensor, target: torch.Tensor, margin: float = 0.2, scale: float = 30.0
                     ) -> torch.Tensor:
    """s (cos theta_j - m [j = y]): the margin is applied only while training."""
    onehot = F.one_hot(target, cosine.shape[-1]).to(cosine.dtype)
    return scale * (cosine.float() - margin * onehot)


def ccc(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Concordance correlation per column with population (biased) moments, as audmetric and the baselines.

    mask [N, K] (optional) selects the rows that count for each column.
    """
    pred, target = pred.float(), target.float()
    m = torch.ones_like(pred) if mask is None else mask.to(pred.dtype)
    target = torch.where(m > 0, target, torch.zeros_like(target))
    n = m.sum(0).clamp_min(1.0)
    mp, mt = (m * pred).sum(0) / n, (m * target).sum(0) / n
    dp, dt = (pred - mp) * m, (target - mt) * m
    vp, vt, cov = (dp * dp).sum(0) / n, (dt * dt).sum(0) / n, (dp * dt).sum(0) / n
    return 2 * cov / (vp + vt + (mp - mt) ** 2).clamp_min(1e-12)


def ccc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over attributes of 1 - CCC; attributes with NaN targets use only their known rows."""
    return (1.0 - ccc(pred, target, torch.isfinite(target))).sum()


@dataclass
class Targets:
    """Per-batch targets, already on the device. label -1 / NaN rows carry no target for that task."""

    label: torch.Tensor  # int64 [B]
    soft: torch.Tensor | None  # float32 [B, C], NaN rows: no soft label
    avd: torch.Tensor | None  # float32 [B, 3]
    gender: torch.Tensor | None  # int64 [B], -1 unknown


class Objective:
    """L = L_emotion [+ avd_weight L_avd] [+ aux_weight L_gender] [+ unimodal_weight sum_m L_emotion(modality m
    alone)], built from a HeadConfig."""

    def __init__(self, loss: str, weights: torch.Tensor, task: str, gamma: float = 2.0, norm: str = "n",
                 soft_labels: str = "", am_margin: float = 0.2, am_scale: float = 30.0, avd_loss: str = "ccc",
                 avd_weight: float = 1.0, aux: str = "", aux_weight: float = 1.0, unimodal_weight: float = 0.0):
        if loss not in LOSSES:
            raise HeadError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
        self.loss, self.weights, self.task, self.gamma, self.norm = loss, weights, task, gamma, norm
        self.soft_labels, self.am_margin, self.am_scale = soft_labels, am_margin, am_scale
        self.avd_loss, self.avd_weight, self.aux, self.aux_weight = avd_loss, avd_weight, aux, aux_weight
        self.unimodal_weight = unimodal_weight

    def set_weights(self, weights: torch.Tensor) -> None:
        self.weights = weights

    def classification(self, logits: torch.Tensor, t: Targets) -> torch.Tensor:
        w = self.weights
        if self.loss in SOFT_LOSSES or self.soft_labels:
            if self.soft_labels:
                assert t.soft is not None
                keep = torch.isfinite(t.soft).all(1)
                y = torch.nan_to_num(t.soft)
            else:
                keep = t.label >= 0
                y = F.one_hot(t.label.clamp_min(0), logits.shape[-1]).float()
            if self.loss == "wbce":
                return wbce(logits, y, w, keep)
            if self.loss == "kld":
                return kld(logits, y, w, keep)
            return soft_ce(logits, y, w, self.gamma if self.loss == "focal" else 0.0, keep)
        keep, y = t.label >= 0, t.label
        if self.loss == "ce":
            return weighted_ce(logits, y, w, self.norm, keep)
        if self.loss == "focal":
            return focal(logits, y, w, self.gamma, self.norm, keep)
        if self.loss == "amsoftmax":
            return weighted_ce(amsoftmax_logits(logits, y.clamp_min(0), self.am_margin, self.am_scale), y, w,
                               self.norm, keep)
        raise HeadError(f"loss {self.loss!r} is not a classification loss")

    def regression(self, pred: torch.Tensor, t: Targets) -> torch.Tensor:
        assert t.avd is not None
        if self.avd_loss == "ccc" or self.loss == "ccc":
            return ccc_loss(pred, t.avd)
        known = torch.isfinite(t.avd)
        err = torch.where(known, pred.float() - torch.nan_to_num(t.avd), torch.zeros_like(t.avd))
        return (err ** 2).sum() / known.sum().clamp_min(1)

    def __call__(self, outputs: dict[str, torch.Tensor], t: Targets) -> torch.Tensor:
        total = outputs[next(iter(outputs))].new_zeros((), dtype=torch.float32)
        if self.task in ("class", "both"):
            total = total + self.classification(outputs["logits"], t)
            if self.unimodal_weight and "unimodal_logits" in outputs:  # each modality's own classifier, summed
                for logits in outputs["unimodal_logits"]:
                    total = total + self.unimodal_weight * self.classification(logits, t)
        if self.task == "avd":
            total = total + self.regression(outputs["avd"], t)
        elif self.task == "both":
            total = total + self.avd_weight * self.regression(outputs["avd"], t)
        if self.aux == "gender":
            assert t.gender is not None
            known = t.gender >= 0
            ce = F.cross_entropy(outputs["gender"].float(), t.gender.clamp_min(0), reduction="none")
            total = total + self.aux_weight * (ce * known).sum() / known.sum().clamp_min(1)
        return total


def mixed(objective: Callable[[dict[str, torch.Tensor], Targets], torch.Tensor], outputs: dict[str, torch.Tensor],
          a: Targets, b: Targets, lam: float) -> torch.Tensor:
    """Manifold mixup: lam L(out, targets) + (1 - lam) L(out, permuted targets)."""
    return lam * objective(outputs, a) + (1.0 - lam) * objective(outputs, b)


def probabilities(outputs: dict[str, torch.Tensor], loss: str, am_scale: float) -> dict[str, torch.Tensor]:
    """What each loss's outputs mean at inference: class probabilities as the loss trained them (WBCE: a sigmoid
    per class; AM-Softmax: a softmax of the scaled cosines; the others: a softmax), A/V/D, gender."""
    out = {}
    if "logits" in outputs:
        z = outputs["logits"].float()
        if loss == "wbce":
            out["probs"] = torch.sigmoid(z)
        elif loss == "amsoftmax":
            out["probs"] = torch.softmax(am_scale * z, -1)
        else:
            out["probs"] = torch.softmax(z, -1)
    if "avd" in outputs:
        out["avd"] = outputs["avd"].float()
    if "gender" in outputs:
        out["gender"] = torch.softmax(outputs["gender"].float(), -1)
    return out
