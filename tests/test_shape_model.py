"""Data-driven beat shape model: fitting pieces, the shipped model, and how beats are placed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from encoder.errors import DatasetError
from encoder.preprocess import bandpass
from encoder.realism import load_real
from encoder.synth.beat_render import render_beats
from encoder.synth.record import FULL_SIZE, _label_templates, synthesize_record
from encoder.synth.shape_fit import fit_shape_model, limb_ratio, qrs_core_width, undo_bandpass
from encoder.synth.shape_model import default_path, load_shape_model, shaped_noise

SAMPLE = Path(__file__).parent / "data" / "ptbxl_real_sample.npz"  # 16 real PTB-XL records


def test_shipped_model_is_small_and_fitted_on_the_even_half_only() -> None:
    assert default_path().is_file() and default_path().stat().st_size < 400 * 1024
    m = load_shape_model()
    idx = m.arrays["fitted_indices"]
    assert len(idx) == m.arrays["coeffs"].shape[0]  # the records actually fitted, not the candidates
    assert len(np.unique(idx)) == len(idx) and np.all(idx % 2 == 0) and np.all((idx >= 0) & (idx < 183))
    assert m.size >= 20 and np.isfinite(m.arrays["mean"]).all()


def test_sampling_is_deterministic_and_in_mv() -> None:
    m = load_shape_model()
    a, b = m.sample(np.random.default_rng(7)), m.sample(np.random.default_rng(7))
    assert np.array_equal(a.template, b.template)
    peak_to_peak = np.ptp(a.template, axis=1)  # (8,) mV
    assert np.all(peak_to_peak > 0.05) and np.all(peak_to_peak < 8.0)
    noise = shaped_noise(a, np.random.default_rng(0), 500.0, 5000)
    assert noise.shape == (8, 5000) and 0.0 < noise.std() < 0.5


def test_undo_bandpass_restores_the_high_frequencies() -> None:
    t = np.arange(5000) / 500.0
    x = np.stack([np.sin(2 * np.pi * 3.0 * t) + 0.5 * np.sin(2 * np.pi * 36.0 * t + 1.0)])
    filtered = bandpass(x, 500.0, 0.5, 40.0, order=4).astype(np.float64)
    restored = undo_bandpass(filtered)
    inner = slice(1500, 3500)
    assert np.abs(restored[0, inner] - x[0, inner]).max() < 0.05
    assert np.abs(filtered[0, inner] - x[0, inner]).max() > 0.05  # the filter did change it


def test_limb_ratio_recovers_the_mv_ratio_of_z_scored_leads() -> None:
    rec = synthesize_record(frozenset({"NORM", "SR"}), np.random.default_rng(3))
    x = bandpass(rec.signal, 500.0, 0.5, 40.0, order=4).astype(np.float64)
    true = x[1].std() / x[0].std()
    z = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    assert limb_ratio(z) == pytest.approx(true, rel=0.05)


def test_qrs_core_width_tells_wide_from_narrow() -> None:
    t = (np.arange(550) - 175) / 500.0
    narrow = np.exp(-0.5 * (t / 0.008) ** 2)[None, :].repeat(3, 0)
    wide = (
        narrow + np.exp(-0.5 * ((t - 0.06) / 0.015) ** 2)[None, :] + np.exp(-0.5 * ((t + 0.04) / 0.015) ** 2)
    )
    assert qrs_core_width(narrow, 175) < 0.06 < 0.1 < qrs_core_width(wide, 175)


def test_longer_pr_moves_the_p_wave_earlier() -> None:
    shape = load_shape_model().sample(np.random.default_rng(1))
    r_at = 1.0

    def p_peak(pr: float) -> float:
        x = render_beats(
            shape, np.array([r_at]), pr, np.array([shape.qt]), np.array([True]), np.ones(1), 500.0, 1000
        )
        lead = np.abs(x[1])
        window = np.arange(int((r_at - 0.6) * 500), int((r_at - shape.r_off - 0.03) * 500))
        return float(window[np.argmax(lead[window])] / 500.0)

    assert p_peak(shape.pr + 0.1) == pytest.approx(p_peak(shape.pr) - 0.1, abs=0.006)


def _p_region_energy(codes: set[str], seed: int, n: int = 8) -> float:
    """Median over ``n`` noise-free records of the RMS (mV, leads II and V1) of the beat-averaged window 200-40 ms
    before the QRS onset: the P wave in sinus rhythm; the AF f-waves are not time-locked and average out."""
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        r = synthesize_record(frozenset(codes), rng, noise_scale=0.0)
        on = r.beat_onsets[(r.beat_onsets > 0.5) & (r.beat_onsets < 9.5)]
        offsets = np.arange(int(-0.2 * r.fs), int(-0.04 * r.fs))
        w = r.signal[:, (on[:, None] * r.fs).astype(int) + offsets[None, :]].mean(axis=1)  # (12, S)
        w = w - w.mean(axis=1, keepdims=True)
        vals.append(float(np.sqrt(np.mean(w[[1, 6]] ** 2))))
    return float(np.median(vals))


def test_afib_records_have_no_p_wave() -> None:
    assert _p_region_energy({"AFIB"}, 3) < 0.5 * _p_region_energy({"NORM", "SR"}, 3)


@pytest.mark.slow
def test_fit_on_real_sample_records() -> None:
    real = load_real(SAMPLE)  # (16, 12, 5000) z-scored
    arrays = fit_shape_model(real, np.full(8, 0.15), components=5)
    n = arrays["coeffs"].shape[0]
    assert 4 <= n <= 16 and arrays["components"].shape == (
        min(5, n - 1),
        8 * int(arrays["template_shape"][1]),
    )
    assert np.all((arrays["pr"] >= 0.1) & (arrays["pr"] <= 0.24))
    assert np.all(np.isfinite(arrays["noise_psd"].astype(np.float64)))
    recon = arrays["mean"] + arrays["coeffs"] @ arrays["components"].astype(np.float32)
    assert np.abs(recon).max() > 1.0  # z-units: real beats, not zeros


def test_ground_truth_qrs_is_the_data_beats_qrs() -> None:
    # The signal carries the data beat's QRS, so the numeric ground truth must be that QRS (clipped), not the
    # parametric model's; a label that widens the QRS (CRBBB) widens it on top.
    fitted = np.clip(load_shape_model().arrays["qrs"].astype(np.float64), 0.07, 0.11) * 1000.0
    rng = np.random.default_rng(11)
    for _ in range(6):
        qrs = synthesize_record(frozenset({"NORM", "SR"}), rng).features["qrs duration"]
        assert np.abs(fitted - qrs).min() < 0.1
    crbbb = [synthesize_record(frozenset({"CRBBB", "SR"}), rng).features["qrs duration"] for _ in range(4)]
    assert min(crbbb) >= 120.0


def test_full_size_codes_are_scaled_apart_from_the_form_codes() -> None:
    # LVH + IMI: LVH's voltage goes on at full size, IMI's Q waves at FORM_SCALE (per code, not all-or-nothing).
    shape = load_shape_model().sample(np.random.default_rng(4))
    _, _, tmpl, pair = _label_templates(frozenset({"LVH", "IMI"}), np.random.default_rng(4), 60.0, shape)
    assert pair is not None
    normal_full, label_full = pair
    assert not np.allclose(label_full["R"].vector, normal_full["R"].vector)  # LVH in the full-size pair
    imi_changed = [
        k for k in tmpl if k not in label_full or not np.allclose(tmpl[k].vector, label_full[k].vector)
    ]
    assert "IMI" not in FULL_SIZE and imi_changed  # IMI only in the label beat
    assert _label_templates(frozenset({"IMI"}), np.random.default_rng(4), 60.0, shape)[3] is None


def test_bad_shape_model_file_raises_dataset_error(tmp_path: Path) -> None:
    arrays = dict(load_shape_model().arrays)
    del arrays["coeffs"]
    np.savez(tmp_path / "no_coeffs.npz", **arrays)
    with pytest.raises(DatasetError, match="coeffs"):
        load_shape_model(str(tmp_path / "no_coeffs.npz"))
    with pytest.raises(DatasetError, match="cannot read"):
        load_shape_model(str(tmp_path / "missing.npz"))
