"""Running the plan of a config: one head, K heads in lockstep, one run per seed or per fold, or a sweep.

`train` is the one entry point of stage 2's training; every route ends in `train_together` (neural heads,
heads/fit/loop.py) or the probe (probe.py), and the many-run routes (seeds, folds, sweeps) take their
expansion and summaries from seeds.py, folds.py and sweep.py. Labels are read and features loaded once per
command (FeaturePool) and handed down.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from sercache.cache.columns import canonical_split
from sercache.dataclass_cli import apply_threads

from ..errors import DivergedError, HeadError
from ..inputs.corpora import AUTO, detect_corpus, resolve_corpus
from ..inputs.features import FeaturePool, default_device
from ..inputs.labels import LabelTable
from .baseline import resolve_head
from .config import HeadConfig
from .folds import fold_configs, write_folds_summary
from .loop import train_lockstep
from .plan import can_lockstep, check, check_lockstep, parse_seeds, runs_all_folds, sweep_groups
from .prepare import prepare, seed_everything
from .probe import train_probe
from .rundir import RunResult, write_json
from .seeds import seed_configs, write_seeds_summary
from .sweep import config_name, expand, merge_results, rank_world, write_result


def train(cfg: HeadConfig, table: LabelTable | None = None, pool: FeaturePool | None = None,
          verbose: bool = True) -> RunResult:
    """Train what `cfg` stands for and write its run directories: one head, its --seeds, or its corpus' folds."""
    cfg = check(resolve_inputs(cfg, verbose))
    if cfg.seeds:
        return _train_seeds(cfg, table, pool, verbose)
    cfg = resolve_head(cfg)  # --head baseline: layers 0, attentive pooling
    if runs_all_folds(cfg):
        return _train_folds(cfg, table, pool, verbose)
    if cfg.head == "probe":
        t_start = time.perf_counter()
        table, pool, device = _inputs(cfg, table, pool)
        return train_probe(cfg, table, pool, device, verbose, t_start)
    return train_together([cfg], table, pool, verbose)[0]


def train_together(cfgs: list[HeadConfig], table: LabelTable | None = None, pool: FeaturePool | None = None,
                   verbose: bool = True) -> list[RunResult]:
    """Train neural heads whose data settings are equal in lockstep (heads/fit/loop.py): one batch gathered once
    for all of them, each with its own loss, seed, optimiser and checkpoint selection."""
    cfgs = [resolve_head(check(resolve_inputs(c, verbose=False))) for c in cfgs]
    check_lockstep(cfgs)
    cfg = cfgs[0]
    t_start = time.perf_counter()
    table, pool, device = _inputs(cfg, table, pool)
    seed_everything(cfg.seed)
    prep = prepare(cfg, table, pool, device)
    return train_lockstep(cfgs, prep, pool.placement, t_start, time.perf_counter(), verbose)


def _train_seeds(cfg: HeadConfig, table: LabelTable | None, pool: FeaturePool | None, verbose: bool) -> RunResult:
    """One run per seed into <out>/seed<k> over one data load, then <out>/seeds.json and seeds.md (mean ± std)."""
    seeds = parse_seeds(cfg.seeds)
    if not seeds:
        raise HeadError("--seeds: no seed given")
    table = table if table is not None else _labels(cfg)
    pool = pool if pool is not None else FeaturePool.for_config(cfg)
    lockstep = cfg.lockstep and can_lockstep(cfg)  # the probe and all-folds runs train one after the other
    members = seed_configs(cfg, seeds, lockstep)
    if lockstep:
        if verbose:
            print(f"seeds {', '.join(map(str, seeds))} in lockstep (batch order of seed {members[0].data_seed}) -> "
                  f"{cfg.out}", flush=True)
        results = train_together(members, table=table, pool=pool, verbose=verbose)
    else:
        results = []
        for member in members:
            if verbose:
                print(f"seed {member.seed} -> {member.out}", flush=True)
            results.append(train(member, table=table, pool=pool, verbose=verbose))
    per_seed = [(seed, result.summary) for seed, result in zip(seeds, results)]
    return write_seeds_summary(Path(cfg.out), cfg.dev_split, per_seed, verbose)


def _train_folds(cfg: HeadConfig, table: LabelTable | None, pool: FeaturePool | None, verbose: bool) -> RunResult:
    table = table if table is not None else _labels(cfg)
    pool = pool if pool is not None else FeaturePool.for_config(cfg)
    per_fold = [(fold_cfg.fold, train(fold_cfg, table=table, pool=pool, verbose=verbose))
                for fold_cfg in fold_configs(cfg)]
    return write_folds_summary(Path(cfg.out), per_fold, verbose)


def train_sweep(base: HeadConfig, spec: str, verbose: bool = True) -> list[dict[str, Any]]:
    """Train every config of the sweep that belongs to this rank (torchrun: config group g on rank g % world)
    over one loaded copy of the data; rank 0 returns the merged table (results.csv / results.md)."""
    base = resolve_inputs(base, verbose)
    configs = expand(spec)
    out = Path(base.out)
    (out / "results").mkdir(parents=True, exist_ok=True)
    rank, world = rank_world()
    resolved = []
    for i, overrides in enumerate(configs):
        try:
            cfg = check(base.replace(**overrides, out=str(out / "runs" / config_name(i, overrides))))
        except TypeError as err:
            raise HeadError(f"sweep config {i} {overrides}: {err}") from None
        resolved.append(cfg)  # every config is validated before the first one trains
    write_json(out / "sweep.json", {"spec": spec, "base": base.to_dict(), "configs": configs})
    pool = FeaturePool.for_config(base, default_device(base.device)) if base.store else None
    tables: dict[tuple, Any] = {}
    for g, group in enumerate(sweep_groups(resolved, base.lockstep)):
        if g % world != rank:
            continue
        cfg = resolved[group[0]]
        key = (cfg.corpus, cfg.label_source())
        if key not in tables:
            tables[key] = _labels(cfg)
        for i, result in _train_group(resolved, group, tables[key], pool, verbose, out, configs):
            write_result(out, i, configs[i], result)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        dist.barrier()
    return merge_results(out, len(configs)) if rank == 0 else []


def _train_group(resolved: list[HeadConfig], group: list[int], table: LabelTable, pool: FeaturePool | None,
                 verbose: bool, out: Path, configs: list[dict[str, Any]]) -> list[tuple[int, RunResult]]:
    """One unit of a sweep: a config alone, or a lockstep group (whose finished heads are recorded even when
    another head of the group diverges)."""
    if len(group) == 1:
        return [(group[0], train(resolved[group[0]], table=table, pool=pool, verbose=verbose))]
    if verbose:
        print(f"lockstep: configs {', '.join(map(str, group))} share their batches", flush=True)
    try:
        results = train_together([resolved[i] for i in group], table=table, pool=pool, verbose=verbose)
    except DivergedError as err:
        for k, result in err.finished.items():
            write_result(out, group[k], configs[group[k]], result)
        raise
    return list(zip(group, results))


def resolve_inputs(cfg: HeadConfig, verbose: bool) -> HeadConfig:
    """The config with its corpus named (--corpus auto: the format --labels is in, said and recorded in
    config.json) and its split names read as the corpora's are (development, validation, val -> dev; ...)."""
    corpus = cfg.corpus
    if corpus == AUTO:
        corpus = detect_corpus(cfg.labels).name
        if verbose:
            print(f"corpus: {corpus} (recognised from --labels {cfg.labels}; --corpus names another)", flush=True)
    splits = {"train_split": canonical_split(cfg.train_split), "dev_split": canonical_split(cfg.dev_split),
              "test_splits": [canonical_split(s) for s in cfg.test_splits]}
    return cfg.replace(corpus=corpus, **splits)


def _labels(cfg: HeadConfig) -> LabelTable:
    """The label table of a resolved config, as its corpus publishes it (before any fold's splits)."""
    return resolve_corpus(cfg.corpus, cfg.labels).table(cfg.label_source())


def _inputs(cfg: HeadConfig, table: LabelTable | None, pool: FeaturePool | None
            ) -> tuple[LabelTable, FeaturePool, torch.device]:
    """The label table (this fold's, for a fold protocol), the feature pool and the device of a run."""
    apply_threads(cfg.threads)
    if table is None:
        table = _labels(cfg)
    table = resolve_corpus(cfg.corpus, cfg.labels).of_fold(table, cfg.fold, cfg.iemocap_dev)
    device = default_device(cfg.device)
    if pool is None:
        pool = FeaturePool.for_config(cfg, device)
    return table, pool, device

