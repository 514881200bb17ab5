"""Ensembles of trained heads: majority vote, probability averaging, stacking; A/V/D averaging.

The majority vote is the ensemble of Chen et al., "1st place solution to Odyssey 2024 Emotion
Recognition Challenge Task 1" (Sheffield: the 7 models of their table 2, `--recipe sheffield7`);
stacking and the decisions that may sit on top are described, with their sources, in heads/after/decision.py.

Members are run directories (any mix of feature sets: Whisper, WavLM, HuBERT, text, fusion types).
They must share the class order, the dev split and, per split, the utterance ids and their labels;
anything else is refused with the difference named (`common_ids=True` restricts every split to the
utterances all members predicted instead).

Methods (classification):
  vote     one vote per member (its own decision: argmax, or its tuned decision with
           member_decisions=True); the class with most votes wins. Tie rule (`tie_rule`):
             prob        (default) among the tied classes, the one with the highest probability summed
                         over all members (= probability averaging restricted to the tied classes);
                         if still exactly equal, the first of them in class order;
             first       the first tied class in class order;
             best-member the tied class voted by the member with the best dev selection metric.
  mean     arithmetic mean of the members' probabilities, argmax.
  logmean  mean of log-probabilities (normalised geometric mean), argmax.
  stack    a meta-classifier over the members' log-probabilities, trained on dev with k-fold
           cross-validation (dev scores are out-of-fold), then fit on all of dev for the other splits.
Regression (A/V/D): the mean of the members that predict A/V/D, whatever the classification method.

A decision (prior correction and/or dev-tuned biases, heads/after/decision.py) may be put on top of mean,
logmean and stack. The ensemble directory mirrors a run directory: ensemble.json (members, method,
tie rule, stacker, decision), predictions_<split>.csv, metrics.json (same metric code as the trainer, and
like a trained run's, each split's 95 % bootstrap intervals ("ci95", 1,000 resamples seeded by --seed)).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import HeadError
from ..fit.rundir import RunDir, SplitOutputs, summary_table, write_json
from ..fit.sweep import PRESETS, config_name, expand, rank_world
from ..fit.train import train_sweep
from ..inputs.features import FeaturePool, default_device
from .decision import Decision, Stacker, decide, log_scores, parse_counts, stack, train_counts
from .outputs import RunOutputs, find_runs, is_run_dir, load_run, score

FORMAT = "sercache-ensemble/1"
METHODS = ("vote", "mean", "logmean", "stack")
TIE_RULES = ("prob", "first", "best-member")
TIE_TEXT = {
    "prob": "among tied classes, the highest probability summed over all members; then the first in class order",
    "first": "among tied classes, the first in class order",
    "best-member": "among tied classes, the one voted by the member with the best dev selection metric",
}


# ----------------------------------------------------------------------------------- combination rules
def majority_vote(votes: np.ndarray, n_classes: int, probs: np.ndarray | None = None, tie_rule: str = "prob",
                  member_order: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """votes [M, N] class indices; probs [M, N, C] (needed for tie_rule 'prob'); member_order: member
    indices best first (needed for 'best-member'). Returns (decision [N], vote counts [N, C], tied [N])."""
    votes = np.asarray(votes, np.int64)
    if votes.ndim != 2:
        raise HeadError("majority_vote: votes must be [members, utterances]")
    if tie_rule not in TIE_RULES:
        raise HeadError(f"unknown tie rule {tie_rule!r}; choose {', '.join(TIE_RULES)}")
    M, N = votes.shape
    counts = np.zeros((N, n_classes), np.int64)
    for m in range(M):
        np.add.at(counts, (np.arange(N), votes[m]), 1)
    top = counts.max(1, keepdims=True)
    is_top = counts == top
    tied = is_top.sum(1) > 1
    decision = is_top.argmax(1)  # first tied class in class order (also the answer when not tied)
    if tie_rule == "prob" and tied.any():
        if probs is None:
            raise HeadError("tie rule 'prob' needs the members' probabilities")
        mass = np.asarray(probs, np.float64).sum(0)  # [N, C]
        masked = np.where(is_top, mass, -np.inf)
        # sums within 1e-9 count as equal (summation order must not decide), then the first in class order
        best = is_top & (masked >= masked.max(1, keepdims=True) - 1e-9)
        decision = np.where(tied, best.argmax(1), decision)
    elif tie_rule == "best-member" and tied.any():
        order = list(member_order) if member_order is not None else list(range(M))
        for i in np.flatnonzero(tied):
            for m in order:
                if is_top[i, votes[m, i]]:
                    decision[i] = votes[m, i]
                    break
    return decision, counts, tied


def mean_probs(probs: np.ndarray) -> np.ndarray:
    return np.asarray(probs, np.float64).mean(0)


def logmean_probs(probs: np.ndarray) -> np.ndarray:
    z = log_scores(probs).mean(0)
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def stack_features(probs: np.ndarray) -> np.ndarray:
    """[M, N, C] -> [N, M*C] log-probabilities, member-major."""
    M, N, C = probs.shape
    return log_scores(probs).transpose(1, 0, 2).reshape(N, M * C)


@dataclass
class Combined:
    """One split's outputs of a system (an ensemble's combination, or one head) with what decided them."""

    out: SplitOutputs
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # columns written after the probabilities (votes)
    vote_shares: np.ndarray | None = None
    tied: np.ndarray | None = None
    decision: Decision | None = None  # the tuned decision applied, if any
    method: str = ""  # what produced it, as predict.json says: "head" or "ensemble (mean of 3)"


def combine(members: Sequence[SplitOutputs], letters: Sequence[str], method: str, tie_rule: str = "prob",
            member_order: Sequence[int] | None = None, stacker: Stacker | None = None,
            decision: Decision | None = None, oof: np.ndarray | None = None) -> Combined:
    """Combine aligned member outputs of one split (see the module docstring). `oof`: stacked dev
    probabilities to use instead of the stacker's (out-of-fold rows)."""
    if method not in METHODS:
        raise HeadError(f"unknown ensemble method {method!r}; choose {', '.join(METHODS)}")
    first = members[0]
    C = len(letters)
    out = SplitOutputs(list(first.ids), first.truth.copy(), first.label.copy())
    result = Combined(out)
    cls = [m for m in members if m.probs is not None]
    if cls:
        P = np.stack([m.probs for m in cls])  # [M, N, C]
        if method == "vote":
            votes = np.stack([m.decision for m in cls])
            dec, counts, tied = majority_vote(votes, C, P, tie_rule, member_order)
            out.probs, out.decision = mean_probs(P), dec
            result.vote_shares = counts / len(cls)
            result.tied = tied
            result.extra = {**{f"votes_{c}": counts[:, j] for j, c in enumerate(letters)},
                            "tie": tied.astype(np.int64)}
        else:
            if method == "mean":
                probs = mean_probs(P)
            elif method == "logmean":
                probs = logmean_probs(P)
            else:
                if stacker is None and oof is None:
                    raise HeadError("stacking needs a fitted meta-classifier")
                probs = stacker.predict_proba(stack_features(P)) if stacker is not None else np.zeros((len(first), C))
                if oof is not None:
                    have = np.isfinite(oof).all(1)
                    probs[have] = oof[have]
            out.probs = probs
            out.decision = decision.apply(probs) if decision is not None else probs.argmax(1)
    reg = [m for m in members if m.avd_pred is not None]
    if reg:
        out.avd_pred = np.stack([m.avd_pred for m in reg]).mean(0)
        out.avd_true = reg[0].avd_true
    return result


# ----------------------------------------------------------------------------------- members
@dataclass
class Member:
    run: RunOutputs
    decision: Decision | None = None

    @property
    def dev_value(self) -> float:
        v = self.run.dev_selection
        if v is None:
            m = self.run.split_metrics(self.run.dev_split)
            v = m.get("macro_f1", m.get("ccc_mean"))
        return float(v) if v is not None else float("nan")


def expand_members(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories from the arguments: a run/ensemble dir as is; a sweep (or any tree) -> its runs."""
    runs: list[Path] = []
    for p in map(Path, paths):
        if is_run_dir(p):
            runs.append(p)
        elif p.is_dir():
            runs += [r for r in find_runs([p]) if r != p]
        else:
            raise HeadError(f"{p}: no such run directory")
    return list(dict.fromkeys(runs))


def load_members(paths: Sequence[str | Path], member_decisions: bool = False) -> list[Member]:
    members = []
    for p in expand_members(paths):
        run = load_run(p)
        dec = None
        if member_decisions:
            path = run.path / "decision.json"
            if not path.is_file():
                raise HeadError(f"{run.path}: --member-decisions but no decision.json (run tune-decision on it first)")
            dec = Decision.load(path, run.letters)
        members.append(Member(run, dec))
    if not members:
        raise HeadError("no ensemble members")
    return members


def check_members(members: Sequence[Member],
                  common_ids: bool = False) -> tuple[list[str], dict[str, list[SplitOutputs]], list[str]]:
    """Shared splits with every member's outputs aligned to the first member's utterance order."""
    ref = members[0].run
    notes: list[str] = []
    for m in members[1:]:
        r = m.run
        if r.letters != ref.letters:
            raise HeadError(f"class order differs: {ref.path} has {' '.join(ref.letters)}, {r.path} has "
                            f"{' '.join(r.letters)}")
        if r.dev_split != ref.dev_split:
            raise HeadError(f"dev split differs: {ref.path} selected on {ref.dev_split!r}, {r.path} on {r.dev_split!r}")
    splits = [s for s in ref.splits if all(s in m.run.splits for m in members)]
    skipped = sorted({s for m in members for s in m.run.splits} - set(splits))
    if skipped:
        notes.append(f"split(s) {', '.join(skipped)} not predicted by every member: skipped")
    aligned: dict[str, list[SplitOutputs]] = {}
    for split in splits:
        outs = [m.run.splits[split] for m in members]
        ids = outs[0].ids
        common = set(ids)
        for o in outs[1:]:
            common &= set(o.ids)
        for m, o in zip(members, outs):
            if set(o.ids) != set(ids) or len(o.ids) != len(ids):
                only_ref = [u for u in ids if u not in set(o.ids)]
                only_m = [u for u in o.ids if u not in set(ids)]
                if not common_ids:
                    raise HeadError(
                        f"split {split!r}: {m.run.path} predicted other utterances than {ref.path} ({len(only_ref)} "
                        f"missing, e.g. {only_ref[:2]}; {len(only_m)} extra, e.g. {only_m[:2]}); members must be "
                        "scored on the same utterances (or pass --common-ids to use the intersection)")
        keep_ids = [u for u in ids if u in common]
        if len(keep_ids) != len(ids):
            notes.append(f"split {split!r}: {len(ids) - len(keep_ids)} utterance(s) not predicted by every member "
                         "were left out (--common-ids)")
        row_sets = []
        for m, o in zip(members, outs):
            where = {u: i for i, u in enumerate(o.ids)}
            a = o.take(np.array([where[u] for u in keep_ids], dtype=np.int64))
            if m.decision is not None and a.probs is not None:
                a.decision = m.decision.apply(a.probs)
                a.probs = m.decision.adjusted_probs(a.probs)
            row_sets.append(a)
        base = row_sets[0]
        for m, a in zip(members[1:], row_sets[1:]):
            differ = np.flatnonzero(a.label != base.label)
            if len(differ):
                u = base.ids[differ[0]]
                raise HeadError(f"split {split!r}: {m.run.path} and {ref.path} have different labels for "
                                f"{len(differ)} utterance(s), e.g. {u!r} ({a.truth[differ[0]]!r} vs "
                                f"{base.truth[differ[0]]!r}); were they trained on the same label file and classes?")
        aligned[split] = row_sets
    return splits, aligned, notes


# ----------------------------------------------------------------------------------- building
def _relpath(target: Path, start: Path) -> str:
    try:
        return os.path.relpath(target.resolve(), start.resolve())
    except ValueError:  # other drive (Windows)
        return str(target.resolve())


def build_ensemble(paths: Sequence[str | Path], out: str | Path, method: str = "vote", tie_rule: str = "prob",
                   stacker: str = "logreg", folds: int = 5, seed: int = 0, decision: str = "",
                   prior_counts: str = "", common_ids: bool = False, member_decisions: bool = False,
                   cv_folds: int = 5, verbose: bool = True) -> dict[str, Any]:
    """Combine run directories into an ensemble directory; returns the metrics summary."""
    if method not in METHODS:
        raise HeadError(f"unknown ensemble method {method!r}; choose {', '.join(METHODS)}")
    if tie_rule not in TIE_RULES:
        raise HeadError(f"unknown tie rule {tie_rule!r}; choose {', '.join(TIE_RULES)}")
    if decision and method == "vote":
        raise HeadError("a vote has counts, not scores, to put biases on: use --method mean/logmean/stack with "
                        "--tune-bias/--prior-correction, or tune the members and pass --member-decisions")
    members = load_members(paths, member_decisions)
    out = Path(out)
    splits, aligned, notes = check_members(members, common_ids)
    ref = members[0].run
    letters, dev = ref.letters, ref.dev_split
    if dev not in aligned:
        raise HeadError(f"dev split {dev!r} is not predicted by every member")
    has_cls = all(a.probs is not None for a in aligned[dev])
    if not has_cls and any(a.probs is not None for a in aligned[dev]):
        notes.append("some members have no class outputs: classification combines the others only")
    has_cls = any(a.probs is not None for a in aligned[dev])
    has_avd = any(a.avd_pred is not None for a in aligned[dev])
    if method in ("stack",) and not has_cls:
        raise HeadError("stacking needs classification members")
    order = sorted(range(len(members)), key=lambda i: -np.nan_to_num(members[i].dev_value, nan=-np.inf))
    cls_order = [i for i in order if aligned[dev][i].probs is not None]
    cls_rank = [sum(1 for j in range(i) if aligned[dev][j].probs is not None) for i in cls_order]
    fitted, oof_dev, stack_info = fit_stacker_on_dev(aligned[dev], len(letters), stacker, folds, seed, dev, notes) \
        if method == "stack" else (None, None, None)

    def run_combine(split: str, dec: Decision | None) -> Combined:
        return combine(aligned[split], letters, method, tie_rule, cls_rank, fitted, dec,
                       oof_dev if split == dev else None)

    # the system without decision, then (optionally) the decision tuned on its dev outputs
    plain = {s: run_combine(s, None) for s in splits}
    dec_obj = tune_ensemble_decision(plain[dev].out, letters, ref, decision, prior_counts, cv_folds, seed) \
        if decision else None
    if dec_obj is not None and method == "stack":
        notes.append("decision tuned on the out-of-fold stacked dev probabilities")
    final = {s: run_combine(s, dec_obj) if dec_obj is not None else plain[s] for s in splits}
    run = RunDir(out, ref.corpus)
    metrics, before = write_ensemble_splits(run, final, plain if dec_obj is not None else None, letters, seed)
    member_rows = [member_row(m, out) for m in members]
    task = "both" if has_cls and has_avd else ("class" if has_cls else "avd")
    spec = {"format": FORMAT, "method": method if has_cls else "mean", "tie_rule": tie_rule,
            "tie_rule_text": TIE_TEXT[tie_rule], "classes": {"letters": letters, "names": ref.names},
            "task": task, "corpus": ref.corpus, "dev_split": dev, "splits": splits, "members": member_rows,
            "member_decisions": member_decisions, "common_ids": common_ids, "stacker": stack_info,
            "decision": None if dec_obj is None else dec_obj.to_dict(), "regression": "mean of members' A/V/D"
            if has_avd else None, "seed": seed}
    run.config(spec, ensemble=True)
    if dec_obj is not None:
        dec_obj.save(out / "decision.json")
    sel_metric = "macro_f1" if has_cls else "ccc_mean"
    summary = {"out": str(out), "kind": "ensemble", "method": spec["method"], "tie_rule": tie_rule,
               "dev_split": dev, "selection": {"metric": sel_metric, "value": metrics.get(dev, {}).get(sel_metric)},
               "splits": {dev: metrics.get(dev, {}), **{s: v for s, v in metrics.items() if s != dev}},
               "before_decision": before or None, "classes": letters, "members": member_rows, "notes": notes,
               "decision": None if dec_obj is None else {"method": dec_obj.method, "bias": dec_obj.bias.tolist(),
                                                         "cv": dec_obj.report.get("cv")}}
    run.metrics(summary)
    if verbose:
        print(ensemble_table(summary))
    return summary


def fit_stacker_on_dev(dev: Sequence[SplitOutputs], n_classes: int, stacker: str, folds: int, seed: int,
                       dev_split: str, notes: list[str]) -> tuple[Stacker, np.ndarray, dict[str, Any]]:
    """--method stack: the meta-classifier fit on all labelled dev rows, and dev's out-of-fold probabilities (so
    that dev metrics are not scored on the rows the stacker saw)."""
    P = np.stack([a.probs for a in dev if a.probs is not None])
    labelled = np.flatnonzero(dev[0].label >= 0)
    y = dev[0].label[labelled]
    res = stack(stack_features(P[:, labelled]), y, n_classes, kind=stacker, k=folds, seed=seed)
    oof_dev = np.full((P.shape[1], n_classes), np.nan)
    oof_dev[labelled] = res.oof
    info = {"kind": stacker, "folds": int(len(res.train_rows)), "trained_on": dev_split,
            "features": "members' log-probabilities, member-major", "rows": int(len(y)), "model": res.final.to_dict()}
    notes.append(f"stack: dev metrics are out-of-fold ({len(res.train_rows)} folds); other splits use the "
                 "meta-classifier fit on all dev rows")
    return res.final, oof_dev, info


def tune_ensemble_decision(dev: SplitOutputs, letters: list[str], ref: RunOutputs, decision: str, prior_counts: str,
                           cv_folds: int, seed: int) -> Decision:
    """The ensemble's own decision (bias, prior, prior+bias) tuned on its labelled dev outputs."""
    labelled = dev.label >= 0
    counts, source = None, ""
    if "prior" in decision:
        counts, source = ((parse_counts(prior_counts, letters), "--prior-counts") if prior_counts else
                          train_counts(ref.config if ref.kind == "run" else {}, ref.metrics))
    dec_obj, info = decide(dev.probs[labelled], dev.label[labelled], letters, decision, counts, source, cv_folds, seed)
    dec_obj.report.update(info)
    return dec_obj


def write_ensemble_splits(run: RunDir, final: dict[str, Combined], plain: dict[str, Combined] | None,
                          letters: list[str], seed: int = 0) -> tuple[dict[str, dict], dict[str, dict]]:
    """Every split's predictions and metrics (with the vote's tie count and 95 % bootstrap intervals seeded by
    the ensemble's seed, as a trained run's); `plain`: the same without the tuned decision, scored for
    comparison (point values only)."""
    metrics: dict[str, dict] = {}
    before: dict[str, dict] = {}
    for s, combined in final.items():
        run.predictions(s, combined.out, letters, combined.extra)
        m = score(combined.out, letters, seed=seed)
        if m:
            metrics[s] = m
        if plain is not None:
            b = score(plain[s].out, letters)
            if b:
                before[s] = b
        if combined.tied is not None:
            metrics.setdefault(s, {})["ties"] = int(combined.tied.sum())
    return metrics, before


def member_row(m: Member, out: Path) -> dict[str, Any]:
    """What ensemble.json records of a member (found again by its path relative to the ensemble first)."""
    return {"path": str(m.run.path.resolve()), "relpath": _relpath(m.run.path, out), "name": m.run.name,
            "kind": m.run.kind, "task": m.run.task, "features": m.run.config.get("features", []),
            "text_features": m.run.config.get("text_features", []), "loss": m.run.config.get("loss"),
            "dev_selection": m.dev_value, "selection_metric": m.run.selection_metric,
            "decision": None if m.decision is None else m.decision.method}


def ensemble_table(summary: dict[str, Any]) -> str:
    lines = [f"ensemble {summary['out']}: {summary['method']} of {len(summary['members'])} member(s)"
             + (f", tie rule {summary['tie_rule']}" if summary["method"] == "vote" else "")]
    w = max(len(m["name"]) for m in summary["members"]) if summary["members"] else 4
    lines.append(f"{'member':<{w}}  dev selection (metric)")  # members may be selected on different metrics
    for m in summary["members"]:
        v = m["dev_selection"]
        lines.append(f"{m['name']:<{w}}  {'-' if v is None or v != v else f'{100 * v:.2f}'}  ({m['selection_metric']})")
    lines.append(summary_table({"splits": summary["splits"]}))
    dec = summary.get("decision")
    if dec:
        lines.append(f"decision {dec['method']} (tuned on dev, so dev is optimistic): bias "
                     + " ".join(f"{c} {b:+.3f}" for c, b in zip(summary["classes"], dec["bias"])))
        if dec.get("cv"):
            cv = dec["cv"]
            lines.append(f"honest estimate ({cv['folds']}-fold CV on dev): Macro-F1 {100 * cv['macro_f1_untuned']:.2f} "
                         f"-> {100 * cv['macro_f1_oof']:.2f} (tuned, out-of-fold)")
    if summary.get("before_decision"):
        lines.append("before the decision (no biases):")
        lines.append(summary_table({"splits": summary["before_decision"]}))
    for note in summary.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def load_ensemble(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        spec = json.loads((path / "ensemble.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise HeadError(f"{path}: cannot read ensemble.json ({err})") from None
    if spec.get("format") != FORMAT:
        raise HeadError(f"{path}: not a sercache ensemble (format {spec.get('format')!r})")
    return spec


# ----------------------------------------------------------------------------------- recipes
RECIPES = ("sheffield7",)
FAMILIES = {"whisper": "whisper-large-v3/L-1", "wavlm": "wavlm-large/L-1", "hubert": "hubert-xlarge/L-1"}


def parse_recipe_features(text: str) -> dict[str, str] | str:
    """'whisper=NAME,wavlm=NAME,hubert=NAME' -> mapping; a single 'NAME' -> that set for every member."""
    text = text.strip()
    if not text:
        return {}
    if "=" not in text:
        return text
    out = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, _, value = part.partition("=")
        key = key.strip().lower()
        if key not in FAMILIES or not value.strip():
            raise HeadError(f"--recipe-features {part!r}: use whisper=NAME, wavlm=NAME, hubert=NAME (or one NAME "
                            "for all members)")
        out[key] = value.strip()
    return out


def recipe_configs(recipe: str, base_features: Sequence[str], mapping: dict[str, str] | str, seed: int
                   ) -> list[dict[str, Any]]:
    """The recipe's override dicts with feature names mapped to the store's; configs that became identical
    (one feature set for all) get distinct seeds so each member is a different model."""
    if recipe not in RECIPES:
        raise HeadError(f"unknown recipe {recipe!r}; choose {', '.join(RECIPES)}")
    family_of = {v: k for k, v in FAMILIES.items()}
    configs = []
    for overrides in PRESETS[recipe]:
        c = {k: v for k, v in overrides.items() if k != "text_features"}  # text comes from --text-features
        names = c.get("features", [])
        if isinstance(mapping, str):
            c["features"] = [mapping]
        elif mapping:
            c["features"] = [mapping.get(family_of.get(n, ""), n) for n in names]
        elif base_features:
            c["features"] = list(base_features)
        configs.append(c)
    seen: list[dict[str, Any]] = []
    for i, c in enumerate(configs):
        if c in seen:
            c["seed"] = seed + i
        seen.append(dict(c))
    return configs


def run_recipe(recipe: str, base, recipe_features: str = "", verbose: bool = True, **ensemble_options: Any
               ) -> dict[str, Any]:
    """Train the recipe's members as one sweep (one loaded copy of the data) and vote over them."""
    mapping = parse_recipe_features(recipe_features)
    configs = recipe_configs(recipe, base.features, mapping, base.seed)
    if base.store:  # every feature set must exist before the first member trains
        pool = FeaturePool(base.store, default_device("cpu"))
        available = pool.store.feature_sets()
        missing = sorted({n for c in configs for n in c.get("features", []) if n not in available})
        if missing:
            raise HeadError(f"recipe {recipe}: feature set(s) {', '.join(missing)} not in {base.store} (available: "
                            f"{', '.join(available) or 'none'}); map them with --recipe-features "
                            "whisper=NAME,wavlm=NAME,hubert=NAME, or one NAME for all members")
    out = Path(base.out)
    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / "recipe.json"
    write_json(spec_path, configs)
    train_sweep(base.replace(tune_bias=False), str(spec_path), verbose=verbose)
    if rank_world()[0] != 0:  # under torchrun every rank trained its share; rank 0 votes
        return {}
    # names as the sweep derives them from the file (whose keys are sorted on writing)
    runs = [out / "runs" / config_name(i, c) for i, c in enumerate(expand(str(spec_path)))]
    return build_ensemble(runs, out, verbose=verbose, **ensemble_options)
