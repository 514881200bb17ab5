"""The store: round trips, plain zarr/h5py reading as cache_schema.md describes, the float16 guard,
checksums catching corruption, provenance checks, superseded rows."""

from __future__ import annotations

import json
import os
import zlib

import numpy as np
import pytest
import torch

from sercache.cache import (
    CacheError,
    FeatureSetWriter,
    Float16OverflowError,
    StorageConfig,
    Store,
    UtteranceRecord,
    open_store,
)
from sercache.cache.cli import copy_feature_set

PROVENANCE = {"model": "test-model", "kind": "audio", "frame_rate": 50.0, "sample_rate": 16000,
              "frame_shape": [8], "layers": "-1", "layer_indices": [3], "reduction": "none"}


def records(n: int, dim: int = 8, seed: int = 0, scale: float = 1.0) -> list[UtteranceRecord]:
    rng = np.random.default_rng(seed)
    return [UtteranceRecord(f"utt{i:03d}.wav", (rng.standard_normal((5 + 3 * i, dim)) * scale).astype(np.float32),
                            f"fp{i}", f"/audio/utt{i:03d}.wav", "1:2") for i in range(n)]


def build(tmp_path, backend="zarr", dtype="float16", parts=((0, 4), (4, 9)), **storage):
    store = Store.create(tmp_path / "store", backend)
    writer = FeatureSetWriter(store, "test-model/L-1", StorageConfig(backend=backend, dtype=dtype, **storage))
    writer.ensure_metadata(PROVENANCE)
    recs = records(9)
    for number, (lo, hi) in enumerate(parts):
        writer.commit_part(number, recs[lo:hi], [8])
    return store, recs


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
@pytest.mark.parametrize("dtype,tol", [("float16", 2e-3), ("bfloat16", 1e-2), ("float32", 0.0)])
def test_round_trip_get_and_load(tmp_path, backend, dtype, tol):
    store, recs = build(tmp_path, backend, dtype, chunk_frames=16, shard_chunks=2)
    fs = open_store(store.root)["test-model/L-1"]
    assert fs.ids == [r.id for r in recs]
    assert list(fs.lengths()) == [len(r.features) for r in recs]
    for r in recs:
        got = fs.get(r.id, verify=True).astype(np.float32)
        np.testing.assert_allclose(got, r.features, rtol=tol, atol=tol)
    packed = fs.load(ids=[recs[5].id, recs[1].id])
    assert packed.offsets.tolist() == [0, len(recs[5].features), len(recs[5].features) + len(recs[1].features)]
    np.testing.assert_allclose(packed.utterance(1).float().numpy(), recs[1].features, rtol=tol, atol=tol)
    expected_dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]
    assert packed.frames.dtype == expected_dtype and packed.frames.is_contiguous()


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_read_many_equals_get_in_few_slices(tmp_path, backend):
    store, recs = build(tmp_path, backend, "bfloat16", chunk_frames=16, shard_chunks=2)
    fs = open_store(store.root)["test-model/L-1"]
    wanted = [recs[i].id for i in (7, 0, 2, 3, 5, 8)]  # both parts, out of order, with gaps
    got = fs.read_many(wanted)
    assert list(got) != wanted and set(got) == set(wanted)
    for uid in wanted:
        np.testing.assert_array_equal(got[uid], fs.get(uid))
    assert fs.range_reads == 2  # one slice per part: the gaps are shorter than max_gap
    fs.read_many(wanted, max_gap=0)
    assert fs.range_reads == 2 + 4  # part 0: [0], [2, 3]; part 1: [5], [7, 8]


def test_plain_zarr_reading_as_documented(tmp_path):
    """cache_schema.md: any utterance readable with zarr alone."""
    import zarr

    store, recs = build(tmp_path, chunk_frames=16, shard_chunks=2)
    root = store.root
    assert json.loads((root / "sercache.json").read_text())["schema_version"] == 1
    meta = json.loads((root / "test-model/L-1/featureset.json").read_text())
    assert meta["dtype"] == "float16" and meta["frame_shape"] == [8]
    found = {}
    for part in sorted((root / "test-model/L-1/parts").glob("p*.zarr")):
        group = zarr.open_group(str(part), mode="r")
        ids, offsets, lengths = group["ids"][:], group["offsets"][:], group["lengths"][:]
        for uid, off, n, crc in zip(ids, offsets, lengths, group["checksums"][:]):
            rows = group["frames"][off:off + n]
            assert zlib.crc32(rows.tobytes()) == crc
            found[str(uid)] = rows
    assert set(found) == {r.id for r in recs}
    np.testing.assert_allclose(found[recs[6].id].astype(np.float32), recs[6].features, atol=2e-3, rtol=2e-3)


def test_plain_h5py_reading_as_documented(tmp_path):
    import h5py

    store, recs = build(tmp_path, backend="hdf5")
    with h5py.File(store.root / "test-model/L-1/parts/p000001.h5", "r") as f:
        ids = list(f["ids"].asstr()[:])
        i = ids.index(recs[7].id)
        off, n = f["offsets"][i], f["lengths"][i]
        rows = f["frames"][off:off + n]
        assert json.loads(f.attrs["sercache"])["n_utterances"] == 5
    np.testing.assert_allclose(rows.astype(np.float32), recs[7].features, atol=2e-3, rtol=2e-3)


def test_bfloat16_decodes_with_one_line_shift(tmp_path):
    import zarr

    store, recs = build(tmp_path, dtype="bfloat16")
    group = zarr.open_group(str(store.root / "test-model/L-1/parts/p000000.zarr"), mode="r")
    raw = group["frames"][:5]
    assert raw.dtype == np.uint16
    decoded = (raw.astype(np.uint32) << 16).view(np.float32)
    expected = torch.from_numpy(recs[0].features).bfloat16().float().numpy()
    np.testing.assert_array_equal(decoded, expected)


def test_float16_guard_clips_counts_or_refuses(tmp_path):
    store = Store.create(tmp_path / "s")
    writer = FeatureSetWriter(store, "m/L-1", StorageConfig())
    writer.ensure_metadata(PROVENANCE)
    big = records(1)[0]
    big.features[0, :3] = [1e5, -7e4, 65504.0]
    summary = writer.commit_part(0, [big], [8])
    assert summary.clipped == 2
    row = open_store(store.root)["m/L-1"].get(big.id)[0]
    assert np.isfinite(row).all() and row[0] == np.float16(65504) and row[1] == np.float16(-65504)
    strict = FeatureSetWriter(store, "m/L-1", StorageConfig(on_overflow="error"))
    with pytest.raises(Float16OverflowError, match="2 values exceed the float16 range"):
        strict.commit_part(1, [big], [8])
    assert not (store.root / "m/L-1/parts/p000001.zarr").exists()


def test_nan_features_refused_naming_utterance(tmp_path):
    store = Store.create(tmp_path / "s")
    writer = FeatureSetWriter(store, "m/L-1", StorageConfig())
    writer.ensure_metadata(PROVENANCE)
    rec = records(1)[0]
    rec.features[2, 2] = np.nan
    with pytest.raises(CacheError, match="utt000.wav.*NaN"):
        writer.commit_part(0, [rec], [8])


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_verify_reports_flipped_byte(tmp_path, backend):
    store, _ = build(tmp_path, backend, dtype="float32", chunk_frames=16, shard_chunks=0)
    fs = open_store(store.root)["test-model/L-1"]
    assert fs.verify().ok
    if backend == "zarr":
        chunk = sorted((store.root / "test-model/L-1/parts/p000001.zarr/frames/c").rglob("*"))[-1]
    else:
        chunk = store.root / "test-model/L-1/parts/p000001.h5"
    data = bytearray(chunk.read_bytes())
    position = 40
    if backend == "hdf5":
        import h5py

        with h5py.File(chunk, "r") as f:
            position = f["frames"].id.get_chunk_info(0).byte_offset + 40
    data[position] ^= 0x55
    chunk.write_bytes(bytes(data))
    report = open_store(store.root)["test-model/L-1"].verify()
    assert not report.ok and "fails its checksum" in report.problems[0]
    bad = report.problems[0].split("'")[1]
    with pytest.raises(CacheError, match="corrupted"):
        open_store(store.root)["test-model/L-1"].get(bad, verify=True)


def test_verify_reports_truncated_shard(tmp_path):
    store, _ = build(tmp_path, compression="blosc-zstd", chunk_frames=16, shard_chunks=4)
    shard = sorted((store.root / "test-model/L-1/parts/p000001.zarr/frames/c").rglob("*"))[-1]
    shard.write_bytes(shard.read_bytes()[:50])
    report = open_store(store.root)["test-model/L-1"].verify()
    assert not report.ok and "p000001.zarr" in report.problems[0]


def test_schema_version_is_checked(tmp_path):
    store, _ = build(tmp_path)
    meta = json.loads((store.root / "sercache.json").read_text())
    meta["schema_version"] = 99
    (store.root / "sercache.json").write_text(json.dumps(meta))
    with pytest.raises(CacheError, match="schema version 99"):
        open_store(store.root)


def test_feature_set_with_other_provenance_is_refused(tmp_path):
    store, _ = build(tmp_path)
    writer = FeatureSetWriter(store, "test-model/L-1", StorageConfig())
    with pytest.raises(CacheError, match="layer_indices"):
        writer.ensure_metadata({**PROVENANCE, "layer_indices": [2]})
    with pytest.raises(CacheError, match="dtype"):
        FeatureSetWriter(store, "test-model/L-1", StorageConfig(dtype="float32")).ensure_metadata(PROVENANCE)


def test_later_part_supersedes_and_export_compacts(tmp_path):
    store, recs = build(tmp_path)
    writer = FeatureSetWriter(store, "test-model/L-1", StorageConfig())
    replacement = UtteranceRecord(recs[2].id, np.full((4, 8), 3.0, np.float32), "new", "x", "y")
    writer.commit_part(2, [replacement], [8])
    fs = open_store(store.root)["test-model/L-1"]
    assert len(fs) == 9 and fs.entry(recs[2].id).part == 2
    np.testing.assert_array_equal(fs.get(recs[2].id), np.full((4, 8), 3.0, np.float16))
    target = Store.create(tmp_path / "copy", "hdf5")
    copy_feature_set(fs, target, None, "none")
    copied = open_store(tmp_path / "copy")["test-model/L-1"]
    assert copied.total_frames() == fs.total_frames() < sum(len(r.features) for r in recs) + 4
    np.testing.assert_array_equal(copied.get(recs[2].id), fs.get(recs[2].id))
    assert copied.meta["model"] == "test-model"


def test_uncommitted_temporaries_are_invisible_and_removed(tmp_path):
    store, recs = build(tmp_path)
    stray = store.root / "test-model/L-1/parts/.tmp-p000002.zarr-999"
    stray.mkdir()
    assert len(open_store(store.root)["test-model/L-1"]) == 9
    assert FeatureSetWriter(store, "test-model/L-1", StorageConfig()).remove_temporaries() == 1
    assert not stray.exists()


def test_missing_feature_set_error_lists_available(tmp_path):
    store, _ = build(tmp_path)
    with pytest.raises(CacheError, match="available: test-model/L-1"):
        open_store(store.root)["wavlm-large/L-1"]
    with pytest.raises(CacheError, match="missing"):
        open_store(tmp_path / "nowhere")


def test_cache_schema_md_snippet_runs_verbatim(tmp_path):
    """The reading recipe in cache_schema.md works as written on a real store."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "cache_schema.md").read_text()
    snippet = re.search(r"## Reading with plain zarr\s+```python\n(.*?)```", text, re.S).group(1)
    store = Store.create(tmp_path / "STORE")
    writer = FeatureSetWriter(store, "wavlm-large/L-1", StorageConfig(dtype="bfloat16", chunk_frames=16))
    writer.ensure_metadata(PROVENANCE)
    recs = records(3)
    recs[1].id = "MSP-PODCAST_0001_0008.wav"
    writer.commit_part(0, recs, [8])
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(snippet, "cache_schema.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    expected = torch.from_numpy(recs[1].features).bfloat16().float().numpy()
    np.testing.assert_array_equal(namespace["rows"], expected)
