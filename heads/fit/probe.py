"""`--head probe`: mean-pooled, standardised features -> multinomial logistic regression.

The floor any trained head has to beat: if a linear model on time-averaged frames does as well as
MLP -> transformer -> pooling, the transformer is not learning anything from the frame sequence.
It runs from the same cache, label table, row selection and checks as `train` (heads/fit/prepare.py's
`prepare`), is scored by the same metric code, and writes an ordinary run directory, so ensembles,
decisions, reports and predict-head take it like any head.

Features: per modality the masked mean over frames (several layers of one modality are averaged,
the learned layer mix's starting point), pooled vectors of audio and text concatenated (early
fusion). Standardised with the training rows' mean and std. Model: scikit-learn's
LogisticRegression (lbfgs, L2), class_weight 'balanced' for --weights prior, none for uniform;
the regularisation C is chosen from a fixed grid on the dev split's selection metric (Macro-F1).
The checkpoint holds coef, intercept, mean and std as safetensors tensors (no pickle) with the
metadata of a head checkpoint plus the marker head=probe.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import HeadError
from .checkpoint import FORMAT, check_info, load_head, provenance, read_metadata
from .config import HeadConfig, selection_metric
from .prepare import class_counts, prepare, seed_everything
from .rundir import RunDir, counts_table
from .scoring import evaluate, selection_value, write_scored_splits

GRID = (0.01, 0.1, 1.0, 10.0)  # regularisation strengths tried, weakest regularisation last
MAX_ITER = 1000
KIND = "probe"  # the checkpoint marker (metadata key 'head')


def check_probe_config(cfg: HeadConfig) -> None:
    """Options the probe cannot honour are refused instead of silently ignored."""
    task = cfg.resolved_task()
    if task != "class":
        raise HeadError(f"--head probe is a classifier: --task {task} (A/V/D regression) is not supported; use "
                        "--task class, or --head paper/baseline for A/V/D")
    if cfg.soft_labels:
        raise HeadError("--head probe trains on hard consensus labels; drop --soft-labels")
    if cfg.aux:
        raise HeadError("--head probe has no auxiliary outputs; drop --aux")
    if cfg.fusion != "early":
        raise HeadError(f"--head probe concatenates the pooled modalities (early fusion); --fusion {cfg.fusion} "
                        "applies to the neural heads")


# ----------------------------------------------------------------------------------- features
def pooled(modality, rows: np.ndarray, batch_size: int) -> np.ndarray:
    """Masked mean over frames (and over layers, if the modality has several) of table rows, float64 [N, D].

    Batched longest-first like inference, so padding stays small; summed in float64 so the probe's
    inputs do not depend on the batch composition."""
    out = np.zeros((len(rows), modality.frame_shape[-1]), np.float64)
    if not len(rows):
        return out
    order = np.argsort(-modality.lengths[rows], kind="stable")
    for start in range(0, len(rows), batch_size):
        pick = order[start:start + batch_size]
        b = rows[pick]
        T = max(int(modality.lengths[b].max()), 1)
        x, mask = modality.gather(b, None, T, torch.float32)
        keep = mask.view(mask.shape + (1,) * (x.dim() - 2))
        total = torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(1, dtype=torch.float64)
        if total.dim() == 3:  # [B, layers, D]: the plain average over layers
            total = total.mean(1)
        count = mask.sum(1, keepdim=True).clamp_min(1).to(torch.float64)
        out[pick] = (total / count).cpu().numpy()
    return out


def pooled_inputs(modalities: dict, names: Sequence[str], rows: np.ndarray, batch_size: int) -> np.ndarray:
    """The probe's input: pooled vectors of the named modalities, concatenated in that order."""
    return np.concatenate([pooled(modalities[m], rows, batch_size) for m in names], axis=1)


# ----------------------------------------------------------------------------------- the model
@dataclass
class ProbeHead:
    """A fitted probe: logits = ((x - mean) / std) @ coef.T + intercept, probabilities = softmax(logits)."""

    modalities: list[str]  # concatenation order of the pooled vectors
    dims: dict[str, int]  # modality -> pooled dimension
    coef: np.ndarray  # [C, D] float64
    intercept: np.ndarray  # [C]
    mean: np.ndarray  # [D] training mean
    std: np.ndarray  # [D] training std (1 where constant)
    C: float = 1.0  # regularisation chosen on dev
    is_probe = True  # lets HeadPredictor tell a probe from a FusionHead without importing this module

    def logits(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, np.float64) - self.mean) / self.std) @ self.coef.T + self.intercept

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = self.logits(X)
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def predict_table(self, modalities: dict, rows: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
        """What `infer` returns for a FusionHead: {'probs': [N, C]} for table rows, in that order."""
        missing = [m for m in self.modalities if m not in modalities]
        if missing:
            raise HeadError(f"the probe needs {', '.join(missing)} features")
        return {"probs": self.predict_proba(pooled_inputs(modalities, self.modalities, rows, batch_size))}

    def spec(self) -> dict[str, Any]:
        return {"kind": KIND, "modalities": list(self.modalities), "dims": dict(self.dims),
                "n_classes": int(self.coef.shape[0]), "C": float(self.C),
                "pooling": "masked mean over frames, mean over layers; modalities concatenated",
                "standardise": "training rows' mean and std (ddof 0; std 1 where constant)"}

    def save(self, path: str | Path, info: dict[str, Any]) -> None:
        from safetensors.numpy import save_file

        tensors = {k: np.ascontiguousarray(getattr(self, k), dtype=np.float64)
                   for k in ("coef", "intercept", "mean", "std")}
        meta = {"format": FORMAT, "head": KIND, "spec": json.dumps(self.spec()),
                "info": json.dumps(info, sort_keys=True)}
        save_file(tensors, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | Path, classes: Sequence[str] | None = None,
             features: dict[str, list[dict]] | None = None) -> tuple["ProbeHead", dict]:
        """Rebuild a saved probe; `classes` / `features` are checked like a head checkpoint's."""
        from safetensors.numpy import load_file

        meta = read_metadata(path)
        if meta.get("head") != KIND:
            raise HeadError(f"{path}: not a probe checkpoint (head {meta.get('head')!r})")
        spec, info = json.loads(meta["spec"]), json.loads(meta["info"])
        check_info(path, info, classes, features)
        t = load_file(str(path))
        head = cls(list(spec["modalities"]), {k: int(v) for k, v in spec["dims"].items()}, t["coef"], t["intercept"],
                   t["mean"], t["std"], float(spec["C"]))
        if head.coef.shape != (spec["n_classes"], sum(head.dims.values())):
            raise HeadError(f"{path}: coef shape {list(head.coef.shape)} does not match the recorded spec")
        return head, info


def standardiser(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(0)
    std = X.std(0)
    return mean, np.where(std > 0, std, 1.0)


def class_weight_option(weights: str) -> str | None:
    """--weights prior -> sklearn's 'balanced' (n / (C n_j)); uniform -> None."""
    return "balanced" if weights == "prior" else None


@dataclass
class ProbeFit:
    head: ProbeHead
    value: float  # dev selection value of the chosen C
    grid: list[dict[str, Any]]  # per C: dev selection value, iterations, converged
    notes: list[str] = field(default_factory=list)


def fit_probe(X_train: np.ndarray, y_train: np.ndarray, n_classes: int, class_weight: str | None,
              dev_score, grid: Sequence[float] = GRID, seed: int = 0, names: Sequence[str] = ("audio",),
              dims: dict[str, int] | None = None) -> ProbeFit:
    """Fit one logistic regression per C and keep the one whose dev_score(head) is highest (the first, i.e.
    most regularised, on ties). dev_score: ProbeHead -> float."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    present = np.unique(y_train)
    if len(present) != n_classes or present[0] != 0 or present[-1] != n_classes - 1:
        raise HeadError(f"the probe needs training samples of all {n_classes} classes (has {present.tolist()})")
    mean, std = standardiser(X_train)
    Z = (X_train - mean) / std
    dims = dims or {names[0]: X_train.shape[1]}
    best: ProbeFit | None = None
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for C in grid:
        model = LogisticRegression(C=C, solver="lbfgs", max_iter=MAX_ITER, class_weight=class_weight,
                                   random_state=seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(Z, y_train)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        if not converged:
            notes.append(f"probe C={C:g}: lbfgs did not converge in {MAX_ITER} iterations")
        coef, intercept = model.coef_.astype(np.float64), model.intercept_.astype(np.float64)
        if n_classes == 2:  # sklearn's binary model: sigmoid(z) = softmax([0, z])[1]
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([[0.0], intercept])
        head = ProbeHead(list(names), dict(dims), coef, intercept, mean, std, float(C))
        value = float(dev_score(head))
        rows.append({"C": float(C), "dev_selection": value, "iterations": int(np.max(model.n_iter_)),
                     "converged": converged})
        if best is None or value > best.value or (math.isnan(best.value) and not math.isnan(value)):
            best = ProbeFit(head, value, rows, notes)
    assert best is not None
    return best


# ----------------------------------------------------------------------------------- training
def _log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)))) if len(y) else float("nan")


def train_probe(cfg: HeadConfig, table, pool, device: torch.device, verbose: bool = True,
                t_start: float | None = None, grid: Sequence[float] = GRID):
    """Fit the probe on cfg's train split, choose C on dev, write a run directory; returns a RunResult."""
    check_probe_config(cfg)
    t_start = time.perf_counter() if t_start is None else t_start
    seed_everything(cfg.seed)
    prep = prepare(cfg, table, pool, device)
    names = [m for m in ("audio", "text") if m in prep.modalities]
    batch = cfg.eval_batch_size
    train_rows = prep.train[table.label[prep.train] >= 0]
    X_train = pooled_inputs(prep.modalities, names, train_rows, batch)
    X_dev = pooled_inputs(prep.modalities, names, prep.dev, batch)
    y_train, y_dev = table.label[train_rows], table.label[prep.dev]
    dims = {m: int(prep.modalities[m].frame_shape[-1]) for m in names}
    t_loaded = time.perf_counter()
    metric_name = selection_metric(cfg)

    def dev_score(head: ProbeHead) -> float:
        pred = {"probs": head.predict_proba(X_dev)}
        return selection_value(prep, prep.dev, pred, evaluate(prep, prep.dev, pred), metric_name, cfg.seed)

    C_classes = len(table.classes)
    option = class_weight_option(cfg.weights)
    fit = fit_probe(X_train, y_train, C_classes, option, dev_score, grid, cfg.seed, names, dims)
    t_fit = time.perf_counter() - t_loaded
    head = fit.head
    counts = np.bincount(y_train, minlength=C_classes).astype(np.float64)
    weights = len(y_train) / (C_classes * counts) if option == "balanced" else np.ones(C_classes)
    notes = [*prep.notes, *fit.notes]
    split_counts = class_counts(prep)
    if verbose:
        print(counts_table(split_counts), flush=True)
    if cfg.loss != "ce":
        notes.append(f"probe: minimises (weighted) cross-entropy + L2; --loss {cfg.loss} is not used")
    probe_info = {**head.spec(), "grid": fit.grid, "class_weight": option, "train_rows": int(len(train_rows))}
    info: dict[str, Any] = {
        "classes": table.classes.to_dict(), "task": "class", "class_weights": weights.tolist(),
        "features": {m: [provenance(s.meta) for s in prep.modalities[m].sets] for m in names},
        "avd_range": {"low": prep.avd_range[0], "high": prep.avd_range[1]},
        "rows": {"train": int(len(train_rows)), "dev": int(len(prep.dev)),
                 **{f"predict_{s}": int(len(r)) for s, r in prep.predict.items()}},
        "device": str(device), "placement": pool.placement, "selection_metric": metric_name, "notes": notes,
        "torch": torch.__version__, "probe": probe_info, "class_counts": split_counts,
    }
    run = RunDir(cfg.out, cfg.corpus)
    run.config({**cfg.to_dict(), "resolved": info})
    info.update(best_epoch=1, selection_value=fit.value, layer_weights={})
    if cfg.save_checkpoint:
        head.save(run.path / "best.safetensors", {**info, "config": cfg.to_dict()})
    dev_pred = {"probs": head.predict_proba(X_dev)}
    splits, dev_metrics = write_scored_splits(run, prep, lambda rows: head.predict_table(prep.modalities, rows, batch),
                                              dev_pred)
    epoch = {"epoch": 1, "train_loss": _log_loss(head.predict_proba(X_train), y_train),
             "dev_loss": _log_loss(dev_pred["probs"], y_dev), "selection": fit.value, "best": True, "C": head.C,
             "train_s": t_fit, "epoch_s": t_fit, "padding_waste": 0.0, "batches": 0,
             **{f"dev_{k}": v for k, v in dev_metrics.items()}}
    run.epochs([epoch])
    summary = {
        "out": str(run.path), "dev_split": cfg.dev_split, "best_epoch": 1, "epochs_run": 1,
        "selection": {"metric": metric_name, "value": fit.value}, "splits": splits,
        "timing": {"total_s": time.perf_counter() - t_start, "load_s": t_loaded - t_start, "first_step_s": 0.0,
                   "epoch_s_mean": t_fit, "epoch_s": [t_fit], "padding_waste": 0.0},
        "class_weights": weights.tolist(), "classes": list(table.classes.letters), "notes": notes,
        "probe": probe_info,
    }
    result = run.metrics(summary)
    if verbose:
        print(f"probe: logistic regression on {'+'.join(names)} ({X_train.shape[1]} dims), C = {head.C:g} chosen on "
              f"dev {metric_name}", flush=True)
        print(result.table(), flush=True)
    return result


def load_checkpoint(path: str | Path, classes: Sequence[str] | None = None,
                    features: dict[str, list[dict]] | None = None, device: str = "cpu") -> tuple[Any, dict]:
    """A FusionHead, or a ProbeHead for checkpoints marked head=probe (fit/probe.py), with its info."""
    if read_metadata(path).get("head") == "probe":
        return ProbeHead.load(path, classes, features)
    return load_head(path, classes, features, device)
