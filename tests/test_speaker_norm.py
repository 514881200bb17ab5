"""--speaker-norm: every utterance's frames standardised per channel with its own (split, speaker) statistics.

The statistics equal numpy's over the valid frames (layered audio and text, resident and streamed), a speaker's
constant offset is removed exactly, a head learns across speakers with it where it cannot without, store-mode
predict reproduces the run's own test predictions, and what cannot work (unknown speakers, prediction from audio or
without a label table) is refused with what to do."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sercache.cache import FeatureSetWriter, StorageConfig, Store, UtteranceRecord
from sercache.errors import SercacheError
from sercache.heads import HeadConfig, train
from sercache.heads.after.predict import predict
from sercache.heads.errors import HeadError
from sercache.heads.inputs.corpora.csv import read_generic_csv
from sercache.heads.inputs.features import FeaturePool, build_modalities, standardise_speakers
from sercache.heads.inputs.speakers import STD_FLOOR
from sercache.predict_audio import predict_audio, refuse_speaker_norm

torch.set_num_threads(1)  # tiny arrays: threads only add contention on a shared 2-core machine

AUDIO, TEXT = "enc/all", "txt/mean-4..-1"  # a layered audio set [2, 3] and a text set [4]
TINY = dict(hidden=16, d_model=16, ff_dim=32, batch_size=16, max_epochs=2, progress=False, lr=3e-3,
            eval_batch_size=64)


def write_set(store: Store, name: str, kind: str, frames: dict[str, np.ndarray]) -> None:
    """One float32 feature set (so the test compares exact stored values), recorded as an extractor would."""
    shape = list(next(iter(frames.values())).shape[1:])
    writer = FeatureSetWriter(store, name, StorageConfig(dtype="float32"))
    writer.ensure_metadata({"model": name.split("/")[0], "kind": kind, "frame_rate": 50.0 if kind == "audio" else None,
                            "sample_rate": 16000, "frame_shape": shape, "layers": "all" if len(shape) == 2 else "-1",
                            "layer_indices": [0, 1] if len(shape) == 2 else [-1],
                            "reduction": "none" if kind == "audio" else "mean", "whisper_mode": None,
                            "weights_sha256": None})
    writer.commit_part(0, [UtteranceRecord(u, x.astype(np.float32), "f", "s", "") for u, x in frames.items()],
                       frame_shape=shape)


def write_labels(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """A generic CSV label table: id, split, label, speaker."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "split", "label", "speaker"])
        writer.writerows(rows)
    return path


# ----------------------------------------------------------------------------------- (1) the statistics
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two speakers with padded utterances of different lengths; s1 also in the test split (its own group there);
    text channel 0 constant (the std floor)."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    plan = [("s1", "train", 5), ("s2", "train", 4), ("s1", "test", 3)]
    rows, audio, text = [], {}, {}
    for speaker, split, n in plan:
        shift, scale = rng.normal(0, 3, (2, 3)), rng.uniform(0.5, 2.0, (2, 3))
        for i in range(n):
            uid = f"{split}_{speaker}_{i}"
            audio[uid] = shift + scale * rng.standard_normal((int(rng.integers(2, 12)), 2, 3))
            text[uid] = rng.normal(1.0, 2.0, (int(rng.integers(2, 9)), 4))
            text[uid][:, 0] = 7.0
            rows.append((uid, split, "a" if i % 2 else "b", speaker))
    store = Store.create(root / "store")
    write_set(store, AUDIO, "audio", audio)
    write_set(store, TEXT, "text", text)
    return root / "store", read_generic_csv(write_labels(root / "labels.csv", rows)), {"audio": audio, "text": text}


def gathered(store: Path, table, placement: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every row of the table, speaker-standardised and gathered in one padded batch: (frames, mask) per modality."""
    pool = FeaturePool(store, torch.device("cpu"), placement)
    rows = np.arange(len(table))
    mods = build_modalities(pool, [AUDIO], [TEXT], table, rows)
    assert standardise_speakers(mods, table, rows, "the test table", "fix it") == 3  # (split, speaker) groups
    out = {}
    for name, m in mods.items():
        x, mask = m.gather(rows, None, int(m.lengths.max()), torch.float64)
        out[name] = (x.numpy(), mask.numpy())
    return out


@pytest.mark.parametrize("placement", ["host", "stream"])
def test_standardisation_equals_numpy_per_split_and_speaker(tiny, placement):
    store, table, raw = tiny
    got = gathered(store, table, placement)
    groups = {}
    for i, (split, speaker) in enumerate(zip(table.split, table.speaker)):
        groups.setdefault((split, speaker), []).append(i)
    assert len(groups) == 3
    for name in ("audio", "text"):
        x, mask = got[name]
        for members in groups.values():
            frames = np.concatenate([raw[name][table.ids[i]] for i in members]).astype(np.float32).astype(np.float64)
            mean, std = frames.mean(0), np.maximum(frames.std(0), STD_FLOOR)
            for i in members:
                n = len(raw[name][table.ids[i]])
                assert mask[i].sum() == n and mask[i, :n].all()  # padded utterances: only the valid frames count
                expected = (raw[name][table.ids[i]].astype(np.float32) - mean) / std
                np.testing.assert_allclose(x[i, :n], expected, atol=1e-6, rtol=0)
            # afterwards each (split, speaker) group has mean 0 and std 1 over its frames (0 on the constant channel)
            valid = np.concatenate([x[i][mask[i]] for i in members])
            np.testing.assert_allclose(valid.mean(0), 0.0, atol=1e-6)
            expected_std = np.ones(valid.shape[1:])
            if name == "text":
                expected_std[0] = 0.0
            np.testing.assert_allclose(valid.std(0), expected_std, atol=1e-5)


def test_input_norm_statistics_are_taken_after_speaker_standardisation(tiny):
    store, table, _ = tiny
    pool = FeaturePool(store, torch.device("cpu"), "host")
    rows = np.arange(len(table))
    mods = build_modalities(pool, [AUDIO], [TEXT], table, rows)
    before = mods["audio"].channel_stats(rows)[0]
    standardise_speakers(mods, table, rows, "the test table", "fix it")
    mean, std = mods["audio"].channel_stats(rows)
    assert not torch.allclose(before, mean, atol=1e-3)  # not the cached statistics of the raw frames
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-6, rtol=0)  # every group is centred
    torch.testing.assert_close(std, torch.ones_like(std), atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------------- (2) training
@pytest.fixture(scope="module")
def offsets(tmp_path_factory):
    """Two classes along one direction (signal 1.5) under a large constant offset per speaker (std 20 per channel):
    "enc" holds the offset frames, "clean" the same frames without the offsets; 6 train, 2 dev, 2 test speakers."""
    root = tmp_path_factory.mktemp("offsets")
    rng = np.random.default_rng(1)
    direction = rng.standard_normal(4)
    direction /= np.linalg.norm(direction)
    rows, clean, shifted, text = [], {}, {}, {}
    for s, split in enumerate(["train"] * 6 + ["dev"] * 2 + ["test"] * 2):
        offset = rng.normal(0, 20, 4)
        for i in range(12):
            label = ("ang", "neu")[i % 2]
            uid = f"spk{s}_{i:02d}"
            x = rng.standard_normal((int(rng.integers(4, 16)), 4)) + (1.5 if label == "ang" else -1.5) * direction
            clean[uid], shifted[uid] = x, x + offset
            text[uid] = rng.standard_normal((int(rng.integers(3, 8)), 3)) + offset[:3]
            rows.append((uid, split, label, f"spk{s}"))
    store = Store.create(root / "store")
    write_set(store, "enc/L-1", "audio", shifted)
    write_set(store, "clean/L-1", "audio", clean)
    write_set(store, TEXT, "text", text)
    return root, write_labels(root / "labels.csv", rows)


def probe_config(offsets, out: Path, **changes) -> HeadConfig:
    root, labels = offsets
    return HeadConfig(**{**dict(store=str(root / "store"), features=["enc/L-1"], corpus="csv", labels=str(labels),
                                head="probe", out=str(out), progress=False), **changes})


@pytest.fixture(scope="module")
def probe_run(offsets, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "probe"
    return out, train(probe_config(offsets, out, speaker_norm=True), verbose=False)


def test_speaker_offsets_are_removed_exactly(offsets):
    root, labels = offsets
    table = read_generic_csv(labels)
    pool = FeaturePool(root / "store", torch.device("cpu"), "host")
    rows = np.arange(len(table))
    mods = {name: build_modalities(pool, [name], [], table, rows)["audio"] for name in ("enc/L-1", "clean/L-1")}
    plain = mods["enc/L-1"].gather(rows, None, 16, torch.float32)[0]
    for m in mods.values():
        standardise_speakers({"audio": m}, table, rows, "the test table", "fix it")
    (x, mask), (y, _) = (m.gather(rows, None, 16, torch.float32) for m in mods.values())
    torch.testing.assert_close(x[mask], y[mask], atol=2e-5, rtol=0)
    assert (plain[mask] - y[mask]).abs().mean() > 10  # without it the offsets are there


def test_probe_learns_across_speakers_only_with_it(offsets, probe_run, tmp_path):
    out, normed = probe_run
    plain = train(probe_config(offsets, tmp_path / "plain"), verbose=False)
    test_normed, test_plain = normed.summary["splits"]["test"], plain.summary["splits"]["test"]
    assert test_normed["macro_f1"] >= 0.9
    assert test_normed["macro_f1"] > test_plain["macro_f1"] + 0.2
    config = json.loads((out / "config.json").read_text())
    assert config["speaker_norm"] is True
    assert any("--speaker-norm" in note and "10 split/speaker groups" in note for note in config["resolved"]["notes"])


@pytest.mark.filterwarnings("ignore:.*optimiser step")  # a tiny run, on purpose
def test_neural_head_trains_end_to_end_on_audio_and_text(offsets, tmp_path):
    result = train(probe_config(offsets, tmp_path / "paper", head="paper", text_features=[TEXT], speaker_norm=True,
                                **TINY), verbose=False)
    assert np.isfinite(result.summary["splits"]["test"]["macro_f1"])
    assert json.loads((tmp_path / "paper" / "config.json").read_text())["speaker_norm"] is True


def read_probs(path: Path) -> dict[str, list[float]]:
    with open(path) as handle:
        return {r["id"]: [float(r["prob_ang"]), float(r["prob_neu"])] for r in csv.DictReader(handle)}


def test_store_mode_predict_reproduces_the_run_and_needs_labels(offsets, probe_run, tmp_path):
    out, _ = probe_run
    _, labels = offsets
    predict(out, tmp_path / "pred", labels=str(labels), split="test", verbose=False)
    got, want = read_probs(tmp_path / "pred" / "probabilities.csv"), read_probs(out / "predictions_test.csv")
    assert got.keys() == want.keys() and len(got) == 24
    for uid in want:
        np.testing.assert_allclose(got[uid], want[uid], atol=1e-5)
    with pytest.raises(HeadError, match="--speaker-norm.*--labels"):
        predict(out, tmp_path / "ids", verbose=False)  # every utterance of the store: no speakers


# ----------------------------------------------------------------------------------- (3), (4) refusals
def test_utterances_without_speaker_are_refused_before_training(offsets, tmp_path):
    _, labels = offsets
    with open(labels) as handle:
        rows = [tuple(r) for r in csv.reader(handle)][1:]
    blank = [(u, split, label, "" if split == "test" and i % 3 == 0 else spk)
             for i, (u, split, label, spk) in enumerate(rows)]
    gaps = write_labels(tmp_path / "gaps.csv", blank)
    with pytest.raises(HeadError, match=r"8 of the 120 utterance\(s\) to process have no known speaker in the csv "
                                        r"labels .*gaps\.csv \(test 8\)") as err:
        train(probe_config(offsets, tmp_path / "run", labels=str(gaps), speaker_norm=True), verbose=False)
    assert isinstance(err.value, SercacheError) and "speaker_id column" in str(err.value)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_audio_mode_predict_refuses_a_speaker_norm_head(probe_run, tmp_path):
    out, _ = probe_run
    with pytest.raises(HeadError, match="--speaker-norm.*audio files name no speaker.*predict from the store"):
        predict_audio(out, [str(tmp_path / "never-read.wav")], verbose=False)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text(json.dumps({"speaker_norm": False}))
    refuse_speaker_norm([plain])  # a head without it passes

