"""The plan of a training command: which runs one config stands for, and which of them can share batches.

A config is checked here as a whole (the dataclass' own checks, then the chosen head kind's, then --seeds),
expanded into runs (seeds x folds x sweep: seeds.py, folds.py and sweep.py say how each expands and
summarises) and grouped for lockstep: heads whose data settings are equal train on one batch order
(loop.py), one gather for all of them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from ..errors import HeadError
from ..inputs.corpora import AUTO, resolve_corpus
from .baseline import check_baseline_config
from .config import PRESETS, HeadConfig
from .probe import check_probe_config

# each head kind's option checks, kept with that head
HEAD_CHECKS: dict[str, Callable[[HeadConfig], None]] = {"probe": check_probe_config, "baseline": check_baseline_config,
                                                        "paper": lambda cfg: None}

# What lockstep members may set differently: the model, the objective, the optimisation and the run's own
# settings. Every other HeadConfig field decides rows, targets or batches and must be equal.
HEAD_KEYS = frozenset({
    "fusion", "fusion_rank", "fusion_dim", "hidden", "d_model", "layers", "heads", "ff_dim", "deep_layers",
    "dropout", "frame_stride", "modality_dropout", "pooling", "input_norm", "head",
    "loss", "gamma", "am_margin", "am_scale", "weights", "weights_from", "weight_norm", "weight_power", "loss_norm",
    "unimodal_weight", "aux", "aux_weight", "avd_loss", "avd_weight",
    "lr", "weight_decay", "max_epochs", "patience", "schedule", "warmup_epochs", "ema_epochs", "plateau_patience",
    "plateau_factor", "grad_clip", "select", "balanced_k", "balanced_trials", "stage2_lr_factor", "mixup_p",
    "mixup_alpha", "tune_bias", "out", "seed", "seeds", "amp", "progress", "save_checkpoint", "preset", "lockstep",
})


def check(cfg: HeadConfig) -> HeadConfig:
    """Every check of a config before anything is read: its own fields, its head kind's options, its seeds."""
    cfg.validate()
    HEAD_CHECKS[cfg.head](cfg)
    parse_seeds(cfg.seeds)
    check_preset_applied(cfg)
    return cfg


def check_preset_applied(cfg: HeadConfig) -> None:
    """`HeadConfig(preset=...)` names a preset without applying it (the dataclass cannot tell a value given from
    its default); only HeadConfig.from_values, which the command line uses, lays it under the given values. A
    config that names a preset and holds none of its values is refused rather than trained as the defaults."""
    if not cfg.preset:
        return
    defaults = {f.name: f.default for f in dataclasses.fields(HeadConfig)}
    differing = {k: v for k, v in PRESETS[cfg.preset].items() if v != defaults[k]}
    if differing and all(getattr(cfg, k) != v for k, v in differing.items()):
        raise HeadError(f"preset {cfg.preset!r} is named but none of its values is set ({', '.join(differing)} "
                        "are the defaults): build the config with HeadConfig.from_values({..., 'preset': "
                        f"{cfg.preset!r}}}), as the command line does")


def parse_seeds(values: Sequence[Any]) -> list[int]:
    """--seeds values (ints, or strings from the command line / a sweep grid) as distinct ints, in order."""
    seeds = []
    for v in values:
        try:
            seeds.append(int(v))
        except (TypeError, ValueError):
            raise HeadError(f"--seeds: {v!r} is not an integer seed (e.g. --seeds 0,1,2)") from None
    duplicated = sorted({s for s in seeds if seeds.count(s) > 1})
    if duplicated:
        raise HeadError(f"--seeds: seed(s) {', '.join(map(str, duplicated))} given twice")
    return seeds


def runs_all_folds(cfg: HeadConfig) -> bool:
    if cfg.corpus == AUTO and not cfg.labels:  # no labels to recognise a fold protocol in yet
        return False
    return resolve_corpus(cfg.corpus, cfg.labels).runs_all_folds(cfg.fold)


def can_lockstep(cfg: HeadConfig) -> bool:
    """Neural heads of one split share batches; the probe (one sklearn fit) and an all-folds run do not."""
    return cfg.head != "probe" and not runs_all_folds(cfg)


def data_seed(cfg: HeadConfig) -> int:
    """The seed of the batch order: --data-seed, or the run's own seed."""
    return cfg.data_seed if cfg.data_seed >= 0 else cfg.seed


def data_signature(cfg: HeadConfig) -> tuple:
    """What must be equal for heads to share batches (HEAD_KEYS aside), with the resolved batch-order seed."""
    values = cfg.to_dict()
    return (data_seed(cfg), cfg.resolved_task(),
            tuple((k, repr(v)) for k, v in sorted(values.items()) if k not in HEAD_KEYS and k != "data_seed"))


def check_lockstep(cfgs: Sequence[HeadConfig]) -> None:
    if not all(can_lockstep(c) for c in cfgs):
        raise HeadError("lockstep training takes neural heads of one split: not --head probe, not --fold all")
    first = data_signature(cfgs[0])
    for cfg in cfgs[1:]:
        other = data_signature(cfg)
        if other != first:
            a, b = dict(first[2]), dict(other[2])
            differ = sorted(k for k in a if a[k] != b.get(k))
            if first[:2] != other[:2]:
                differ = ["data_seed / seed" if first[0] != other[0] else "task", *differ]
            raise HeadError(f"lockstep heads {cfgs[0].out!r} and {cfg.out!r} differ in settings that decide the "
                            f"batches: {', '.join(differ)}; train them separately")


def lockstep_groups(cfgs: Sequence[HeadConfig]) -> list[list[int]]:
    """Indices of `cfgs` grouped by data signature (first appearance order): each group can share batches."""
    groups: dict[tuple, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        groups.setdefault(data_signature(cfg), []).append(i)
    return list(groups.values())


def sweep_groups(cfgs: list[HeadConfig], lockstep: bool) -> list[list[int]]:
    """The units of work, in config order: one config each, or with --lockstep the configs that can share
    batches (equal data settings and batch-order seed; neural heads of one split) as one group."""
    alone = [i for i, c in enumerate(cfgs) if not lockstep or c.seeds or not can_lockstep(c)]
    rest = [i for i in range(len(cfgs)) if i not in alone]
    groups = [[rest[j] for j in g] for g in lockstep_groups([cfgs[i] for i in rest])] + [[i] for i in alone]
    return sorted(groups, key=lambda g: g[0])


def ineffective(cfg: HeadConfig, sweep: bool = False) -> list[str]:
    """Settings given that change nothing in this run: said, since a user who sets one expects an effect."""
    notes = []
    if cfg.lockstep and not sweep and len(parse_seeds(cfg.seeds)) < 2:
        notes.append("--lockstep trains several heads on shared batches: with fewer than two --seeds and no "
                     "--sweep there is one head, trained as without it")
    elif cfg.lockstep and not can_lockstep(cfg):
        notes.append("--lockstep does not apply to the probe or to IEMOCAP's all-folds run: they train one after "
                     "the other")
    if cfg.unimodal_weight > 0 and not (cfg.features and cfg.text_features and cfg.resolved_task() != "avd"):
        notes.append("--unimodal-weight adds an emotion classifier per modality to a fusion: with one modality "
                     "or --task avd it does nothing")
    if cfg.modality_dropout > 0 and not (cfg.features and cfg.text_features):
        notes.append("--modality-dropout leaves one modality out of a fusion: with one modality it does nothing")
    return notes
