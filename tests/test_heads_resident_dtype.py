"""Compact residency (--resident-dtype): float8 codes with per-channel scales and bfloat16, bounded error,
half the bytes, the same gathered positions and masks, and a training run that stays finite.

The float8 bound. float8_e4m3fn has 3 mantissa bits, exponent bias 7 and no infinities: normal values
2^e (1 + m/8) for e in [-6, 8] up to 448, subnormals k * 2^-9 below 2^-6. Round to nearest (even) of
y = x / s therefore errs by at most half a spacing: 2^(e-3) / 2 <= 2^-4 |y| for normal y (|y| >= 2^e), and
2^-9 / 2 = 2^-10 for subnormal y. With s = absmax / 448 no y leaves [-448, 448], so
|x - s q(x / s)| <= max(2^-4 |x|, 2^-10 s), plus float32 rounding of the division and the product.
bfloat16 keeps 8 significant bits: |x - bf16(x)| <= 2^-8 |x| (float16 inputs are normal in bfloat16).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sercache.heads import HeadConfig, train
from sercache.heads.inputs.corpora.msp import read_msp_consensus
from sercache.heads.inputs.features import (
    FLOAT8,
    FeaturePool,
    build_modalities,
    dequantize_float8,
    float8_scale,
    make_resident,
    quantize_float8,
)
from sercache.testing import InMemoryFeatureSet, in_memory_pool, make_synthetic_corpus

torch.set_num_threads(1)


def float8_bound(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    x = x.double().abs()
    return torch.maximum(x * 2.0 ** -4, scale.double() * 2.0 ** -10) + x * 2.0 ** -21  # + float32 arithmetic


def wide_frames(n: int = 4000, dim: int = 24, seed: int = 0) -> torch.Tensor:
    """float16 frames whose channels differ in scale by 10^5, with exact zeros, tiny values and an outlier."""
    g = torch.Generator().manual_seed(seed)
    channel = 10.0 ** torch.linspace(-3, 2, dim)
    x = torch.randn(n, dim, generator=g) * channel
    x[::7, 3] = 0.0
    x[5, 4] = 300.0 * channel[4]  # one outlier sets that channel's scale
    x[:, -1] = 0.0  # an all-zero channel
    return x.half()


def test_float8_codes_are_nearest_e4m3_values():
    """The bound's premise: quantize_float8 rounds to the nearest e4m3 value (checked against all 256 codes)."""
    grid = torch.arange(256, dtype=torch.uint8).view(FLOAT8).float()
    grid = torch.sort(grid[torch.isfinite(grid)]).values.double()
    assert grid.max() == 448 and grid[grid > 0].min() == 2.0 ** -9
    y = torch.cat([torch.linspace(-448, 448, 20001), torch.linspace(-0.02, 0.02, 2001)])
    q = quantize_float8(y, torch.ones(())).view(FLOAT8).double()
    nearest = (y.double()[:, None] - grid[None]).abs().min(1).values
    torch.testing.assert_close((y.double() - q).abs(), nearest, rtol=0, atol=1e-12)
    assert ((y.double() - q).abs() <= torch.maximum(y.double().abs() / 16, torch.full_like(nearest, 2.0 ** -10))).all()


def test_float8_round_trip_within_the_e4m3_bound():
    x = wide_frames()
    scale = float8_scale(x, torch.device("cpu"))
    torch.testing.assert_close(scale, x.float().abs().amax(0).where(x.float().abs().amax(0) > 0,
                                                                   torch.tensor(448.0)) / 448)
    back = dequantize_float8(quantize_float8(x, scale), scale, torch.float32)
    err = (x.double() - back.double()).abs()
    bound = float8_bound(x, scale)
    assert (err <= bound).all(), float((err / bound).max())
    assert float((err / bound).max()) > 0.5  # and the bound is nearly attained: it is the real precision
    assert (back[x == 0] == 0).all()
    torch.testing.assert_close(back.abs().amax(0), x.float().abs().amax(0), rtol=1e-6, atol=0)  # absmax exact


def test_bfloat16_round_trip_within_2_to_minus_8():
    x = wide_frames()
    resident, scale = make_resident(x, "bfloat16", torch.device("cpu"), chunk_rows=999)
    assert scale is None and resident.dtype == torch.bfloat16
    err = (x.double() - resident.double()).abs()
    assert (err <= 2.0 ** -8 * x.double().abs()).all()


def test_float8_residency_halves_the_bytes():
    x = wide_frames()
    codes, scale = make_resident(x, "float8", torch.device("cpu"), chunk_rows=999)  # several chunks
    bf16, _ = make_resident(x, "bfloat16", torch.device("cpu"))
    assert codes.dtype == torch.uint8 and codes.shape == x.shape
    assert codes.nbytes * 2 == x.nbytes and bf16.nbytes == x.nbytes
    assert scale.nbytes == 4 * x.shape[1]  # one float32 per channel
    # chunked conversion equals the one-shot formula
    assert torch.equal(codes, quantize_float8(x, float8_scale(x, torch.device("cpu"))))


class WideSet(InMemoryFeatureSet):
    """In-memory audio set with per-channel scales over 10^4 (like encoder outlier channels)."""

    def load(self, ids=None, device="cpu", dtype=None, pin_memory=False, verify=False):
        packed = super().load(ids, device, dtype, pin_memory, verify)
        channel = (10.0 ** torch.linspace(-2, 2, self.frame_shape[0])).to(packed.frames.dtype)
        packed.frames.mul_(channel)
        return packed


def _modalities(tmp_path, resident: str, corpus=None):
    corpus = corpus or make_synthetic_corpus(tmp_path, n_train=40, n_dev=16, n_test=8, audio_dim=10, text_dim=4,
                                             write_features=False)
    table = read_msp_consensus(corpus.consensus)
    fs = WideSet(corpus.audio, "audio", table.ids, [str(x) for x in table.letter], 10, 20.0, 8.0, 40, 3)
    pool = FeaturePool({corpus.audio: fs}, torch.device("cpu"), "host")
    return build_modalities(pool, [corpus.audio], [], table, np.arange(len(table)), resident=resident), pool, corpus


def test_gather_returns_the_dequantised_frames_at_the_same_positions(tmp_path):
    half, pool16, corpus = _modalities(tmp_path, "float16")
    eight, pool8, _ = _modalities(tmp_path, "float8", corpus)
    bf, _, _ = _modalities(tmp_path, "bfloat16", corpus)
    s16, s8 = pool16.sets[corpus.audio], pool8.sets[corpus.audio]
    assert s16.frames.dtype == torch.float16 and s16.resident == "float16" and s16.scale is None
    assert s8.frames.dtype == torch.uint8 and s8.resident == "float8" and s8.scale.shape == (10,)
    assert s8.frames.nbytes * 2 == s16.frames.nbytes
    assert pool8.planned_bytes * 2 == pool16.planned_bytes  # placement is decided at the resident size
    rows = np.array([3, 0, 17, 9, 30])
    T = int(half["audio"].lengths[rows].max())
    x16, m16 = half["audio"].gather(rows, None, T, torch.float32)
    x8, m8 = eight["audio"].gather(rows, None, T, torch.float32)
    xb, mb = bf["audio"].gather(rows, None, T, torch.float32)
    assert torch.equal(m16, m8) and torch.equal(m16, mb)
    assert x8.dtype == torch.float32 and x8.shape == x16.shape
    # exactly the de-quantised codes of the float16 frames, position for position
    torch.testing.assert_close(x8, dequantize_float8(quantize_float8(x16, s8.scale), s8.scale, torch.float32),
                               rtol=0, atol=0)
    assert ((x16.double() - x8.double()).abs()[m8] <= float8_bound(x16, s8.scale)[m8]).all()
    torch.testing.assert_close(xb, x16.bfloat16().float(), rtol=0, atol=0)
    # the float64 statistics of input normalisation read the de-quantised values too
    _, std16 = half["audio"].channel_stats(np.arange(40))
    _, std8 = eight["audio"].channel_stats(np.arange(40))
    torch.testing.assert_close(std8, std16, rtol=2 ** -4, atol=0)


def test_another_residency_reloads_the_set(tmp_path):
    half, pool, corpus = _modalities(tmp_path, "float16")
    table = read_msp_consensus(corpus.consensus)
    build_modalities(pool, [corpus.audio], [], table, np.arange(len(table)), resident="float8")
    assert pool.sets[corpus.audio].resident == "float8" and pool.sets[corpus.audio].frames.dtype == torch.uint8
    build_modalities(pool, [corpus.audio], [], table, np.arange(10), resident="float8")
    assert pool.sets[corpus.audio].frames.shape[0] == int(half["audio"].lengths.sum())  # kept, not reloaded


@pytest.mark.parametrize("resident", ["float8", "bfloat16"])
def test_training_with_compact_residency_stays_finite(tmp_path, resident):
    torch.manual_seed(0)
    corpus = make_synthetic_corpus(tmp_path / "c", n_train=64, n_dev=32, n_test=8, audio_dim=8, text_dim=6,
                                   mean_seconds=0.2, std_seconds=0.05, ox_fraction=0.0, write_features=False)
    pool = in_memory_pool(corpus, torch.device("cpu"), 8, 6, signal=2.0, mean_frames=8)
    cfg = HeadConfig(store=str(corpus.store), features=[corpus.audio], text_features=[corpus.text],
                     labels=str(corpus.consensus), out=str(tmp_path / "run"), hidden=16, d_model=8, ff_dim=16,
                     layers=1, batch_size=16, lr=3e-3, max_epochs=2, patience=0, progress=False,
                     resident_dtype=resident)
    result = train(cfg, pool=pool, verbose=False)
    epochs = json.loads((result.out / "epochs.json").read_text())
    assert all(np.isfinite(e["train_loss"]) and np.isfinite(e["dev_loss"]) for e in epochs)
    saved = json.loads((result.out / "config.json").read_text())
    assert saved["resident_dtype"] == resident
    held = saved["resolved"]["residency"]
    assert {v["resident"] for v in held.values()} == {resident}
    assert {v["dtype"] for v in held.values()} == {"uint8" if resident == "float8" else "bfloat16"}
    assert all(v["bytes"] > 0 for v in held.values())
