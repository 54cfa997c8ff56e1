"""The paper-ablation benchmark: one-factor cells, per-split scores (valid / test / real) and the claims table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from encoder.ablation import AblationConfig, cells
from encoder.datasets.testing import write_tiny_ptbxl
from encoder.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _benchmark():
    spec = importlib.util.spec_from_file_location("ablations_benchmark", ROOT / "benchmarks" / "ablations.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_factor_design_changes_one_factor_per_cell() -> None:
    cfg = AblationConfig(
        design="one_factor",
        losses=["jaccard_siglip", "siglip", "clip"],
        embed_dims=[256, 128],
        random_crops=[True, False],
        text_styles=["knowledge", "codes"],
    )
    got = cells(cfg)
    ref = ("jaccard_siglip", 256, True, "knowledge")
    assert got[0] == ref and len(got) == 6
    assert all(sum(a != b for a, b in zip(c, ref, strict=True)) == 1 for c in got[1:])
    assert len(cells(AblationConfig(design="grid", **{k: getattr(cfg, k) for k in ("losses", "embed_dims",
               "random_crops", "text_styles")}))) == 24  # fmt: skip


def _write_config(tmp: Path, data: Path) -> Path:
    path = tmp / "ablation_tiny.yaml"
    path.write_text(
        f"""
out_dir: {tmp / "abl"}
design: one_factor
losses: [jaccard_siglip, siglip]
embed_dims: [8]
random_crops: [false]
text_styles: [codes]
seeds: [0, 1]
n_boot: 0
methods: [zero_shot, aux_head, linear_probe]
base:
  data_dir: {data}
  cache_dir: {tmp / "cache"}
  arch: resnet10
  widths: [8, 8, 8, 8]
  epochs: 1
  batch_size: 8
  crop_seconds: 2.5
  num_threads: 1
  progress: false
  text:
    cache_dir: {tmp / "text_cache"}
"""
    )
    return path


def _write_real(tmp: Path, data: Path) -> tuple[Path, Path]:
    """Twelve "real" records: z-scored noise at 500 Hz, labelled by the tiny table's rows with the same ecg_id."""
    table = pd.read_csv(data / "ptbxl_database.csv")
    ids = table["ecg_id"].to_numpy()[:12]
    x = np.random.default_rng(0).standard_normal((len(ids), 5000, 12)).astype(np.float16)  # (N, T, 12)
    np.savez(tmp / "real.npz", signal=x, fs=500, ecg_id=ids)
    return tmp / "real.npz", data / "ptbxl_database.csv"


@pytest.fixture(scope="module")
def ablation_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("abl")
    data = write_tiny_ptbxl(tmp / "ptbxl", num_records=40, rates=(100,))
    real, table = _write_real(tmp, data)
    argv = ["--config", str(_write_config(tmp, data)), "--real-dir", str(real), "--ptbxl-table", str(table)]
    return _benchmark().main(argv)


def test_every_variant_is_scored_on_valid_test_and_real(ablation_out: Path) -> None:
    report = json.loads((ablation_out / "ablations.json").read_text())
    runs = pd.DataFrame(report["runs"])
    assert set(runs["split"]) == {"valid", "test", "real", "real_odd"}
    assert set(runs["method"]) == {"zero_shot", "aux_head", "linear_probe"}
    assert sorted(set(runs["run"])) == [f"{loss}-d8-nocrop-codes-s{s}" for loss in ("jaccard_siglip", "siglip")
                                        for s in (0, 1)]  # fmt: skip
    claims = pd.DataFrame(report["claims"])
    assert set(claims["claim"]) == {"jaccard_siglip beats siglip"}
    assert set(zip(claims["split"], claims["method"], strict=True)) == {
        (s, m)
        for s in ("valid", "test", "real", "real_odd")
        for m in ("zero_shot", "aux_head", "linear_probe")
    }
    assert set(claims["metric"]) == {"micro_f1", "sample_jaccard", "macro_auroc"}
    assert set(claims["verdict"]) <= {f"{v} (2 seeds)" for v in ("holds", "reversed", "unresolved")}
    assert set(claims["seeds"]) == {2}
    md = (ablation_out / "ablations.md").read_text()
    assert "| jaccard_siglip beats siglip | real | linear_probe |" in md
    assert "| siglip | 8 | off | codes | aux_head | test |" in md


def test_a_variants_numbers_come_from_its_own_run(ablation_out: Path) -> None:
    runs = pd.read_csv(ablation_out / "runs.csv")

    def own(run: str, split: str, method: str, metric: str) -> float:
        eval_dir = ablation_out / "runs" / run / "eval"
        if split == "test":
            results = json.loads((eval_dir / "results.json").read_text())
        else:
            results = json.loads((eval_dir / "splits.json").read_text())["results"][split]
        return next(r for r in results if r["method"] == method)["values"][metric]

    for row in runs[runs["metric"] == "macro_auroc"].itertuples():
        assert row.value == pytest.approx(own(row.run, row.split, row.method, row.metric), nan_ok=True)
    claims = pd.DataFrame(json.loads((ablation_out / "claims.json").read_text()))
    c = claims[
        (claims["split"] == "test") & (claims["method"] == "aux_head") & (claims["metric"] == "micro_f1")
    ]
    diffs = [own(f"jaccard_siglip-d8-nocrop-codes-s{s}", "test", "aux_head", "micro_f1")
             - own(f"siglip-d8-nocrop-codes-s{s}", "test", "aux_head", "micro_f1") for s in (0, 1)]  # fmt: skip
    assert float(c["mean_diff"].iloc[0]) == pytest.approx(np.mean(diffs))


def test_real_paths_come_together() -> None:
    bench = _benchmark()
    with pytest.raises(ConfigError, match="together"):
        bench.build_config(bench._args(["--real-dir", "x"]))
