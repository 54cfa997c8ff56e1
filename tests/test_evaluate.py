"""Stage-1 evaluation: metric helpers against sklearn / hand values, the evaluate report, the ablation table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from encoder.ablation import AblationConfig, run_ablation
from encoder.datasets.testing import write_tiny_ptbxl
from encoder.errors import CheckpointError
from encoder.evaluate import EvaluateConfig, fit_probe, run_evaluate
from encoder.metrics import (
    all_metrics,
    bootstrap_ci,
    macro_auroc,
    per_label_auroc,
    threshold_metrics,
    tune_thresholds,
)
from encoder.text import TextTowerConfig
from encoder.train import PretrainConfig, run_pretrain


def test_metrics_match_sklearn_and_hand_values() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((60, 4)) < 0.4).astype(int)
    y[:, 3] = 0  # a label without positives: skipped by AUROC, NaN per label
    s = y + rng.normal(0, 0.8, y.shape)
    assert macro_auroc(y, s) == pytest.approx(roc_auc_score(y[:, :3], s[:, :3], average="macro"))
    per = per_label_auroc(y, s)
    assert np.isnan(per[3]) and per[0] == pytest.approx(roc_auc_score(y[:, 0], s[:, 0]))
    y2 = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    p2 = np.array([[0.9, 0.2], [0.1, 0.8], [0.7, 0.3], [0.2, 0.1]])
    m = threshold_metrics(y2, p2, np.array([0.5, 0.5]))
    # predictions: {0}, {1}, {0}, {} -> sample Jaccard (1 + 1 + 1/2 + 0 (empty/empty, zero_division=0)) / 4
    assert m["sample_jaccard"] == pytest.approx(2.5 / 4)
    assert m["micro_f1"] == pytest.approx(f1_score(y2, p2 >= 0.5, average="micro"))


def test_thresholds_tuned_on_validation_separate_classes() -> None:
    y = np.array([[0], [0], [0], [1], [1]])
    p = np.array([[0.1], [0.2], [0.3], [0.35], [0.9]])
    thr = tune_thresholds(y, p)
    assert 0.3 < thr[0] <= 0.35
    assert threshold_metrics(y, p, thr)["micro_f1"] == 1.0


def test_bootstrap_ci_brackets_the_estimate() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((200, 3)) < 0.3).astype(int)
    p = np.clip(y * 0.6 + rng.random(y.shape) * 0.5, 0, 1)
    thr = np.full(3, 0.5)
    point = all_metrics(y, p, thr)
    ci = bootstrap_ci(y, p, lambda a, b: all_metrics(a, b, thr), n_boot=100, seed=0)
    for k, v in point.items():
        assert ci[k][0] <= v <= ci[k][1], k
        assert ci[k][1] - ci[k][0] < 0.3


def test_probe_uses_sklearn_logistic_regression() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 5))
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0.5, np.zeros(120, bool)], axis=1).astype(int)
    probs = fit_probe(x, y, c=1.0, seed=0)(x)
    assert probs.shape == (120, 3) and np.all(probs[:, 2] == 0.0)
    assert roc_auc_score(y[:, 0], probs[:, 0]) > 0.95


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("eval")
    data = write_tiny_ptbxl(tmp / "ptbxl", num_records=40, rates=(100,))
    cfg = PretrainConfig(
        data_dir=str(data),
        out_dir=str(tmp / "run"),
        cache_dir=str(tmp / "cache"),
        arch="resnet10",
        widths=[8, 16, 16, 16],
        embed_dim=16,
        epochs=2,
        batch_size=8,
        crop_seconds=2.5,
        num_threads=1,
        progress=False,
        text=TextTowerConfig(cache_dir=str(tmp / "text_cache")),
    )
    return run_pretrain(cfg)


def test_run_evaluate_writes_reports(trained_run: Path) -> None:
    out = run_evaluate(EvaluateConfig(run_dir=str(trained_run), n_boot=20))
    df = pd.read_csv(out / "results.csv")
    pairs = set(zip(df["method"], df["encoder"], strict=True))
    assert pairs == {
        ("aux_head", "pretrained"),
        ("zero_shot", "pretrained"),
        ("linear_probe", "pretrained"),
        ("zero_shot", "random_init"),
        ("linear_probe", "random_init"),
    }
    assert set(df["metric"]) == {"macro_auroc", "micro_auroc", "micro_f1", "macro_f1", "sample_jaccard"}
    vals = df["value"].dropna()
    assert ((vals >= 0) & (vals <= 1)).all()
    per_label = pd.read_csv(out / "per_label_auroc.csv")
    assert list(per_label["label"]) == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert (out / "per_label_auroc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| aux_head | pretrained |" in (out / "results.md").read_text()
    assert "random_init" in (out / "per_label_auroc.md").read_text()
    assert json.loads((out / "results.json").read_text())[0]["method"] == "aux_head"


def test_run_evaluate_missing_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="pretrain"):
        run_evaluate(EvaluateConfig(run_dir=str(tmp_path / "nope")))


def test_ablation_writes_one_comparison_table(trained_run: Path, tmp_path: Path) -> None:
    base = PretrainConfig(
        data_dir=str(trained_run.parent / "ptbxl"),
        cache_dir=str(trained_run.parent / "cache"),
        arch="resnet10",
        widths=[8, 8, 8, 8],
        epochs=1,
        batch_size=8,
        crop_seconds=2.5,
        num_threads=1,
        progress=False,
        text=TextTowerConfig(cache_dir=str(trained_run.parent / "text_cache")),
    )
    cfg = AblationConfig(
        base=base,
        out_dir=str(tmp_path / "abl"),
        losses=["siglip", "jaccard_siglip"],
        embed_dims=[8],
        random_crops=[True],
        text_styles=["codes"],
        seeds=[0],
        n_boot=0,
        methods=["aux_head"],
    )
    out = run_ablation(cfg)
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["loss"]) == {"siglip", "jaccard_siglip"} and set(summary["method"]) == {"aux_head"}
    assert "| jaccard_siglip | 8 | on | codes | aux_head |" in (out / "summary.md").read_text()
    assert "jaccard_siglip" in (out / "paired.md").read_text()
    assert (out / "ablation.png").is_file()
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == ["jaccard_siglip-d8-crop-codes-s0", "siglip-d8-crop-codes-s0"]
    mtime = (out / "runs" / runs[0] / "eval" / "results.json").stat().st_mtime
    run_ablation(cfg)  # finished cells are reused, not retrained
    assert (out / "runs" / runs[0] / "eval" / "results.json").stat().st_mtime == mtime
