"""Realism benchmark on tiny inputs: real vs itself ~0.5, real vs white noise ~1.0, end-to-end outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from encoder.errors import ConfigError, DatasetError
from encoder.realism import (
    RealismConfig,
    c2st_auroc,
    cnn_c2st_auroc,
    frechet_distance,
    frechet_vs_floor,
    load_real,
    run_realism,
    select_real_half,
    signal_labels,
    sim_to_real,
)
from encoder.realism_features import FS, NUM_SAMPLES, feature_matrix, feature_names, preprocess

SAMPLE = (
    Path(__file__).parent / "data" / "ptbxl_real_sample.npz"
)  # 16 real PTB-XL records, see the .txt beside it


@pytest.fixture(scope="module")
def real() -> np.ndarray:
    return load_real(SAMPLE)


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([preprocess(rng.standard_normal((12, NUM_SAMPLES)), FS) for _ in range(16)])


@pytest.fixture(scope="module")
def feats(real: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return feature_matrix(real, progress=False), feature_matrix(noise, progress=False)


def test_load_real_npz_is_preprocessed_like_the_shared_set(real: np.ndarray) -> None:
    assert real.shape == (16, 12, NUM_SAMPLES) and real.dtype == np.float32
    assert np.allclose(real.std(axis=-1), 1.0, atol=0.02)
    with pytest.raises(DatasetError):
        load_real(SAMPLE.with_name("missing.npz"))
    with pytest.raises(ConfigError):
        load_real("")


def test_features_have_names_and_sane_values(feats: tuple[np.ndarray, np.ndarray]) -> None:
    f_real, _ = feats
    names = feature_names()
    assert f_real.shape == (16, len(names))
    hr = 60000.0 / f_real[:, names.index("rr_mean_ms")]
    assert np.nanmin(hr) > 35 and np.nanmax(hr) < 160
    qrs = f_real[:, names.index("qrs_dur_ms")]
    assert 60 < np.nanmedian(qrs) < 140


def test_c2st_real_vs_itself_is_near_chance(feats: tuple[np.ndarray, np.ndarray]) -> None:
    f_real, _ = feats
    idx = np.arange(len(f_real))
    # The same records on both sides (each record's two copies in one fold): nothing to learn.
    assert c2st_auroc(f_real, f_real.copy(), folds=4, seed=0, groups=np.r_[idx, idx]) == pytest.approx(
        0.5, abs=0.05
    )
    # Two disjoint halves of the real set: chance level up to the noise of 8 vs 8 records.
    assert 0.15 <= c2st_auroc(f_real[::2], f_real[1::2], folds=4, seed=0) <= 0.85


def test_c2st_real_vs_white_noise_is_near_one(feats: tuple[np.ndarray, np.ndarray]) -> None:
    f_real, f_noise = feats
    assert c2st_auroc(f_real, f_noise, folds=4, seed=0) > 0.95


def test_cnn_critic_separates_real_from_noise(real: np.ndarray, noise: np.ndarray) -> None:
    assert cnn_c2st_auroc(real, noise, folds=3, epochs=4, seed=0) > 0.9


def test_frechet_distance_zero_for_identical_and_floor_ratio() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 5))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = a + 3.0
    res = frechet_vs_floor(rng.normal(size=(200, 5)), shifted, seed=0, repeats=2, dims=5)
    assert res["ratio"] > 10 and res["real_vs_real"] < res["synthetic_vs_real"]


def test_sim_to_real_auroc_from_probabilities(feats: tuple[np.ndarray, np.ndarray]) -> None:
    f_real, _ = feats
    names = feature_names()
    labels = signal_labels(f_real, names)
    hr = 60000.0 / f_real[:, names.index("rr_mean_ms")]
    prob = np.stack([-hr, hr, np.zeros_like(hr)], axis=1)  # a perfect "SBRAD" and "STACH" detector
    res = sim_to_real(prob, ["SBRAD", "STACH", "AFIB"], labels)
    for key in ("SBRAD", "STACH"):
        if res[key]["auroc"] is not None:
            assert res[key]["auroc"] == pytest.approx(1.0)
    assert res["BBB"]["auroc"] is None  # the head has no bundle-branch label


@pytest.mark.slow
def test_run_realism_end_to_end(tmp_path: Path) -> None:
    from encoder.configuration import EcgEncoderConfig
    from encoder.modeling import EcgEncoder

    enc_dir = tmp_path / "encoder"
    cfg_enc = EcgEncoderConfig(
        widths=(8, 8, 8, 8), embed_dim=16, label_names=["SBRAD", "STACH", "AFIB", "CLBBB"]
    )
    EcgEncoder(cfg_enc).save_pretrained(enc_dir)
    cfg = RealismConfig(
        real=str(SAMPLE),
        out_dir=str(tmp_path / "out"),
        num_synthetic=16,
        folds=3,
        cnn=False,
        encoder=str(enc_dir),
    )
    res = run_realism(cfg)
    out = tmp_path / "out"
    for name in ("realism.json", "realism.md", "separating_features.png", "records_side_by_side.png",
                 "synthetic_vs_s0010_re.png", "config.yaml"):  # fmt: skip
        assert (out / name).is_file(), name
    saved = json.loads((out / "realism.json").read_text())
    assert 0.0 <= saved["feature_c2st"]["synthetic_vs_real"] <= 1.0
    assert saved["feature_frechet"]["real_vs_real"] > 0
    assert "embedding_frechet" in res["encoder"] and "sim_to_real" in res["encoder"]
    assert "feature C2ST" in (out / "realism.md").read_text()


def test_real_half_picks_even_or_odd_positions_and_is_checked_first(real: np.ndarray, tmp_path: Path) -> None:
    assert np.array_equal(select_real_half(real, "odd"), real[[1, 3, 5, 7, 9, 11, 13, 15]])
    assert np.array_equal(select_real_half(real, "even"), real[[0, 2, 4, 6, 8, 10, 12, 14]])
    assert select_real_half(real, "all") is real
    with pytest.raises(ConfigError, match="real_half"):
        select_real_half(real, "first")
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="real_half"):
        run_realism(RealismConfig(real=str(SAMPLE), out_dir=str(out), real_half="Odd"))
    assert not out.exists()  # checked before anything is written
