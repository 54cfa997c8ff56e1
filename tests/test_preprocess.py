"""Resampling, band-pass, normalisation and the shared model_input()."""

from __future__ import annotations

import numpy as np
import pytest

from encoder import errors
from encoder.preprocess import (
    CENTER_UNIT_MV,
    bandpass,
    center_per_lead,
    crop_or_pad,
    model_input,
    normalize_per_lead,
    remove_baseline,
    resample,
    resample_ratio,
)
from encoder.record import Ecg


def _sine(freq: float, fs: float, seconds: float, leads: int = 2) -> np.ndarray:
    t = np.arange(int(fs * seconds)) / fs
    return np.tile(np.sin(2 * np.pi * freq * t), (leads, 1)).astype(np.float32)  # (C, T)


@pytest.mark.parametrize("fs,target,up,down", [(1000, 100, 1, 10), (360, 100, 5, 18), (500, 500, 1, 1)])
def test_resample_ratio(fs, target, up, down):
    assert resample_ratio(fs, target) == (up, down)


@pytest.mark.parametrize("fs,target", [(1000, 100), (360, 100), (100, 500), (257, 100)])
def test_resample_keeps_a_sine(fs, target):
    x = _sine(5.0, fs, 4.0)
    y = resample(x, fs, target)
    assert y.dtype == np.float32 and y.shape[0] == 2
    assert abs(y.shape[1] - 4.0 * target) <= 1
    ref = _sine(5.0, target, 4.0)[:, : y.shape[1]]
    inner = slice(int(0.5 * target), -int(0.5 * target))  # ignore filter edges
    np.testing.assert_allclose(y[:, inner], ref[:, inner], atol=0.02)


def test_resample_rejects_bad_rates():
    with pytest.raises(errors.EcgSamplingRateError):
        resample(np.zeros((1, 10)), 0, 100)
    with pytest.raises(errors.EcgSamplingRateError):
        resample(np.zeros((1, 10)), 100, float("nan"))


def test_bandpass_removes_baseline_and_powerline():
    fs = 500
    ecg_band = _sine(10.0, fs, 10.0, 1)
    wander = 2.0 * _sine(0.05, fs, 10.0, 1)
    mains = 0.5 * _sine(50.0, fs, 10.0, 1)
    y = bandpass(ecg_band + wander + mains, fs)
    inner = slice(fs, -fs)
    np.testing.assert_allclose(y[:, inner], ecg_band[:, inner], atol=0.15)
    z = remove_baseline(ecg_band + wander, fs)
    assert np.abs(z[:, inner] - ecg_band[:, inner]).max() < 0.1


def test_bandpass_short_signal_and_high_cutoff():
    y = bandpass(np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32), fs=100, high=60)
    assert y.shape == (3, 8) and np.isfinite(y).all()
    with pytest.raises(errors.ConfigError):
        bandpass(np.zeros((1, 100)), 100, low=30, high=20)


def test_normalize_per_lead():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((12, 1000)) * 3 + 5).astype(np.float32)
    x[4] = 7.0  # flat
    mask = np.ones(12, dtype=bool)
    mask[2] = False
    y = normalize_per_lead(x, mask)
    assert y.dtype == np.float32
    good = [i for i in range(12) if i not in (2, 4)]
    np.testing.assert_allclose(y[good].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(y[good].std(axis=1), 1, atol=1e-3)
    assert np.all(y[2] == 0) and np.all(y[4] == 0)
    batched = normalize_per_lead(np.stack([x, x]), np.stack([mask, mask]))  # (B, 12, T)
    np.testing.assert_array_equal(batched[0], y)


def test_center_per_lead_keeps_amplitude():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((12, 1000)) * 0.2 + 1.0).astype(np.float32)  # mV, DC offset 1 mV
    x[1] = x[0] * 3  # the same shape, 3x the voltage
    x[4] = 7.0  # flat
    mask = np.ones(12, dtype=bool)
    mask[2] = False
    y = center_per_lead(x, mask)
    good = [i for i in range(12) if i not in (2, 4)]
    np.testing.assert_allclose(y[good].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(y[0], (x[0] - x[0].mean()) / CENTER_UNIT_MV, atol=1e-5)
    np.testing.assert_allclose(y[1], 3 * y[0], rtol=1e-4, atol=1e-5)  # voltage kept (z-scores would be equal)
    z = normalize_per_lead(x, mask)
    np.testing.assert_allclose(z[1], z[0], atol=1e-4)
    assert np.all(y[2] == 0) and np.all(y[4] == 0)


def test_model_input_normalizations():
    ecg = _ecg(10.0)
    mask = ecg.lead_mask.copy()
    mask[8] = False  # flagged flat
    cached = resample(ecg.signal, ecg.fs, 100)[:, :1000]
    got = model_input(ecg, 100, 1000, crop="start", normalization="center")
    np.testing.assert_allclose(got, center_per_lead(cached, mask), atol=1e-5)
    with pytest.raises(errors.ConfigError, match="input_normalization"):
        model_input(ecg, 100, 1000, normalization="minmax")


def test_crop_or_pad():
    x = np.arange(10, dtype=np.float32)[None]
    np.testing.assert_array_equal(crop_or_pad(x, 4, "center"), [[3, 4, 5, 6]])
    np.testing.assert_array_equal(crop_or_pad(x, 4, "start"), [[0, 1, 2, 3]])
    assert crop_or_pad(x, 12).tolist() == [list(range(10)) + [0, 0]]
    with pytest.raises(errors.ConfigError):
        crop_or_pad(x, 4, "middle")


def _ecg(seconds: float, fs: float = 500) -> Ecg:
    rng = np.random.default_rng(1)
    sig = rng.standard_normal((12, int(seconds * fs))).astype(np.float32) + 3
    mask = np.ones(12, dtype=bool)
    mask[7] = False
    sig[7] = 0
    sig[8] = 0.5  # flat, flagged by read_ecg
    return Ecg(signal=sig, fs=fs, lead_mask=mask, meta={"flat_leads": ["V3"]})


def test_model_input_long_record():
    x = model_input(_ecg(12.0), sampling_rate=100, num_samples=1000)
    assert x.shape == (12, 1000) and x.dtype == np.float32
    assert np.all(x[7] == 0) and np.all(x[8] == 0)
    np.testing.assert_allclose(x[0].std(), 1, atol=1e-3)


def test_model_input_short_record_is_padded_after_normalising():
    x = model_input(_ecg(4.0), sampling_rate=100, num_samples=1000)
    assert x.shape == (12, 1000)
    assert np.all(x[:, 400:] == 0)
    np.testing.assert_allclose(x[0, :400].mean(), 0, atol=1e-5)
    np.testing.assert_allclose(x[0, :400].std(), 1, atol=1e-3)


def test_model_input_matches_training_path():
    """Inference (model_input) == training (normalize_per_lead on a crop of the resampled record)."""
    ecg = _ecg(10.0)
    cached = resample(ecg.signal, ecg.fs, 100)  # what a 100 Hz cache would hold
    mask = ecg.lead_mask.copy()
    mask[8] = False
    train = normalize_per_lead(cached[:, :1000], mask)
    np.testing.assert_allclose(model_input(ecg, 100, 1000, crop="start"), train, atol=1e-6)
