"""Honest about noise: ensembles carry bootstrap intervals, report-heads shows intervals, reference rows,
gender and speaker breakdowns, and ranks a configuration trained with several seeds once."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from sercache.heads import HeadConfig, train
from sercache.heads.after.ensemble import build_ensemble
from sercache.heads.after.report import build_report
from sercache.heads.inputs.corpora.msp import MSP_CLASSES
from sercache.testing import make_synthetic_corpus

torch.set_num_threads(1)
TINY = dict(hidden=8, d_model=8, ff_dim=16, batch_size=16, max_epochs=4, progress=False, lr=3e-3,
            eval_batch_size=64, threads=1)  # enough to predict more than one class
ATTRS = ("EmoAct", "EmoVal", "EmoDom")  # MSP-Podcast's columns for arousal, valence, dominance


# ----------------------------------------------------------------------------------- ensembles
@pytest.fixture(scope="module")
def members(tmp_path_factory):
    root = tmp_path_factory.mktemp("noise")
    corpus = make_synthetic_corpus(root / "corpus", n_train=200, n_dev=60, n_test=50, audio_dim=16, text_dim=8,
                                   mean_seconds=0.5, std_seconds=0.2, signal=3.0, seed=4)
    base = dict(store=str(corpus.store), features=[corpus.audio], text_features=[corpus.text],
                labels=str(corpus.consensus), task="both", **TINY)
    dirs = []
    for seed in (0, 1):
        dirs.append(root / f"m{seed}")
        train(HeadConfig(**{**base, "out": str(dirs[-1]), "seed": seed}), verbose=False)
    return dirs


def _ccc(p: np.ndarray, t: np.ndarray) -> float:
    cov = ((p - p.mean()) * (t - t.mean())).mean()
    denom = p.var() + t.var() + (p.mean() - t.mean()) ** 2
    return 2 * cov / denom if denom > 0 else 0.0


def independent_intervals(path: Path, seed: int) -> dict[str, list[float]]:
    """95 % percentile intervals over 1,000 resamples of a predictions file's rows, drawn as
    heads/fit/metrics.resamples does (one generator, chunks of 100) and scored with scikit-learn."""
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    labelled = [r for r in rows if r["EmoClass"] in MSP_CLASSES]
    y = np.array([MSP_CLASSES.index(r["EmoClass"]) for r in labelled])
    y_hat = np.array([MSP_CLASSES.index(r["Prediction"]) for r in labelled])
    values: dict[str, list[float]] = {"macro_f1": [], "balanced_accuracy": [], "accuracy": []}
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # balanced accuracy of a resample that misses a predicted class
        for _ in range(10):
            for idx in rng.integers(0, len(y), size=(100, len(y))):
                values["macro_f1"].append(f1_score(y[idx], y_hat[idx], labels=range(len(MSP_CLASSES)),
                                                   average="macro", zero_division=0))
                values["balanced_accuracy"].append(balanced_accuracy_score(y[idx], y_hat[idx]))
                values["accuracy"].append(accuracy_score(y[idx], y_hat[idx]))
    avd = [r for r in rows if all(r[a].strip() for a in ATTRS)]
    pred = np.array([[float(r[f"pred_{a}"]) for a in ATTRS] for r in avd])
    true = np.array([[float(r[a]) for a in ATTRS] for r in avd])
    rng = np.random.default_rng(seed)
    ccc = [np.mean([_ccc(pred[idx, j], true[idx, j]) for j in range(3)])
           for _ in range(10) for idx in rng.integers(0, len(avd), size=(100, len(avd)))]
    values["ccc_mean"] = ccc
    return {k: list(np.quantile(v, [0.025, 0.975])) for k, v in values.items()}


def test_ensemble_intervals_equal_an_independent_bootstrap(members, tmp_path):
    summary = build_ensemble(members, tmp_path / "ens", method="mean", seed=3, verbose=False)
    written = json.loads((tmp_path / "ens" / "metrics.json").read_text())["splits"]
    for split in ("dev", "test1"):
        got = written[split]["ci95"]
        assert got == summary["splits"][split]["ci95"]
        want = independent_intervals(tmp_path / "ens" / f"predictions_{split}.csv", seed=3)
        for key in ("macro_f1", "balanced_accuracy", "accuracy"):
            assert got[key] == pytest.approx(want[key], abs=1e-12), (split, key)
            assert got[key][0] <= written[split][key] <= got[key][1]
        assert got["macro_f1"][0] < got["macro_f1"][1] and len({c for row in written[split]["confusion"]
                                                                  for c, v in enumerate(row) if v}) > 1
        # A/V/D: the file holds them at 4 decimals, the ensemble scored the unrounded mean
        assert got["ccc_mean"] == pytest.approx(want["ccc_mean"], abs=2e-3), split
        assert set(got) >= {"ccc_arousal", "ccc_valence", "ccc_dominance"}
    # seeded: the same seed draws the same resamples, another seed others
    again = build_ensemble(members, tmp_path / "again", method="mean", seed=3, verbose=False)
    other = build_ensemble(members, tmp_path / "other", method="mean", seed=4, verbose=False)
    assert again["splits"]["test1"]["ci95"] == summary["splits"]["test1"]["ci95"]
    assert other["splits"]["test1"]["ci95"] != summary["splits"]["test1"]["ci95"]


def test_leaderboard_groups_seeds_of_runs_and_of_ensembles(members, tmp_path):
    """The two members differ only by seed: one configuration. Ensembles of the same members with seeds 3 and 4
    are one too; a later one with seed 3 (found after them) repeats a draw and stands alone; one of other members
    is another configuration."""
    for name, seed, dirs in (("ens/s3", 3, members), ("ens/s4", 4, members), ("repeat", 3, members),
                             ("solo", 3, members[:1])):
        build_ensemble(dirs, tmp_path / name, method="mean", seed=seed, verbose=False)
    report = build_report([*members, tmp_path], tmp_path / "rep", html_page=False, curves=False, verbose=False)
    bars = report["leaderboard_bars"]["macro_f1"]
    here = tmp_path.name  # labels are relative to the folder the members and the ensembles share
    assert sorted(zip(bars["labels"], bars["n"], bars["kinds"])) == [
        ("noise0 (2 seeds)", 2, "run"), (f"{here}/ens (2 seeds)", 2, "ensemble"), (f"{here}/repeat", 1, "ensemble"),
        (f"{here}/solo", 1, "ensemble")]
    dev = [json.loads((d / "metrics.json").read_text())["splits"]["dev"]["macro_f1"] for d in members]
    i = bars["labels"].index("noise0 (2 seeds)")
    assert bars["means"][i] == pytest.approx(50 * sum(dev)) and bars["errors"][i] == pytest.approx(
        100 * np.std(dev, ddof=1))
    assert sorted(bars["points"][i]) == pytest.approx(sorted(100 * v for v in dev))


# ----------------------------------------------------------------------------------- report: fake runs
def fake_run(path: Path, seed: int, dev: float, test: float, extra: dict | None = None, **config) -> Path:
    """A run directory as report-heads reads it: config.json + metrics.json (macro_f1, UA, WA per split)."""
    path.mkdir(parents=True)
    base = {"loss": "ce", "weights": "uniform", "features": ["a"], "text_features": [], "corpus": "msp",
            "dev_split": "dev", "seed": seed, "out": str(path), "seeds": [],
            "resolved": {"classes": {"letters": ["A", "N"], "names": ["Angry", "Neutral"]}, "task": "class"}}
    (path / "config.json").write_text(json.dumps({**base, **config}))

    def split(v: float) -> dict:
        return {"n": 100, "macro_f1": v, "micro_f1": v + 0.1, "accuracy": v + 0.1, "balanced_accuracy": v + 0.05}

    metrics = {"dev_split": "dev", "best_epoch": 1, "epochs_run": 1, "selection": {"metric": "macro_f1", "value": dev},
               "splits": {"dev": {**split(dev), **(extra or {})}, "test1": split(test)}, "classes": ["A", "N"]}
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def board_rows(md: str) -> list[list[str]]:
    board = md.split("## Leaderboard")[1].split("\n## ")[0]
    return [[c.strip() for c in line.split("|")[1:-1]] for line in board.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip().isdigit()]


def test_leaderboard_shows_a_configuration_once_with_its_seeds_mean_and_spread(tmp_path):
    dirs = [fake_run(tmp_path / "focal" / f"s{k}", k, dev, 0.4, loss="focal")
            for k, dev in enumerate((0.50, 0.54, 0.46))]
    dirs.append(fake_run(tmp_path / "ce" / "s0", 0, 0.49, 0.3))
    dirs.append(fake_run(tmp_path / "copy" / "s0", 0, 0.495, 0.4, loss="focal"))  # a copy of seed 0: no new draw
    report = build_report(dirs, tmp_path / "rep", html_page=False, curves=False, verbose=False)
    board = report["leaderboard"]["macro_f1"]
    assert [label for label, _ in board] == ["focal", "copy/s0", "ce/s0"]  # one entry for the three seeds
    assert board[0][1] == pytest.approx(0.50)
    rows = board_rows((tmp_path / "rep" / "report.md").read_text())
    assert [r[1] for r in rows] == ["focal", "copy/s0", "ce/s0"]
    focal, copy, ce = rows
    assert focal[2:5] == ["run", "3", "50.00 ± 4.00"]  # mean ± std (ddof 1) of 50, 54, 46
    assert "60.00 ± 4.00" in focal and "40.00 ± 0.00" in focal  # dev WA, test1 Macro-F1
    assert copy[3:5] == ["1", "49.50"] and ce[3:5] == ["1", "49.00"]
    # the figure: one bar per configuration at the mean, std as error bar, the seeds as points
    bars = report["leaderboard_bars"]["macro_f1"]
    assert bars["labels"] == ["focal (3 seeds)", "copy/s0", "ce/s0"] and bars["n"] == [3, 1, 1]
    assert bars["means"] == pytest.approx([50.0, 49.5, 49.0])
    assert bars["errors"] == pytest.approx([4.0, 0.0, 0.0])
    assert sorted(bars["points"][0]) == pytest.approx([46.0, 50.0, 54.0]) and bars["points"][1:] == [[], []]
    assert (tmp_path / "rep" / "figures" / "leaderboard_macro_f1.png").stat().st_size > 5000
    # the seed section still lists the seeds (the copy stays out of the group)
    assert [g["seeds"] for g in report["seeds"]["groups"] if g["split"] == "dev"] == [[0, 1, 2]]


def test_report_shows_intervals_reference_rows_and_breakdowns(tmp_path):
    def scores(v: float, n: int) -> dict:
        return {"n": n, "macro_f1": v, "balanced_accuracy": v + 0.01, "accuracy": v + 0.02}

    extra = {"ci95": {"macro_f1": [0.35, 0.471], "balanced_accuracy": [0.4, 0.5], "accuracy": [0.5, 0.6]},
             "reference": {"majority": {"class": "N", "macro_f1": 0.3333, "balanced_accuracy": 0.5, "accuracy": 0.6},
                           "chance": {"macro_f1": 0.45, "balanced_accuracy": 0.5, "accuracy": 0.52}},
             "by_gender": {"female": scores(0.61, 55), "male": scores(0.39, 45)},
             "by_speaker": {"spk1": scores(0.2, 10), "spk2": scores(0.8, 30), "spk3": scores(0.5, 60)}}
    run = fake_run(tmp_path / "run", 0, 0.412, 0.3, extra=extra)
    old = fake_run(tmp_path / "old", 0, 0.3, 0.3, loss="focal")  # a run from before: none of it, no error
    build_report([run, old], tmp_path / "rep", html_page=True, curves=False, verbose=False)
    md = (tmp_path / "rep" / "report.md").read_text()
    section = md.split("\n## run\n")[1].split("\n## ")[0]
    assert "| dev | 100 | 41.20 (35.00–47.10) | 51.20 | 51.20 (50.00–60.00) | 46.20 (40.00–50.00) |" in section
    assert "| test1 | 100 | 30.00 | 40.00 | 40.00 | 35.00 |" in section  # no interval recorded: none shown
    assert "| dev: majority class (N) |  | 33.33 | - | 60.00 | 50.00 |" in section
    assert "| dev: chance |  | 45.00 | - | 52.00 | 50.00 |" in section
    assert "### run — by gender" in section
    assert "| dev | female | 55 | 61.00 | 62.00 | 63.00 |" in section and "| dev | male | 45 | 39.00 |" in section
    assert "### run — by speaker" in section
    assert "| dev | 3 | 30 | 50.00 (20.00–80.00) | 51.00 (21.00–81.00) | 52.00 (22.00–82.00) |" in section
    assert "| dev | spk1 | 10 | 20.00 | 21.00 | 22.00 |" in section
    old_section = md.split("\n## old\n")[1].split("\n## ")[0]
    assert "majority" not in old_section and "by gender" not in old_section and "bootstrap" not in old_section
    assert "41.20 (35.00–47.10)" in (tmp_path / "rep" / "report.html").read_text()


def test_many_speakers_go_to_a_csv_beside_the_report(tmp_path):
    speakers = {f"spk{i:03d}": {"n": 5, "macro_f1": i / 100, "balanced_accuracy": 0.5, "accuracy": 0.5}
                for i in range(50)}
    run = fake_run(tmp_path / "run", 0, 0.4, 0.3, extra={"by_speaker": speakers})
    build_report([run], tmp_path / "rep", html_page=False, curves=False, verbose=False)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| dev | 50 | 5 | 24.50 (0.00–49.00) |" in md and "| dev | spk001 |" not in md
    assert "`tables/run_speakers.csv`" in md
    with open(tmp_path / "rep" / "tables" / "run_speakers.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:3] == ["split", "speaker", "n"] and len(rows) == 51
    assert rows[2][:4] == ["dev", "spk001", "5", "1.00"]
