"""Stage-1 augmentation: each transform does what it says, batches stay normalised and replayable, training uses it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import welch

from encoder.augment import (
    AugmentConfig,
    amplitude,
    augment_crops,
    augment_record,
    bandpass_jitter,
    baseline_wander,
    electrode_artefact,
    emg_noise,
    lead_dropout,
)
from encoder.errors import ConfigError

FS = 100.0


def _ecg(seed: int = 0, t: int = 750) -> np.ndarray:
    """(12, T) smooth beat-like signal plus a little noise, z-scored per lead."""
    rng = np.random.default_rng(seed)
    tt = np.arange(t) / FS
    x = np.stack([np.sin(2 * np.pi * 1.2 * tt + k) ** 15 for k in range(12)]) + 0.01 * rng.standard_normal(
        (12, t)
    )
    return (x - x.mean(-1, keepdims=True)) / x.std(-1, keepdims=True)


def _power(x: np.ndarray, lo: float, hi: float) -> float:
    f, p = welch(x, fs=FS, nperseg=min(512, x.shape[-1]), axis=-1)
    return float(p[:, (f >= lo) & (f < hi)].sum())


def test_transforms_do_what_they_say() -> None:
    cfg, rng, x = AugmentConfig(), np.random.default_rng(0), _ecg()
    ratio = amplitude(x, FS, cfg, rng).std(-1) / x.std(-1)
    assert np.all(ratio >= 1 / 1.5 - 1e-9) and np.all(ratio <= 1.5 + 1e-9) and ratio.std() > 0.01
    wander = baseline_wander(x, FS, AugmentConfig(baseline_max=1.0), rng) - x
    assert _power(wander, 0.0, 0.6) > 10 * _power(wander, 2.0, 50.0)
    emg = emg_noise(x, FS, AugmentConfig(emg_max=0.5), rng) - x
    changed = np.abs(emg).max(-1) > 0
    assert 1 <= changed.sum() <= 4 and _power(emg, 15.0, 50.0) > 5 * _power(emg, 0.0, 8.0)
    art = electrode_artefact(x, FS, AugmentConfig(electrode_max=2.0), rng) - x
    assert 1 <= (np.abs(art).max(-1) > 1e-9).sum() <= 3
    t = np.arange(3000) / FS
    drift, qrs_band = np.sin(2 * np.pi * 0.05 * t)[None].repeat(12, 0), np.sin(2 * np.pi * 10.0 * t)[None]
    assert bandpass_jitter(drift, FS, cfg, rng)[:, 500:-500].std() < 0.2 * drift.std()  # cut below 0.3 Hz
    assert bandpass_jitter(qrs_band, FS, cfg, rng)[:, 500:-500].std() == pytest.approx(
        qrs_band.std(), rel=0.1
    )
    one_left = lead_dropout(x, FS, AugmentConfig(p_dropout=1.0), rng)
    assert (np.abs(one_left).max(-1) > 0).sum() == 1  # never all leads


def test_augmented_records_are_renormalised_and_absent_leads_stay_absent() -> None:
    x = _ecg()
    x[4] = 0.0  # an absent lead
    all_on = AugmentConfig(enabled=True, p_amplitude=1, p_baseline=1, p_gaussian=1, p_emg=1, p_electrode=1)
    y = augment_record(x, FS, all_on, np.random.default_rng(1))
    assert y.dtype == np.float32 and y.shape == x.shape and not np.allclose(y, x)
    assert np.all(y[4] == 0.0)
    live = np.abs(y).max(-1) > 0
    assert np.allclose(y[live].mean(-1), 0.0, atol=1e-4) and np.allclose(y[live].std(-1), 1.0, atol=1e-3)
    centred = augment_record(x * 3.0, FS, AugmentConfig(p_bandpass=0.0), np.random.default_rng(1), "center")
    assert np.allclose(centred.mean(-1), 0.0, atol=1e-4) and centred[live].std(-1).max() > 1.5  # scale kept


def test_augmented_crops_replay_from_their_rng() -> None:
    x = np.stack([_ecg(s) for s in range(4)]).astype(np.float32)  # (4, 12, T)
    on = AugmentConfig(enabled=True)
    a, b, c = (augment_crops(x, np.random.default_rng(s), cfg=on, fs=FS) for s in (1, 1, 2))
    assert a.shape == x.shape and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a, x)


def test_the_cache_dataset_augments_training_batches_the_same_with_and_without_workers(
    tmp_path: Path,
) -> None:
    from functools import partial

    from encoder.datasets.cache import CachedEcgDataset, batch_loader, build_cache
    from encoder.datasets.ptbxl import PtbXl
    from encoder.datasets.testing import write_tiny_ptbxl

    data = write_tiny_ptbxl(tmp_path / "ptbxl", num_records=16, rates=(100,))
    cache = build_cache(PtbXl(data, sampling_rate=100), tmp_path / "cache", progress=False)
    aug = partial(augment_crops, cfg=AugmentConfig(enabled=True), fs=FS)
    plain = CachedEcgDataset(cache, crop_samples=250, random_crop=True, seed=3)
    augmented = CachedEcgDataset(cache, crop_samples=250, random_crop=True, seed=3, transform=aug)
    ks = [0, 5, 9]
    assert np.array_equal(augmented.batch(ks)["ecg"], augmented.batch(ks)["ecg"])  # replays
    assert not np.array_equal(augmented.batch(ks)["ecg"], plain.batch(ks)["ecg"])
    augmented.set_epoch(1)
    epoch1 = augmented.batch(ks)["ecg"]
    in_workers = [b["ecg"] for b in batch_loader(augmented, 4, shuffle=False, num_workers=2)]
    in_main = [b["ecg"] for b in batch_loader(augmented, 4, shuffle=False, num_workers=0)]
    assert all(np.array_equal(w, m) for w, m in zip(in_workers, in_main, strict=True))
    augmented.set_epoch(0)
    assert not np.array_equal(epoch1, augmented.batch(ks)["ecg"])  # new draws each epoch


def test_config_bounds_are_checked() -> None:
    with pytest.raises(ConfigError, match="p_emg"):
        AugmentConfig(p_emg=1.5)


def test_cut_off_ranges_must_have_two_ends() -> None:
    """Regression (found by mypy): ``low_hz: [0.5]`` used to draw from uniform(0.5, 1.0) and three values drew
    arrays; a range is [min, max]."""
    for bad in ([0.5], [0.3, 0.5, 2.0]):
        with pytest.raises(ConfigError, match="low_hz"):
            AugmentConfig(low_hz=bad)
    with pytest.raises(ConfigError, match="high_hz"):
        AugmentConfig(high_hz=[30.0])
    assert AugmentConfig(low_hz=[0.4, 0.6]).low_hz == [0.4, 0.6]


def _losses(run: Path) -> dict[int, float]:
    with open(run / "metrics.csv") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f) if r["split"] == "train"}


def test_pretraining_uses_the_switch(tmp_path: Path) -> None:
    from encoder.datasets.testing import write_tiny_ptbxl
    from encoder.text import TextTowerConfig
    from encoder.train import PretrainConfig, run_pretrain

    data = write_tiny_ptbxl(tmp_path / "ptbxl", num_records=40, rates=(100,))

    def run(name: str, enabled: bool) -> dict[int, float]:
        cfg = PretrainConfig(
            data_dir=str(data), out_dir=str(tmp_path / name), cache_dir=str(tmp_path / "cache"),
            arch="resnet10", widths=[8, 16, 16, 16], embed_dim=16, epochs=1, batch_size=8, crop_seconds=2.5,
            warmup_steps=2, log_every=1, num_threads=1, progress=False,
            text=TextTowerConfig(cache_dir=str(tmp_path / "text_cache")), augment=AugmentConfig(enabled=enabled),
        )  # fmt: skip
        return _losses(run_pretrain(cfg))

    plain, aug, aug_again = run("plain", False), run("aug", True), run("aug_again", True)
    assert len(plain) >= 3 and all(np.isfinite(list(aug.values())))
    assert aug == aug_again  # the augmentation replays from (seed, epoch, the batch's rows)
    assert aug[1] != plain[1]  # the first batch already differs
