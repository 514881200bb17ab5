"""One typed configuration shared by the Python API, the CLI, sweeps and the run directory.

The command-line flags are generated from the dataclass fields (sercache.dataclass_cli), so a new
option is added in one place and appears everywhere (CLI flag, config.json, sweep grids) with the
same name; allowed values come from the modules that implement them (losses, samplers, corpora).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from sercache.dataclass_cli import THREADS_HELP

from ..errors import HeadError
from ..inputs.corpora import AUTO, CORPORA, LabelSource, get_corpus, named_columns
from ..inputs.corpora.csv import GENERIC_COLUMNS
from ..inputs.sampling import SAMPLERS
from .losses import LOSSES, SOFT_LOSSES
from .schedule import SCHEDULES


def opt(default: Any, help: str, choices: Sequence[Any] | None = None, group: str = "general") -> Any:
    """A dataclass field carrying its CLI help text and allowed values."""
    meta = {"help": help, "choices": tuple(choices) if choices else None, "group": group}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


# Named groups of settings, applied under the values a user gives (see HeadConfig.from_values).
# small-data: for a few hundred to a few thousand training files (IEMOCAP-sized corpora). The paper's
# 512-wide head at batch 128 takes 4 optimiser steps per epoch on 500 files and costs ~10x more per epoch
# on a CPU: a narrower head, smaller batches, a higher learning rate, more epochs. On so few dev files the
# dev metric jumps by points between epochs, so the plateau rule halves the rate on noise: a cosine decay
# with warm-up that does not read dev, and a weight average (EMA over ~3 epochs) that is what dev selects
# and the checkpoint keeps. Audio frames averaged 4 at a time (12.5/s) cost 4x less with no measured loss.
# BENCHMARKS.md ("Learning") has each step measured over 3 seeds against the baselines.
PRESETS: dict[str, dict[str, Any]] = {
    "small-data": {"hidden": 128, "d_model": 128, "ff_dim": 256, "dropout": 0.2, "batch_size": 32, "lr": 5e-4,
                   "max_epochs": 30, "patience": 0, "schedule": "cosine", "warmup_epochs": 1.0, "ema_epochs": 3.0,
                   "frame_stride": 4},
}


# The values each numeric option accepts, as an interval: anything outside is refused by the option's name before
# a run starts (a negative --gamma would train a focal loss that favours the easy examples, without a word).
RANGES: dict[str, str] = {
    **dict.fromkeys(("batch_size", "max_epochs", "hidden", "d_model", "heads", "ff_dim", "eval_batch_size",
                     "bucket_batches", "frame_stride", "fusion_rank", "balanced_trials"), "[1, inf)"),
    **dict.fromkeys(("layers", "deep_layers", "fusion_dim", "balanced_k", "patience", "plateau_patience",
                     "two_stage_epoch", "max_seconds", "grad_clip", "weight_decay", "warmup_epochs", "ema_epochs",
                     "unimodal_weight", "aux_weight", "avd_weight", "gamma", "am_margin", "weight_power", "threads",
                     "max_host_gb"), "[0, inf)"),
    **dict.fromkeys(("lr", "am_scale", "mixup_alpha", "stage2_lr_factor"), "(0, inf)"),
    **dict.fromkeys(("dropout", "modality_dropout", "annotation_dropout"), "[0, 1)"),
    **dict.fromkeys(("mixup_p", "min_agreement"), "[0, 1]"),
    "plateau_factor": "(0, 1]",
}


def check_range(name: str, value: float, interval: str) -> None:
    """Refuse `value` outside `interval` ("[0, 1)", "(0, inf)", ...), naming the option and what it accepts."""
    low, high = (float(x) for x in interval[1:-1].split(","))
    inside = (value >= low if interval[0] == "[" else value > low) and \
             (value <= high if interval[-1] == "]" else value < high)
    if not inside:
        accepted = (f"{'>=' if interval[0] == '[' else '>'} {low:g}" if high == float("inf") else f"in {interval}")
        raise HeadError(f"--{flag(name)} {value:g}: must be {accepted}")


@dataclass
class HeadConfig:
    # --- data -----------------------------------------------------------------------------
    store: str = opt("", "feature store directory (sercache.cache)", group="data")
    features: list = opt([], "audio feature set(s); several sets with equal frame shape are stacked as "
                             "layers and mixed by a learned weighted sum", group="data")
    text_features: list = opt([], "text (token-level) feature set(s)", group="data")
    corpus: str = opt(AUTO, "label format: auto (recognised from --labels: MSP-Podcast's consensus columns, an "
                            "IEMOCAP release root, an EmoBox corpus folder, else a generic .csv/.tsv), or one of "
                            "the formats",
                      (AUTO, *CORPORA), group="data")
    labels: str = opt("", "msp: labels_consensus.csv (or its Labels/ dir); iemocap: release root; emobox: a "
                          "corpus folder data/<name> (<name>.jsonl, fold_<k>/, label_map.json); csv: a .csv/.tsv "
                          "with an id, a split and a label column", group="data")
    id_column: str = opt("", "generic CSV: the column of utterance ids (default: the first of "
                             + "/".join(GENERIC_COLUMNS["id"]) + ")", group="data")
    label_column: str = opt("", "generic CSV: the column of emotion labels (default: the first of "
                                + "/".join(GENERIC_COLUMNS["label"]) + ")", group="data")
    split_column: str = opt("", "generic CSV: the column of split names (default: the first of "
                                + "/".join(GENERIC_COLUMNS["split"]) + "; train/training, dev/development/"
                                "validation/valid/val and test/testing are read as train, dev and test)",
                            group="data")
    detailed: str = opt("", "msp: labels_detailed.csv (needed for --soft-labels, --min-agreement)", group="data")
    classes: list = opt([], "the classes to train and score, in this order (default: every class of the corpus; a "
                            "CSV's sorted labels); the corpus' other labels are left out like MSP-Podcast's O/X, "
                            "e.g. A S H N for MSP-Podcast's 4-class task", group="data")
    fold: str = opt("", "fold protocols (iemocap: test session 1..5; emobox: the corpus's folds): a fold, 'all' "
                        "for one run per fold, or 'whole' (any corpus): train on every labelled utterance but a "
                        "dev part, a model for use on other data", group="data")
    iemocap_dev: str = opt("next-session", "iemocap: speaker-disjoint dev set taken from the training "
                                           "sessions", ("next-session", "next-speaker"), group="data")
    train_split: str = opt("train", "split used for training", group="data")
    dev_split: str = opt("dev", "split used for model selection", group="data")
    test_splits: list = opt([], "splits to predict after training (default: every other split present)",
                            group="data")
    include_ox: bool = opt(False, "keep O (Other) / X (no agreement) samples in training (they carry "
                                  "A/V/D targets and soft labels but no class)", group="data")
    min_agreement: float = opt(0.0, "keep training samples whose primary-vote agreement is >= this "
                                    "(CONILIUM P*: 0.6); needs --detailed", group="data")
    drop_missing: bool = opt(False, "drop labelled utterances missing from the cache instead of failing",
                             group="data")
    allow_empty_classes: bool = opt(False, "only warn when a class has no sample in the dev split",
                                    group="data")
    max_seconds: float = opt(0.0, "truncate audio beyond this many seconds (0: no limit)", group="data")
    allow_human_text: bool = opt(False, "accept text features of human transcripts (test sets have none, so "
                                        "training on them mismatches test-time ASR text)", group="data")
    speaker_norm: bool = opt(False, "standardise every utterance's features (audio and text) per channel with the mean "
                                    "and std of its own speaker's utterances in its split (test speakers included: "
                                    "from their own test utterances, no label used), before --input-norm: removes "
                                    "what is constant in a speaker's voice, so heads generalise better to unseen "
                                    "speakers (common on IEMOCAP); every utterance needs a speaker in the labels, "
                                    "and `predict` then needs a store and --labels with speakers", group="data")

    # --- model ----------------------------------------------------------------------------
    fusion: str = opt("early", "how modalities are combined (one modality given: that modality only): early "
                               "(concatenated pooled vectors), late (averaged per-modality outputs), deep (plus "
                               "transformer layers over the joined sequences), tensor (TFN: outer product of the "
                               "pooled vectors, each projected to --fusion-dim and extended by a constant 1), lowrank "
                               "(LMF: rank --fusion-rank factors of that tensor, no outer product formed)",
                      ("early", "late", "deep", "tensor", "lowrank"), group="model")
    fusion_rank: int = opt(4, "--fusion lowrank: rank r of the modality factors (the fused vector is a sum of r "
                              "elementwise products; Liu et al. 2018 use 1-16)", group="model")
    fusion_dim: int = opt(32, "--fusion tensor: each pooled vector is projected to this size before the outer "
                              "product, so two modalities give (32+1)^2 = 1089 fusion-MLP inputs (0: no projection, "
                              "(512+1)^2 = 263,169 inputs at the paper's sizes)", group="model")
    hidden: int = opt(512, "hidden size of the MLPs", group="model")
    d_model: int = opt(512, "transformer width", group="model")
    layers: int = opt(2, "transformer layers per modality", group="model")
    heads: int = opt(1, "attention heads", group="model")
    ff_dim: int = opt(2048, "transformer feed-forward size", group="model")
    deep_layers: int = opt(2, "transformer layers over the time-concatenated modalities (--fusion deep)",
                           group="model")
    dropout: float = opt(0.1, "dropout", group="model")
    frame_stride: int = opt(1, "audio frames: the mean of every k consecutive valid frames enters the frame MLP "
                               "(k = 4: 50 -> 12.5 frames/s, about k times less transformer compute; 1: every "
                               "frame, the paper's)", group="model")
    modality_dropout: float = opt(0.0, "fusion heads: per training sample, with this probability one modality "
                                       "(drawn uniformly) is left out of the fusion, so the head cannot lean on one "
                                       "modality alone (ModDrop, Neverova et al. 2015); never applied at inference",
                                  group="model")
    pooling: str = opt("mean", "masked mean pooling or attentive statistics pooling", ("mean", "attentive"),
                       group="model")
    input_norm: bool = opt(True, "standardise every input channel with the train split's mean and std (kept in "
                                 "the checkpoint): cached encoder channels differ widely in scale and offset",
                           group="model")
    head: str = opt("paper", "paper: MLP -> transformer -> pooling -> fusion MLP; baseline: the Odyssey 2024 "
                             "challenge baseline's shape (no transformer, attentive statistics pooling: sets "
                             "--layers 0 --pooling attentive); probe: mean-pooled, standardised features -> "
                             "multinomial logistic regression (C chosen on dev)", ("paper", "baseline", "probe"),
                    group="model")

    # --- task and objective ---------------------------------------------------------------
    task: str = opt("auto", "class: categorical; avd: arousal/valence/dominance; both (auto: avd for "
                            "--loss ccc, else class)", ("auto", "class", "avd", "both"), group="objective")
    loss: str = opt("ce", "classification loss (ccc: regression only)", LOSSES, group="objective")
    gamma: float = opt(2.0, "focal loss exponent", group="objective")
    am_margin: float = opt(0.2, "AM-Softmax cosine margin", group="objective")
    am_scale: float = opt(30.0, "AM-Softmax scale", group="objective")
    weights: str = opt("uniform", "class weights: uniform w=1, prior w=N/N_j", ("uniform", "prior"),
                       group="objective")
    weights_from: str = opt("train", "split the prior weights are counted on", ("train", "dev"),
                            group="objective")
    weight_norm: str = opt("none", "scale prior weights: none; classes: divide by C (baseline N/(C N_j)); "
                                   "mean: mean weight 1", ("none", "classes", "mean"), group="objective")
    weight_power: float = opt(1.0, "raise class weights to this power (MEDUSA: 0.5)", group="objective")
    loss_norm: str = opt("n", "normaliser of hard-label losses: n = 1/N (paper), weight-sum = 1/sum w_y "
                              "(torch CrossEntropyLoss(weight=))", ("n", "weight-sum"), group="objective")
    soft_labels: str = opt("", "train on annotator distributions: P primary votes, S secondary mentions",
                           ("", "P", "S"), group="objective")
    annotation_dropout: float = opt(0.0, "SAIL: drop each annotator with this probability when forming "
                                         "soft labels, per step", group="objective")
    unimodal_weight: float = opt(0.0, "fusion heads: add this weight x the emotion loss of a classifier on each "
                                      "modality's pooled vector alone (late fusion: of each branch's own output), so "
                                      "that no modality is left under-trained (after Wang et al. 2020, \"What makes "
                                      "training multi-modal classification networks hard?\"); the extra classifiers "
                                      "are not used to predict", group="objective")
    aux: str = opt("", "auxiliary task", ("", "gender"), group="objective")
    aux_weight: float = opt(1.0, "L = L_emotion + aux_weight * L_aux", group="objective")
    avd_loss: str = opt("ccc", "regression loss for --task both/avd", ("ccc", "mse"), group="objective")
    avd_weight: float = opt(1.0, "weight of the A/V/D loss in --task both (MEDUSA: 0.4 with mse)",
                            group="objective")

    # --- sampling and optimisation ----------------------------------------------------------
    sampler: str = opt("shuffle", "shuffle: every sample once; undersample: min_j N_j per class per epoch; "
                                  "balanced: draw with weight 1/f_class", SAMPLERS,
                       group="training")
    preset: str = opt("", "a named group of settings under the ones you give; small-data: "
                          + ", ".join(f"{k}={v}" for k, v in PRESETS["small-data"].items()),
                      ("", *PRESETS), group="training")
    batch_size: int = opt(128, "training batch size", group="training")
    bucket_batches: int = opt(32, "batches per length-sorting window (1: no length bucketing)",
                              group="training")
    lr: float = opt(1e-4, "AdamW learning rate", group="training")
    weight_decay: float = opt(0.01, "AdamW weight decay", group="training")
    max_epochs: int = opt(20, "maximum epochs", group="training")
    patience: int = opt(5, "early stopping: epochs without dev improvement (0: off)", group="training")
    schedule: str = opt("plateau", "learning-rate schedule: plateau (the paper's: multiply by --plateau-factor "
                                   "after --plateau-patience epochs without dev improvement) or cosine (decay towards "
                                   "0 over --max-epochs, whatever dev does)", SCHEDULES, group="training")
    warmup_epochs: float = opt(0.0, "linear learning-rate warm-up over this many epochs, stepped per batch",
                               group="training")
    ema_epochs: float = opt(0.0, "evaluate and keep an exponential moving average of the weights over about this "
                                 "many epochs (decay 1 - 1/(epochs x batches per epoch); 0: off)", group="training")
    plateau_patience: int = opt(2, "ReduceLROnPlateau patience", group="training")
    plateau_factor: float = opt(0.5, "ReduceLROnPlateau factor", group="training")
    grad_clip: float = opt(0.0, "clip gradient norm (0: off)", group="training")
    select: str = opt("auto", "dev metric for the best checkpoint: macro-f1, ccc (mean), or the USC "
                              "balanced-subsample version of the task's metric",
                      ("auto", "macro-f1", "ccc", "balanced"), group="training")
    balanced_k: int = opt(0, "samples per class per trial for --select balanced (0: smallest dev class)",
                          group="training")
    balanced_trials: int = opt(10, "trials for --select balanced", group="training")
    two_stage_epoch: int = opt(0, "MEDUSA: from this epoch (1-based) train undersampled, unweighted, at a "
                                  "lower lr (0: off)", group="training")
    stage2_lr_factor: float = opt(0.1, "lr multiplier of the second stage", group="training")
    mixup_p: float = opt(0.0, "manifold mixup probability per batch (MEDUSA: 0.3)", group="training")
    mixup_alpha: float = opt(0.2, "manifold mixup Beta(alpha, alpha)", group="training")
    tune_bias: bool = opt(False, "after training, tune per-class additive biases on dev for Macro-F1 "
                                 "(coordinate ascent, never lowers dev Macro-F1); saved as decision.json beside "
                                 "the checkpoint and applied by predict-head", group="training")

    # --- runtime --------------------------------------------------------------------------
    out: str = opt("runs/head", "run directory", group="runtime")
    seed: int = opt(0, "random seed (same seed, same numbers on CPU)", group="runtime")
    seeds: list = opt([], "train one run per seed over one loaded copy of the data (out/seed<k>) and write "
                          "the mean ± std over seeds to out/seeds.json and seeds.md, e.g. 0,1,2", group="runtime")
    data_seed: int = opt(-1, "seed of the batch order (which rows form each batch, epoch by epoch); -1: --seed",
                         group="runtime")
    lockstep: bool = opt(False, "--seeds / --sweep: train the heads that share their data settings together, one "
                                "batch gathered once for all (K forward/backward passes); each keeps its own seed "
                                "for initialisation and dropout, and with --seeds all share the first seed's batch "
                                "order (--data-seed), recorded in each run's config.json", group="runtime")
    device: str = opt("auto", "cpu, cuda, cuda:N or auto", group="runtime")
    placement: str = opt("auto", "where features live: device memory, pinned host memory, or streamed "
                                 "from the store", ("auto", "device", "host", "stream"), group="runtime")
    resident_dtype: str = opt("float16", "dtype of the frames held in device/host memory: float16 keeps the cache's "
                                         "own dtype; bfloat16 is converted on load; float8 stores e4m3 codes with one "
                                         "scale s per channel (absmax / 448 over the loaded set; error <= "
                                         "max(|x| / 16, s / 1024)) and de-quantises per batch, so twice the frames of "
                                         "float16 fit on the device", ("float16", "bfloat16", "float8"),
                              group="runtime")
    max_host_gb: float = opt(0.0, "RAM the features may take (0: 80 percent of what is available); a cache larger than "
                                  "this is streamed from the store", group="runtime")
    batch_order: str = opt("auto", "random: batches drawn from the whole split; blocks: store blocks in random order "
                                   "through a shuffle buffer of --max-host-gb / 2, length-bucketed inside it, so a "
                                   "streamed cache is read sequentially (auto: blocks when streaming)",
                           ("auto", "random", "blocks"), group="runtime")
    prefetch: int = opt(-1, "batches gathered ahead in a background thread (on CUDA, copied on a side stream), so "
                            "gathering and the host-to-device copy overlap with compute; -1: 2 when the features are "
                            "in host memory with a GPU, or streamed from the store, else 0", group="runtime")
    amp: str = opt("auto", "bf16 autocast (auto: on for CUDA)", ("auto", "bf16", "off"), group="runtime")
    eval_batch_size: int = opt(512, "batch size for dev/test inference", group="runtime")
    threads: int = opt(0, THREADS_HELP, group="runtime")
    progress: bool = opt(True, "show tqdm progress bars", group="runtime")
    save_checkpoint: bool = opt(True, "write best.safetensors", group="runtime")

    # ------------------------------------------------------------------------------------------
    def resolved_task(self) -> str:
        if self.task != "auto":
            return self.task
        return "avd" if self.loss == "ccc" else "class"

    def validate(self) -> "HeadConfig":
        """Reject impossible combinations with a message naming the option."""
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value not in choices:
                raise HeadError(f"--{flag(f.name)}: unknown value {value!r}; choose one of "
                                f"{', '.join(repr(c) for c in choices)}")
        task = self.resolved_task()
        if self.loss == "ccc" and task != "avd":
            raise HeadError("--loss ccc is a regression loss: use --task avd (or --task both with a "
                            "classification --loss and --avd-loss ccc)")
        if task in ("class", "both") and self.loss == "ccc":
            raise HeadError("--task both needs a classification --loss; the A/V/D part uses --avd-loss")
        if self.loss_norm == "weight-sum" and (self.loss in SOFT_LOSSES or self.soft_labels):
            raise HeadError("--loss-norm weight-sum is defined for hard-label ce/focal/amsoftmax only; the "
                            "soft-label losses divide by N (wbce) and N*C (kld)")
        if self.soft_labels and self.loss == "amsoftmax":
            raise HeadError("--soft-labels with --loss amsoftmax is not defined; use ce, focal, wbce or kld")
        if self.annotation_dropout and not self.soft_labels:
            raise HeadError("--annotation-dropout needs --soft-labels P or S")
        corpus = None if self.corpus == AUTO else get_corpus(self.corpus)  # auto: checked again once resolved
        if (self.soft_labels or self.min_agreement > 0) and corpus is not None and not corpus.detailed:
            raise HeadError("--soft-labels / --min-agreement need per-annotator labels (--corpus "
                            f"{' or '.join(n for n in CORPORA if get_corpus(n).detailed)})")
        if (self.soft_labels or self.min_agreement > 0) and not self.detailed:
            raise HeadError("--soft-labels / --min-agreement need --detailed labels_detailed.csv")
        if not self.features and not self.text_features:
            raise HeadError("no input: give --features (audio) and/or --text-features")
        if self.d_model % self.heads:
            raise HeadError(f"--d-model {self.d_model} is not divisible by --heads {self.heads}")
        for name, interval in RANGES.items():
            check_range(name, getattr(self, name), interval)
        if self.select == "macro-f1" and task == "avd":
            raise HeadError("--select macro-f1 needs a classification task")
        if self.select == "ccc" and task == "class":
            raise HeadError("--select ccc needs --task avd or both")
        if corpus is not None:
            corpus.check_fold(self.fold)
        return self

    def label_source(self, strict_detailed: bool = True) -> LabelSource:
        """Where this run's labels come from: the file, the detailed file, --classes and the named columns."""
        return LabelSource(self.labels, self.detailed, tuple(self.classes), named_columns(vars(self)), strict_detailed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "HeadConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise HeadError(f"unknown config key(s): {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> "HeadConfig":
        """A config from the values given, over their preset's settings (if they name one), over the defaults."""
        name = values.get("preset", "")
        if name not in ("", *PRESETS):
            raise HeadError(f"--preset {name!r}: unknown; choose one of {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS.get(name, {}), **values})

    def replace(self, **changes: Any) -> "HeadConfig":
        current = self.to_dict()
        current.update(changes)
        return HeadConfig.from_dict(current)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def flag(name: str) -> str:
    return name.replace("_", "-")


def coerce(name: str, text: str) -> Any:
    """Parse a string (from a sweep grid) into the type of config field `name`."""
    fields = {f.name: f for f in dataclasses.fields(HeadConfig)}
    if name not in fields:
        raise HeadError(f"unknown config key {name!r}")
    default = fields[name].default if fields[name].default is not dataclasses.MISSING else []
    if isinstance(default, bool):
        low = text.lower()
        if low not in ("1", "0", "true", "false", "yes", "no"):
            raise HeadError(f"{name}: {text!r} is not a boolean")
        return low in ("1", "true", "yes")
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    if isinstance(default, list):
        return [t for t in text.split("+") if t]
    return text


def selection_metric(cfg: HeadConfig) -> str:
    task = cfg.resolved_task()
    if cfg.select == "auto":
        return "macro_f1" if task in ("class", "both") else "ccc_mean"
    if cfg.select == "balanced":
        return "balanced_macro_f1" if task in ("class", "both") else "balanced_ccc_mean"
    return {"macro-f1": "macro_f1", "ccc": "ccc_mean"}[cfg.select]
