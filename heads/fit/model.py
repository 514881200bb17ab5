"""The Sheffield fusion head (Chen et al., "1st place solution to Odyssey 2024 Emotion Recognition Challenge
Task 1") with every size configurable, plus its variants.

Per modality: [learned layer mix] -> MLP -> transformer encoder (1 head by default) -> pooling.
Early fusion concatenates the pooled vectors -> MLP -> per-task MLP. Late fusion gives every
modality its own trunk and task MLPs and averages their outputs (logits, A/V/D, gender logits).
Deep fusion (MEDUSA) additionally runs transformer layers over the two sequences concatenated
along time and appends that pooled vector to the early-fusion input. The paper's two other fusion
rows: tensor fusion (TFN, Zadeh et al. 2017, "Tensor Fusion Network for Multimodal Sentiment Analysis")
feeds the flattened outer product of the pooled vectors, each projected to a small size and extended
by a constant 1, to the fusion MLP; low-rank fusion (LMF, Liu et al. 2018, "Efficient Low-rank
Multimodal Fusion with Modality-Specific Factors") computes the same kind of multilinear map from rank-r
modality factors without forming the tensor.

Padding is handled by masks everywhere: padded frames are zeroed on entry, excluded as keys in
attention and excluded from pooling, so the values stored in padded positions cannot change any
output (tested by filling them with garbage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..inputs.speakers import STD_FLOOR
from .dropout import replace_dropouts
from .losses import COSINE_LOSSES


@dataclass
class HeadSpec:
    """Everything needed to rebuild a head from a checkpoint (sizes, shapes, tasks)."""

    inputs: dict  # modality name -> frame shape, e.g. {"audio": [1280], "text": [1024]} or [L, D]
    n_classes: int
    task: str = "class"  # class | avd | both
    aux: str = ""  # "" | gender
    fusion: str = "early"
    hidden: int = 512
    d_model: int = 512
    layers: int = 2
    heads: int = 1
    ff_dim: int = 2048
    deep_layers: int = 2
    dropout: float = 0.1
    pooling: str = "mean"
    cosine: bool = False  # AM-Softmax: the class layer outputs cosines
    input_norm: bool = False  # per-channel standardisation with train statistics (False in old checkpoints)
    fusion_rank: int = 4  # lowrank: rank of the modality factors
    fusion_dim: int = 32  # tensor: pooled vectors projected to this size before the outer product (0: none)
    modality_dropout: float = 0.0  # training only: per sample, one modality left out of the fusion with this p
    frame_stride: int = 1  # audio: mean of every `frame_stride` consecutive valid frames before the frame MLP
    unimodal_classifiers: bool = False  # fusion: per-modality classifiers on the pooled vectors, trained only

    @classmethod
    def from_config(cls, cfg, inputs: dict, n_classes: int) -> "HeadSpec":
        return cls(inputs={k: list(v) for k, v in inputs.items()}, n_classes=n_classes, task=cfg.resolved_task(),
                   aux=cfg.aux, fusion=cfg.fusion, hidden=cfg.hidden, d_model=cfg.d_model, layers=cfg.layers,
                   heads=cfg.heads, ff_dim=cfg.ff_dim, deep_layers=cfg.deep_layers, dropout=cfg.dropout,
                   pooling=cfg.pooling, cosine=cfg.loss in COSINE_LOSSES, input_norm=cfg.input_norm,
                   fusion_rank=cfg.fusion_rank, fusion_dim=cfg.fusion_dim, modality_dropout=cfg.modality_dropout,
                   frame_stride=cfg.frame_stride, unimodal_classifiers=cfg.unimodal_weight > 0)


def strided_mean(x: torch.Tensor, mask: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of every `stride` consecutive valid frames ([B, T, D] -> [B, ceil(T / stride), D]) and the mask of
    the strided frames that hold at least one valid frame; padded frames must already be zero."""
    if stride <= 1:
        return x, mask
    B, T = mask.shape
    pad = -T % stride
    if pad:
        x = F.pad(x, (0, 0, 0, pad))
        mask = F.pad(mask, (0, pad))
    counts = mask.view(B, -1, stride).sum(2)
    total = x.view(B, -1, stride, x.shape[-1]).sum(2)
    return total / counts.clamp_min(1)[..., None].to(x.dtype), counts > 0


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames only; `where` (not multiply) so that inf/NaN in padding cannot leak."""
    x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))
    return x.sum(1) / mask.sum(1, keepdim=True).clamp_min(1).to(x.dtype)


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling (Odyssey baseline): attention-weighted mean and std over valid frames."""

    def __init__(self, dim: int, attention_dim: int = 128):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, attention_dim), nn.Tanh(), nn.Linear(attention_dim, 1))
        self.out_dim = 2 * dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))
        scores = self.score(x)[..., 0].float().masked_fill(~mask, float("-inf"))
        alpha = torch.softmax(scores, dim=1).to(x.dtype)[..., None]
        mean = (alpha * x).sum(1)
        var = (alpha * x * x).sum(1) - mean * mean
        return torch.cat([mean, var.clamp_min(1e-6).sqrt()], dim=-1)


class InputNorm(nn.Module):
    """(x - mean) / std per input channel, with the training split's statistics kept as buffers.

    Cached encoder outputs have channels of very different scale and offset (whisper-base's last
    layer: per-channel std 0.65 to 5.8 and a channel whose mean is 10.5); without this, the large
    channels dominate the first layer and small-data training spends its few steps rescaling them.
    Stored in the checkpoint, so inference applies exactly the training statistics.
    """

    def __init__(self, frame_shape: Sequence[int]):
        super().__init__()
        self.register_buffer("mean", torch.zeros(frame_shape))
        self.register_buffer("inv_std", torch.ones(frame_shape))

    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.inv_std.copy_(1.0 / std.clamp_min(STD_FLOOR))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) * self.inv_std.to(x.dtype)


class LayerMix(nn.Module):
    """Softmax-weighted sum over cached layers (s3prl / USC); starts as the plain average."""

    def __init__(self, n_layers: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, L, D] -> [B, T, D]
        w = torch.softmax(self.logits.float(), 0).to(x.dtype)
        return torch.einsum("btld,l->btd", x, w)


def mlp(n_in: int, hidden: int, n_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_out))


class ModalityEncoder(nn.Module):
    def __init__(self, frame_shape: Sequence[int], spec: HeadSpec, kind: str = "audio"):
        super().__init__()
        frame_shape = list(frame_shape)
        self.norm = InputNorm(frame_shape) if spec.input_norm else None
        self.mix = LayerMix(frame_shape[0]) if len(frame_shape) == 2 and frame_shape[0] > 1 else None
        self.multi = len(frame_shape) == 2
        self.stride = spec.frame_stride if kind == "audio" else 1
        self.proj = mlp(frame_shape[-1], spec.hidden, spec.d_model, spec.dropout)
        self.encoder = None
        if spec.layers > 0:
            layer = nn.TransformerEncoderLayer(spec.d_model, spec.heads, spec.ff_dim, spec.dropout, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, spec.layers, enable_nested_tensor=False)
        self.pool = AttentiveStatsPool(spec.d_model) if spec.pooling == "attentive" else None
        self.out_dim = 2 * spec.d_model if self.pool is not None else spec.d_model

    def sequence(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame vectors [B, T', d_model] and their mask [B, T'] (T' = T unless the frames are strided)."""
        shape = mask.shape + (1,) * (x.dim() - 2)
        if self.norm is not None:
            x = self.norm(x)
        x = torch.where(mask.view(shape), x, torch.zeros((), dtype=x.dtype, device=x.device))
        if self.multi:
            x = self.mix(x) if self.mix is not None else x[:, :, 0]
        x, mask = strided_mean(x, mask, self.stride)
        h = self.proj(x)
        if self.encoder is not None:
            h = self.encoder(h, src_key_padding_mask=~mask)
        return h, mask

    def pooled(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.pool(h, mask) if self.pool is not None else masked_mean(h, mask)


class CosineLinear(nn.Module):
    """cos(theta_j) between the normalised input and normalised class vectors (AM-Softmax)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x.float(), dim=-1) @ F.normalize(self.weight.float(), dim=-1).t()


def class_layer(n_in: int, spec: HeadSpec) -> nn.Module:
    """The last layer of every class output: cosines under AM-Softmax (its margin and scale assume them)."""
    return CosineLinear(n_in, spec.n_classes) if spec.cosine else nn.Linear(n_in, spec.n_classes)


class TaskHeads(nn.Module):
    """trunk (the MLP after fusion) + one MLP per task; A/V/D through sigmoid and min-max mapping."""

    def __init__(self, n_in: int, spec: HeadSpec):
        super().__init__()
        h = spec.hidden
        self.trunk = nn.Sequential(nn.Linear(n_in, h), nn.ReLU(), nn.Dropout(spec.dropout))
        self.task = spec.task
        if spec.task in ("class", "both"):
            body = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Dropout(spec.dropout))
            self.classes = nn.Sequential(body, class_layer(h, spec))
        if spec.task in ("avd", "both"):
            self.avd = mlp(h, h, 3, spec.dropout)
        if spec.aux == "gender":
            self.gender = mlp(h, h, 2, spec.dropout)


def augment(z: torch.Tensor) -> torch.Tensor:
    """[z; 1]: the constant 1 keeps every lower-order term (unimodal and bias) in the multilinear product."""
    return torch.cat([z, torch.ones(z.shape[:-1] + (1,), dtype=z.dtype, device=z.device)], dim=-1)


class TensorFusion(nn.Module):
    """TFN: flatten(⊗_m [P_m z_m; 1]) with P_m an optional linear projection of modality m's pooled vector.

    For two modalities of projected size d the output has (d + 1)^2 entries: the bimodal products, both
    unimodal vectors and the constant 1.
    """

    def __init__(self, dims: Sequence[int], proj_dim: int):
        super().__init__()
        self.proj = nn.ModuleList(nn.Linear(d, proj_dim) for d in dims) if proj_dim else None
        self.out_dim = math.prod((proj_dim or d) + 1 for d in dims)

    def forward(self, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.proj is not None:
            parts = [p(z) for p, z in zip(self.proj, parts)]
        t = augment(parts[0])
        for z in parts[1:]:
            t = (t[:, :, None] * augment(z)[:, None, :]).flatten(1)
        return t


class LowRankFusion(nn.Module):
    """LMF: h = sum_{i=1..r} prod_m (W_m^(i) [z_m; 1]) + b, the products elementwise over the output size.

    This equals the TFN tensor of the [z_m; 1] contracted with a weight tensor of rank r, without ever
    forming the tensor. Factors start with std 1/sqrt(d_m + 1), so every W_m^(i) [z_m; 1] starts with about
    the scale of z_m.
    """

    def __init__(self, dims: Sequence[int], rank: int, out_dim: int):
        super().__init__()
        self.factors = nn.ParameterList(nn.Parameter(torch.randn(rank, d + 1, out_dim) / math.sqrt(d + 1))
                                        for d in dims)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.out_dim = out_dim

    def forward(self, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        fused = None
        for w, z in zip(self.factors, parts):
            f = torch.einsum("bd,rdh->brh", augment(z), w)  # [B, r, out]
            fused = f if fused is None else fused * f
        return fused.sum(1) + self.bias


class FusionHead(nn.Module):
    def __init__(self, spec: HeadSpec):
        super().__init__()
        self.spec = spec
        self.names = [m for m in ("audio", "text") if m in spec.inputs]
        if not self.names:
            raise ValueError("a head needs an audio and/or a text input")
        self.encoders = nn.ModuleDict({m: ModalityEncoder(spec.inputs[m], spec, m) for m in self.names})
        # USC: outputs mapped to [min, max] of the training targets; set from data before training.
        self.register_buffer("avd_low", torch.ones(3))
        self.register_buffer("avd_high", torch.full((3,), 7.0))
        fusion = spec.fusion if len(self.names) > 1 else "early"
        self.fusion = fusion
        pooled = sum(self.encoders[m].out_dim for m in self.names)
        dims = [self.encoders[m].out_dim for m in self.names]
        if fusion == "late":
            self.branches = nn.ModuleDict({m: TaskHeads(self.encoders[m].out_dim, spec) for m in self.names})
        elif fusion in ("tensor", "lowrank"):  # the fused vector replaces the concatenation
            self.fuse = (TensorFusion(dims, spec.fusion_dim) if fusion == "tensor"
                         else LowRankFusion(dims, spec.fusion_rank, spec.hidden))
            self.heads = TaskHeads(self.fuse.out_dim, spec)
        else:
            if fusion == "deep":
                self.modality_embedding = nn.Parameter(torch.zeros(len(self.names), spec.d_model))
                layer = nn.TransformerEncoderLayer(spec.d_model, spec.heads, spec.ff_dim, spec.dropout,
                                                   batch_first=True)
                self.deep = nn.TransformerEncoder(layer, max(spec.deep_layers, 1), enable_nested_tensor=False)
                pooled += spec.d_model
            self.heads = TaskHeads(pooled, spec)
        if spec.unimodal_classifiers and fusion != "late" and len(self.names) > 1 and spec.task != "avd":
            self.unimodal = nn.ModuleDict({
                m: nn.Sequential(nn.Linear(self.encoders[m].out_dim, spec.hidden), nn.ReLU(), nn.Dropout(spec.dropout),
                                 class_layer(spec.hidden, spec)) for m in self.names})
        replace_dropouts(self)  # torch's CPU dropout was about a quarter of a small head's training step

    def forward(self, inputs: dict[str, tuple[torch.Tensor, torch.Tensor]],
                mix: tuple[torch.Tensor, float] | None = None) -> dict[str, torch.Tensor]:
        """inputs: modality -> (frames [B, T, *frame_shape], mask [B, T]); mix: (permutation, lambda)."""
        seqs, masks = {}, {}
        for m in self.names:
            seqs[m], masks[m] = self.encoders[m].sequence(*inputs[m])
        pools = {m: self.encoders[m].pooled(seqs[m], masks[m]) for m in self.names}
        keep = self._kept_modalities(next(iter(pools.values())))
        if self.fusion == "late":
            outs = []
            for m in self.names:
                z = self.branches[m].trunk(pools[m])
                z = _mix(z, mix)
                outs.append(self._tasks(self.branches[m], z))
            if keep is None:
                fused = {k: torch.stack([o[k].float() for o in outs]).mean(0) for k in outs[0]}
            else:
                w = keep.float() / keep.float().sum(1, keepdim=True)  # the average over the modalities kept
                fused = {k: torch.einsum("mb...,bm->b...", torch.stack([o[k].float() for o in outs]), w)
                         for k in outs[0]}
            if self.training and self.spec.unimodal_classifiers and "logits" in outs[0]:
                fused["unimodal_logits"] = torch.stack([o["logits"].float() for o in outs])
            return fused
        unimodal = None
        if self.training and hasattr(self, "unimodal"):  # Gradient-Blending-style unimodal supervision
            unimodal = torch.stack([self.unimodal[m](_mix(pools[m], mix)).float() for m in self.names])
        if keep is not None:  # a left-out modality contributes zeros to the fusion
            pools = {m: pools[m] * keep[:, i, None].to(pools[m].dtype) for i, m in enumerate(self.names)}
        parts = [pools[m] for m in self.names]
        if self.fusion in ("tensor", "lowrank"):
            return self._with(self._tasks(self.heads, _mix(self.heads.trunk(self.fuse(parts)), mix)), unimodal)
        if self.fusion == "deep":
            seq = torch.cat([seqs[m] + self.modality_embedding[i] for i, m in enumerate(self.names)], dim=1)
            mask = torch.cat([masks[m] if keep is None else masks[m] & keep[:, i, None]
                              for i, m in enumerate(self.names)], dim=1)
            parts.append(masked_mean(self.deep(seq, src_key_padding_mask=~mask), mask))
        z = _mix(self.heads.trunk(torch.cat(parts, dim=-1)), mix)
        return self._with(self._tasks(self.heads, z), unimodal)

    @staticmethod
    def _with(out: dict[str, torch.Tensor], unimodal: torch.Tensor | None) -> dict[str, torch.Tensor]:
        if unimodal is not None:
            out["unimodal_logits"] = unimodal  # [M, B, C]: trained, never predicted
        return out

    def _kept_modalities(self, like: torch.Tensor) -> torch.Tensor | None:
        """[B, M] bool, training only: each row leaves out one modality (drawn uniformly) with probability p,
        never all of them; None when nothing is left out (inference, one modality, p = 0)."""
        p, M = self.spec.modality_dropout, len(self.names)
        if not self.training or p <= 0 or M < 2:
            return None
        B = like.shape[0]
        dropped = torch.rand(B, device=like.device) < p
        which = torch.randint(M, (B,), device=like.device)
        return ~(dropped[:, None] & (which[:, None] == torch.arange(M, device=like.device)[None, :]))

    def _tasks(self, heads: TaskHeads, z: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        if hasattr(heads, "classes"):
            out["logits"] = heads.classes(z)
        if hasattr(heads, "avd"):
            out["avd"] = self.avd_low + (self.avd_high - self.avd_low) * torch.sigmoid(heads.avd(z).float())
        if hasattr(heads, "gender"):
            out["gender"] = heads.gender(z)
        return out

    def layer_weights(self) -> dict[str, list[float]]:
        return {m: torch.softmax(e.mix.logits.detach().float(), 0).tolist()
                for m, e in self.encoders.items() if e.mix is not None}


def _mix(z: torch.Tensor, mix: tuple[torch.Tensor, float] | None) -> torch.Tensor:
    if mix is None:
        return z
    perm, lam = mix
    return lam * z + (1.0 - lam) * z[perm]
