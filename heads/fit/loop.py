"""The training loop: one head, or K heads in lockstep on the same batches.

Lockstep: a batch is gathered once and each head takes its own step on it, so K heads cost one
gather and K forward/backward passes. Each head keeps its own loss, class weights, seed, optimiser,
schedule, weight average, early stopping and checkpoint selection. Heads may differ only in what
`HEAD_KEYS` lists; everything that decides the rows, targets and batches (features, labels, splits,
sampler, batch size, the batch-order seed `data_seed`, ...) must be equal, so the batches are the
ones every head would draw alone.

Each head also keeps its own torch random state (initialisation, dropout, modality and annotation
dropout), swapped in around its step: a head trained in lockstep gets exactly the numbers it gets
when trained alone with the same `data_seed` (tests/test_heads_lockstep.py checks it). The times a
lockstep run records (train_s, epoch_s, first_step_s) are the group's wall time with all K heads'
steps in it, not one head's.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Sequence

import numpy as np
import torch

from ..errors import DivergedError, HeadError
from ..inputs.features import host_budget
from ..inputs.prefetch import prefetched
from ..inputs.sampling import batches_per_epoch, block_batches, epoch_order, length_batches, padding_waste, store_blocks
from .checkpoint import provenance, save_head
from .config import PRESETS, HeadConfig, selection_metric
from .losses import Objective, Targets, class_weights, mixed
from .model import FusionHead, HeadSpec
from .plan import data_seed
from .prepare import autocast, batch_inputs, class_counts, residency
from .rundir import RunDir, counts_table
from .schedule import LearningRate, WeightAverage
from .scoring import evaluate, infer, selection_value, write_scored_splits


class _RandomState:
    """A head's own torch random stream (CPU, and the CUDA device when used), swapped in for its steps."""

    def __init__(self, device: torch.device):
        self.cuda = device if device.type == "cuda" else None
        self.save()

    def save(self) -> None:
        self.cpu = torch.get_rng_state()
        self.gpu = torch.cuda.get_rng_state(self.cuda) if self.cuda is not None else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.gpu, self.cuda)


class HeadRun:
    """One head being trained on the batches it is given: model, objective, optimiser, selection, records."""

    def __init__(self, cfg: HeadConfig, prep, placement: str, steps_per_epoch: int, window_rows: int,
                 split_counts: dict[str, dict[str, int]]):
        # the shared rows and features under this head's own config: inference (eval batch, amp, the loss's
        # probabilities) and selection read prep.cfg, and those settings may differ between lockstep heads
        self.cfg, self.prep = cfg, dataclasses.replace(prep, cfg=cfg)
        table, device = prep.table, prep.device
        self.task = cfg.resolved_task()
        self.run = RunDir(cfg.out, cfg.corpus)
        C = len(table.classes)
        self.weights = np.ones(C, np.float32)
        if self.task in ("class", "both"):
            rows = prep.train if cfg.weights_from == "train" else prep.dev
            counts = table.class_counts(rows)
            if cfg.soft_labels and cfg.weights == "prior":
                counts = table.class_counts(rows[table.label[rows] >= 0])
            self.weights = class_weights(counts, cfg.weights, cfg.weight_norm, cfg.weight_power)
        self.weights_t = torch.as_tensor(self.weights).to(device)
        self.objective = Objective(cfg.loss, self.weights_t, self.task, cfg.gamma, cfg.loss_norm, cfg.soft_labels,
                                   cfg.am_margin, cfg.am_scale, cfg.avd_loss, cfg.avd_weight, cfg.aux, cfg.aux_weight,
                                   cfg.unimodal_weight)
        spec = HeadSpec.from_config(cfg, {name: m.frame_shape for name, m in prep.modalities.items()}, C)
        torch.manual_seed(cfg.seed)
        self.model = FusionHead(spec).to(device)
        self.model.avd_low.copy_(torch.as_tensor(prep.avd_range[0]))
        self.model.avd_high.copy_(torch.as_tensor(prep.avd_range[1]))
        for name, encoder in self.model.encoders.items():
            if encoder.norm is not None:
                encoder.norm.set_statistics(*prep.modalities[name].channel_stats(prep.train))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.schedule = LearningRate(self.optimizer, cfg.schedule, cfg.lr, steps_per_epoch, cfg.max_epochs,
                                     cfg.warmup_epochs, cfg.plateau_patience, cfg.plateau_factor)
        self.average = WeightAverage(self.model, cfg.ema_epochs, steps_per_epoch) if cfg.ema_epochs > 0 else None
        self.scored = self.average.module if self.average is not None else self.model  # selected and saved
        self.random = _RandomState(device)
        self.mix_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.metric_name = selection_metric(cfg)
        self.info = {
            "classes": table.classes.to_dict(), "task": self.task, "class_weights": self.weights.tolist(),
            "features": {name: [provenance(s.meta) for s in m.sets] for name, m in prep.modalities.items()},
            "avd_range": {"low": prep.avd_range[0], "high": prep.avd_range[1]},
            "rows": {"train": int(len(prep.train)), "dev": int(len(prep.dev)),
                     **{f"predict_{s}": int(len(r)) for s, r in prep.predict.items()}},
            "device": str(device), "placement": placement, "selection_metric": self.metric_name,
            "notes": prep.notes, "torch": torch.__version__, "residency": residency(prep),
            "data_seed": data_seed(cfg), "batch_order": batch_order(cfg, placement),
            "window_rows": window_rows,  # rows sorted by length together (a bucket, or the shuffle buffer)
            "class_counts": split_counts, "steps_per_epoch": steps_per_epoch,
        }
        self.run.config({**cfg.to_dict(), "resolved": self.info})
        self.epochs: list[dict] = []
        self.best_value, self.best_epoch, self.best_state, self.since_best = -math.inf, 0, None, 0
        self.sampler, self.active, self.first_step_s = cfg.sampler, True, None
        self.error: HeadError | None = None  # why this head stopped before its time (lockstep: the others go on)

    # ------------------------------------------------------------------------------- an epoch
    def begin_epoch(self, epoch: int, n_batches: int) -> None:
        cfg = self.cfg
        if cfg.two_stage_epoch and epoch == cfg.two_stage_epoch:  # MEDUSA stage 2
            self.sampler = "undersample"
            self.objective.set_weights(torch.ones_like(self.weights_t))
            self.schedule.multiply(cfg.stage2_lr_factor)
        self.mix_draws = torch.rand(n_batches, generator=self.mix_gen) < cfg.mixup_p if cfg.mixup_p > 0 else None
        self.lams = np.random.default_rng(cfg.seed + epoch).beta(cfg.mixup_alpha, cfg.mixup_alpha, n_batches) \
            if cfg.mixup_p > 0 else None
        self.model.train()
        self.loss_sum = torch.zeros((), device=self.prep.device)

    def step(self, i: int, rows_t: torch.Tensor, x: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        cfg, model, device = self.cfg, self.model, self.prep.device
        self.random.restore()
        targets = self.prep.targets(rows_t, train=True)
        with autocast(device, cfg):
            if self.mix_draws is not None and bool(self.mix_draws[i]):
                perm = torch.randperm(len(rows_t), generator=self.mix_gen).to(device)
                lam = float(self.lams[i])
                outputs = model(x, (perm, lam))
                other = Targets(targets.label[perm], None if targets.soft is None else targets.soft[perm],
                                targets.avd[perm], targets.gender[perm])
                loss = mixed(self.objective, outputs, targets, other, lam)
            else:
                loss = self.objective(model(x), targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.lr_used = self.optimizer.param_groups[0]["lr"]  # the rate of this step (records keep the epoch's last)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.schedule.after_step()
        if self.average is not None:
            self.average.update(model)
        self.loss_sum += loss.detach()
        self.random.save()

    def end_epoch(self, epoch: int, n_batches: int, waste: float, gather: dict[str, float], t_epoch: float,
                  t_train: float, verbose: bool) -> None:
        """Score dev, keep the best weights, record the epoch, and stop the head when its time has come."""
        cfg, prep = self.cfg, self.prep
        train_loss = float(self.loss_sum) / max(n_batches, 1)
        pred, dev_loss = infer(self.scored, prep, prep.dev, self.objective)
        metrics = evaluate(prep, prep.dev, pred)
        value = selection_value(prep, prep.dev, pred, metrics, self.metric_name, cfg.seed)
        if not math.isfinite(train_loss):
            raise HeadError(f"{cfg.out}: epoch {epoch}: training loss is {train_loss}; lower --lr or check the "
                            "features")
        self.schedule.after_epoch(value if math.isfinite(value) else -math.inf)
        improved = value > self.best_value
        if improved:
            self.best_value, self.best_epoch, self.since_best = value, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in self.scored.state_dict().items()}
        else:
            self.since_best += 1
        record = {"epoch": epoch, "train_loss": train_loss, "dev_loss": dev_loss, "lr": self.lr_used,
                  "sampler": self.sampler, "selection": value, "best": improved, "train_s": t_train,
                  "epoch_s": time.perf_counter() - t_epoch, "padding_waste": waste, "batches": n_batches,
                  "gather_s": gather.get("build_s", 0.0), "gather_wait_s": gather.get("wait_s", 0.0),
                  **{f"dev_{k}": v for k, v in metrics.items()}}
        self.epochs.append(record)
        self.run.epochs(self.epochs)
        if verbose:
            print(f"epoch {epoch:>2}  loss {train_loss:.4f}  dev {self.metric_name} {value:.4f}"
                  f"{'  *' if improved else ''}  ({record['epoch_s']:.1f} s)", flush=True)
        if epoch >= cfg.max_epochs or (cfg.patience and self.since_best >= cfg.patience):
            self.active = False

    # ------------------------------------------------------------------------------- the run directory
    def finish(self, t_start: float, t_loaded: float, verbose: bool):
        cfg, prep, table, model = self.cfg, self.prep, self.prep.table, self.model
        if self.best_state is None:
            raise HeadError(f"no epoch gave a finite dev {self.metric_name} (selection metric); check the dev labels "
                            f"of split {cfg.dev_split!r} and --select")
        model.load_state_dict(self.best_state)
        self.info.update(best_epoch=self.best_epoch, selection_value=self.best_value,
                         layer_weights=model.layer_weights())
        if cfg.save_checkpoint:
            save_head(self.run.path / "best.safetensors", model, {**self.info, "config": cfg.to_dict()})
        splits, _ = write_scored_splits(self.run, prep, lambda rows: infer(model, prep, rows)[0],
                                        infer(model, prep, prep.dev)[0])
        epoch_times = [e["train_s"] for e in self.epochs]
        summary = {
            "out": str(self.run.path), "dev_split": cfg.dev_split, "best_epoch": self.best_epoch,
            "epochs_run": len(self.epochs), "selection": {"metric": self.metric_name, "value": self.best_value},
            "splits": splits,
            "timing": {"total_s": time.perf_counter() - t_start, "load_s": t_loaded - t_start,
                       "first_step_s": self.first_step_s or 0.0, "epoch_s_mean": float(np.mean(epoch_times)),
                       "epoch_s": epoch_times, "padding_waste": float(np.mean([e["padding_waste"]
                                                                              for e in self.epochs]))},
            "class_weights": self.weights.tolist(), "classes": list(table.classes.letters), "notes": prep.notes,
        }
        result = self.run.metrics(summary)
        if verbose:
            print(result.table(), flush=True)
        return result


def train_lockstep(cfgs: Sequence[HeadConfig], prep, placement: str, t_start: float, t_loaded: float,
                   verbose: bool = True) -> list:
    """Train every head of `cfgs` (equal data settings, checked) on one shared batch order; RunResult each."""
    from tqdm.auto import tqdm

    first = cfgs[0]
    blocks = StoreOrder(prep, first, placement) if batch_order(first, placement) == "blocks" else None
    window = blocks.window_rows if blocks is not None else first.batch_size * max(first.bucket_batches, 1)
    steps = batches_per_epoch(prep.groups, first.sampler, first.batch_size, window)
    split_counts = class_counts(prep)
    heads = [HeadRun(cfg, prep, placement, steps, window, split_counts) for cfg in cfgs]
    if verbose:
        print(counts_table(split_counts), flush=True)
        for note in prep.notes:
            print(f"note: {note}", flush=True)
    if steps < MIN_STEPS_PER_EPOCH:
        warnings.warn(few_steps_note(steps, len(prep.train), first), stacklevel=2)
    rng = np.random.default_rng(data_seed(first))
    device = prep.device
    depth = prefetch_depth(first, placement, device)
    def build(item: tuple) -> dict:
        if blocks is not None:
            blocks.stage(item[0])  # a new window: its features read in a few sequential slices
        return batch_inputs(prep, item[1], item[2], torch.float32)

    epoch = 0
    while any(h.active for h in heads):
        epoch += 1
        t_epoch = time.perf_counter()
        batches = epoch_batches(prep, first, blocks, epoch, rng)
        active = [h for h in heads if h.active]
        for h in active:
            h.begin_epoch(epoch, len(batches))
        all_rows_t = torch.as_tensor(np.concatenate(batches)).to(device, non_blocking=True)
        starts = np.concatenate([[0], np.cumsum([len(b) for b in batches])])
        items = [(i, rows, all_rows_t[starts[i]:starts[i + 1]]) for i, rows in enumerate(batches)]
        bar = tqdm(total=len(batches), desc=f"epoch {epoch}" + (f" ({len(active)} heads)" if len(heads) > 1 else ""),
                   leave=False, disable=not (first.progress and verbose))
        gather: dict[str, float] = {}
        for (i, _, rows_t), x in prefetched(items, build, depth, device, gather):
            bar.update()
            for h in active:
                h.step(i, rows_t, x)
                if h.first_step_s is None:
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    h.first_step_s = time.perf_counter() - t_start
        bar.close()
        t_train = time.perf_counter() - t_epoch
        waste = padding_waste(batches, *(m.lengths for m in prep.modalities.values()))
        for h in active:
            try:
                h.end_epoch(epoch, len(batches), waste, gather, t_epoch, t_train, verbose and len(heads) == 1)
            except HeadError as err:  # a diverged head stops alone; its group's other heads finish their runs
                if len(heads) == 1:
                    raise
                h.active, h.error = False, err
    finished = {i: h.finish(t_start, t_loaded, verbose) for i, h in enumerate(heads) if h.error is None}
    failed = [h for h in heads if h.error is not None]
    if failed:
        done = (f"the other {len(finished)} head(s) of this lockstep group finished: "
                + ", ".join(str(r.out) for r in finished.values())) if finished else "no head of the group finished"
        raise DivergedError("; ".join(str(h.error) for h in failed) + f" ({done})", finished)
    return list(finished.values())


MIN_STEPS_PER_EPOCH = 10  # below this a head takes too few optimiser steps to leave its initial guess


def few_steps_note(steps: int, rows: int, cfg: HeadConfig) -> str:
    """Why a run with few optimiser steps per epoch may predict one class for everything, and what to change."""
    fix = (f"use --preset small-data (batch {PRESETS['small-data']['batch_size']}, a narrower head, more epochs)"
           if cfg.preset != "small-data" else "lower --batch-size")
    return (f"{steps} optimiser step(s) per epoch ({rows} training rows at --batch-size {cfg.batch_size}): a head "
            f"trained on so few steps often predicts one class for everything; {fix}")


def epoch_batches(prep, cfg: HeadConfig, blocks: "StoreOrder | None", epoch: int, rng: np.random.Generator
                  ) -> list[np.ndarray]:
    """One epoch's batches: the sampler's rows (undersampled from MEDUSA's second stage on), cut by length
    windows over a random order, or through the store-order shuffle buffer when streaming."""
    sampler = "undersample" if cfg.two_stage_epoch and epoch >= cfg.two_stage_epoch else cfg.sampler
    order = epoch_order(prep.groups, sampler, rng)
    if blocks is not None:
        return blocks.batches(prep.train[order], rng)
    return length_batches(prep.train[order], prep.sort_lengths, cfg.batch_size, cfg.bucket_batches, rng)


STREAM_BLOCK_ROWS = 64  # utterances per store block of the streaming order


def batch_order(cfg: HeadConfig, placement: str) -> str:
    return cfg.batch_order if cfg.batch_order != "auto" else ("blocks" if placement == "stream" else "random")


class StoreOrder:
    """The streaming batch order (sampling.block_batches) and the reads it needs: each window of the shuffle
    buffer is read once, when its first batch is built, and replaced by the next one."""

    def __init__(self, prep, cfg: HeadConfig, placement: str):
        self.prep, self.batch_size, self.streamed = prep, cfg.batch_size, placement == "stream"
        main = prep.modalities.get("audio") or prep.modalities["text"]
        self.block_of_row = np.zeros(len(prep.table.ids), np.int64)
        self.block_of_row[prep.train] = store_blocks(prep.train, main.store_positions(prep.train), STREAM_BLOCK_ROWS)
        per_row = sum(m.lengths[prep.train].mean() * np.prod(m.frame_shape) * 4 for m in prep.modalities.values())
        self.window_rows = max(int(host_budget(cfg.max_host_gb) / 2 / max(per_row, 1.0)), 4 * cfg.batch_size)
        self.windows: list[int] = []
        self.window_of_batch: list[int] = []

    def batches(self, rows: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        batches, self.window_of_batch = block_batches(rows, self.block_of_row[rows], self.prep.sort_lengths,
                                                      self.batch_size, self.window_rows, rng)
        self.windows = [np.concatenate([b for b, w in zip(batches, self.window_of_batch) if w == k])
                        for k in range(max(self.window_of_batch, default=-1) + 1)]
        return batches

    def stage(self, i: int) -> None:
        if not self.streamed or (i > 0 and self.window_of_batch[i] == self.window_of_batch[i - 1]):
            return
        for m in self.prep.modalities.values():
            m.stage(self.windows[self.window_of_batch[i]])


def prefetch_depth(cfg: HeadConfig, placement: str, device: torch.device) -> int:
    """--prefetch, or auto: 2 batches ahead when a batch needs a copy to the GPU or reads from the store."""
    if cfg.prefetch >= 0:
        return cfg.prefetch
    return 2 if placement == "stream" or (placement == "host" and device.type == "cuda") else 0


