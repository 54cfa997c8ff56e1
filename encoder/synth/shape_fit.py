"""Fit the data-driven beat shape model (``shape_model``) from real, pre-processed 12-lead records.

For each usable record (regular rhythm, RR 0.55-1.4 s, narrow QRS):

1. undo the low-pass side of the real set's band-pass (0.5-40 Hz, order 4, zero phase) in the frequency domain, so
   that the benchmark's band-pass, applied to the generated record, does not low-pass the beats twice;
2. measure the limb-lead scale ratio sigma_II / sigma_I that makes Einthoven's and Goldberger's relations hold
   (the set is z-scored per lead, so the leads' mV ratios are lost; the limb relations give them back);
3. take the median beat of the eight independent leads (I, II, V1-V6) around the R peaks, tapered to zero before
   the P wave and after the T wave;
4. take the residual (record minus the median beats) outside the QRS complexes as the record's noise: per-lead
   spectrum and 8 x 8 correlation.

The templates are reduced with a PCA; ``ShapeModel`` samples new patients around the fitted ones.
"""

from __future__ import annotations

import numpy as np
import scipy.signal as sps

from encoder.realism_features import FS, measure_intervals, r_peaks

INDEPENDENT = (0, 1, 6, 7, 8, 9, 10, 11)
"""Canonical indices of the independent leads in the model's order: I, II, V1..V6."""
PRE_S, POST_S = 0.35, 0.75
"""Template window around the R peak, seconds."""
NOISE_FREQS = np.arange(0.0, 101.0, 1.0)
"""Frequencies (Hz) at which the residual noise spectrum is stored."""


def undo_bandpass(x: np.ndarray, high: float = 40.0, order: int = 4, above: float = 2.0) -> np.ndarray:
    """Undo the low-pass side of a zero-phase Butterworth 0.5-``high`` Hz band-pass (C, T): divide the spectrum by
    |H|^2 between ``above`` and 45 Hz. Lower frequencies are left alone: there the inverse would mostly boost the
    filter's edge transients."""
    sos = sps.butter(order, [0.5, high], btype="bandpass", fs=FS, output="sos")
    n = x.shape[-1]
    freqs = np.fft.rfftfreq(n, 1.0 / FS)
    _, h = sps.sosfreqz(sos, worN=freqs, fs=FS)
    gain = 1.0 / np.maximum(np.abs(h) ** 2, 0.2)
    gain[(freqs < above) | (freqs > 45.0)] = 1.0
    return np.fft.irfft(np.fft.rfft(x, axis=-1) * gain, n=n, axis=-1)


def limb_ratio(x: np.ndarray) -> float:
    """sigma_II / sigma_I (raw mV std ratio) that best satisfies III = II - I and the Goldberger relations.

    ``x`` is a z-scored record (12, T). For each candidate ratio r the derived leads' own scales are fitted by least
    squares; the ratio with the smallest relative residual wins."""
    lead_i, lead_ii = x[0], x[1]
    best, best_err = 1.0, np.inf
    for r in np.exp(np.linspace(np.log(0.25), np.log(4.0), 121)):
        targets = (
            r * lead_ii - lead_i,
            -(lead_i + r * lead_ii) / 2,
            lead_i - r * lead_ii / 2,
            r * lead_ii - lead_i / 2,
        )
        err = 0.0
        for k, t in zip((2, 3, 4, 5), targets, strict=True):
            s = float(t @ x[k]) / float(x[k] @ x[k])
            err += float(np.sum((s * x[k] - t) ** 2) / (np.sum(t**2) + 1e-12))
        if err < best_err:
            best, best_err = float(r), err
    return best


def _taper(n: int, start: int, stop: int) -> np.ndarray:
    """Window (n,) that is 1 inside [start, stop) with 40 ms cosine ramps outside, 0 beyond."""
    ramp = int(0.04 * FS)
    w = np.zeros(n)
    idx = np.arange(n)
    w[(idx >= start) & (idx < stop)] = 1.0
    up = (idx >= start - ramp) & (idx < start)
    w[up] = 0.5 - 0.5 * np.cos(np.pi * (idx[up] - start + ramp) / ramp)
    down = (idx >= stop) & (idx < stop + ramp)
    w[down] = 0.5 + 0.5 * np.cos(np.pi * (idx[down] - stop) / ramp)
    return w


def qrs_core_width(tmpl: np.ndarray, pre: int, threshold: float = 0.15) -> float:
    """Width (s) of the QRS core of a median beat (C, L) with the R peak at ``pre``: the span around the R peak
    where the spatial velocity (sum over leads of |slope|) stays above ``threshold`` of its peak (gaps < 10 ms
    bridged). About 60 ms for a narrow QRS, > 120 ms for a bundle branch block."""
    half = int(0.12 * FS)
    v = np.abs(np.diff(tmpl[:, pre - half : pre + half + 1], axis=1)).sum(axis=0)
    above = np.convolve(v > threshold * v.max(), np.ones(5), mode="same") > 0  # bridge short gaps
    lo = hi = half
    while lo > 0 and above[lo - 1]:
        lo -= 1
    while hi < above.size - 1 and above[hi + 1]:
        hi += 1
    return (hi - lo) / FS


def fit_record(x: np.ndarray) -> dict | None:
    """Template, intervals and noise of one z-scored record (12, 5000); None when the record is not usable."""
    m, waves = measure_intervals(x)
    rr = m["rr_mean_ms"] / 1000.0
    if not (np.isfinite(rr) and 0.55 <= rr <= 1.4 and m["rr_cv"] < 0.15):
        return None  # irregular or very fast / slow: rhythm comes from the labels, not from the template
    qt = float(np.clip(np.nan_to_num(m["qt"] / 1000.0, nan=0.38), 0.30, 0.50))
    qrs = float(np.clip(np.nan_to_num(m["qrs_dur"] / 1000.0, nan=0.09), 0.07, 0.16))
    peaks = r_peaks(x[1])
    pre, post = int(PRE_S * FS), int(POST_S * FS)
    inner = peaks[(peaks >= pre) & (peaks < x.shape[1] - post)]
    if inner.size < 5:
        return None
    raw = undo_bandpass(x.astype(np.float64))
    idx = inner[:, None] + np.arange(-pre, post)[None, :]  # (B, L)
    beats = raw[:, idx]  # (12, B, L)
    tmpl = np.median(beats, axis=1)  # (12, L)
    # QRS onset and PR from lead II's delineation. The onset finder of the wavelet delineator often stops on the
    # P wave's down-slope when the QRS has no q wave, so PR is taken as P onset -> R peak minus the R offset.
    r_off, pr = 0.04, 0.16
    pk = waves.get("R_Peaks", np.zeros(0))
    on, p_on = waves.get("ECG_R_Onsets", np.zeros(0)), waves.get("ECG_P_Onsets", np.zeros(0))
    if on.size == pk.size and pk.size:
        d = (pk - on)[np.isfinite(on)] / FS
        d = d[(d > 0.005) & (d < 0.08)]
        r_off = float(np.clip(np.median(d), 0.025, 0.06)) if d.size else r_off
    if p_on.size == pk.size and pk.size:
        d = (pk - p_on)[np.isfinite(p_on)] / FS
        pr = float(np.clip(np.median(d) - r_off, 0.10, 0.24)) if d.size else pr
    p_start = pre - int((pr + r_off + 0.06) * FS)
    t_stop = pre - int(r_off * FS) + int((qt + 0.1) * FS)
    t_stop = min(t_stop, pre + int((rr - pr - r_off - 0.03) * FS))  # not into the next P wave
    p_start = max(p_start, pre + int((qt - rr - r_off + 0.02) * FS))  # not into the previous T wave
    win = _taper(pre + post, max(p_start, int(0.04 * FS)), min(t_stop, pre + post - int(0.04 * FS)))
    # Baseline of each lead: the level just before the P wave and after the T wave.
    edge = (win == 0) | ((win < 0.2) & (np.arange(pre + post) < pre))
    base = (
        np.median(tmpl[:, edge], axis=1, keepdims=True) if edge.any() else tmpl[:, :10].mean(1, keepdims=True)
    )
    tmpl = (tmpl - base) * win[None, :]
    if qrs_core_width(tmpl, pre) > 0.1:
        return None  # a wide QRS (bundle branch block, ventricular rhythm): only the labels make those
    # Residual noise: record minus the median beat placed at every R peak.
    model = np.zeros_like(raw)
    for pk_i in peaks:
        lo, hi = max(pk_i - pre, 0), min(pk_i + post, raw.shape[1])
        model[:, lo:hi] += tmpl[:, lo - pk_i + pre : hi - pk_i + pre]
    resid = raw - model
    resid = resid - resid.mean(axis=1, keepdims=True)
    # Background noise only: leave out the QRS complexes, where the residual is mostly beat-to-beat variation of
    # the QRS (timing jitter, respiration) rather than recording noise.
    quiet = np.ones(raw.shape[1])
    for pk_i in peaks:
        quiet[max(pk_i - int(0.06 * FS), 0) : pk_i + int(0.08 * FS)] = 0.0
    hann = np.hanning(int(0.04 * FS))
    quiet = np.convolve(quiet, hann / hann.sum(), mode="same")
    ind = resid[list(INDEPENDENT)] * quiet[None, :]
    f, welch_psd = sps.welch(ind, fs=FS, nperseg=500, axis=-1)
    welch_psd = welch_psd / max(float(np.mean(quiet**2)), 1e-3)
    psd = np.stack([np.interp(NOISE_FREQS, f, pl) for pl in welch_psd])  # (8, F) z-units^2 / Hz
    corr = np.corrcoef(sps.sosfiltfilt(sps.butter(2, [0.5, 40], btype="bandpass", fs=FS, output="sos"), ind))
    return {
        "template": tmpl[list(INDEPENDENT)].astype(np.float32),
        "limb_ratio": limb_ratio(x),
        "rr": rr,
        "pr": pr,
        "qrs": qrs,
        "qt": qt,
        "r_off": r_off,
        "noise_psd": np.log(psd + 1e-10).astype(np.float32),
        "noise_corr": corr.astype(np.float32),
    }


def fit_shape_model(
    records: np.ndarray, lead_scale_mv: np.ndarray, components: int = 50
) -> dict[str, np.ndarray]:
    """Fit the model on z-scored records (N, 12, 5000); ``lead_scale_mv`` (8,) = typical mV std of I, II, V1..V6.

    Returns the arrays of ``shape_model.ShapeModel`` (saved with ``np.savez_compressed``); ``kept`` holds the
    positions in ``records`` of the usable records that were fitted."""
    all_fits = [fit_record(np.asarray(r, dtype=np.float32)) for r in records]
    kept = [i for i, f in enumerate(all_fits) if f is not None]
    fits = [f for f in all_fits if f is not None]  # the records at ``kept``
    if len(fits) < 4:
        raise ValueError(f"only {len(fits)} usable records; need at least 4")
    # Stored at FS / 2 (the beats hold nothing above 45 Hz), so more components fit in a small file.
    half = [sps.resample_poly(f["template"].astype(np.float64), 1, 2, axis=1) for f in fits]
    tmpl = np.stack([h.ravel() for h in half])  # (M, 8 * L / 2)
    mean = tmpl.mean(axis=0)
    _, _, vt = np.linalg.svd(tmpl - mean, full_matrices=False)
    k = min(components, len(fits) - 1)
    coeffs = (tmpl - mean) @ vt[:k].T  # (M, k)

    def scalar(key: str) -> np.ndarray:
        return np.array([f[key] for f in fits], dtype=np.float32)

    return {
        "mean": mean.astype(np.float32),
        "components": vt[:k].astype(np.float16),
        "coeffs": coeffs.astype(np.float32),
        "template_shape": np.array([8, half[0].shape[1]]),
        "pre_s": np.array(PRE_S),
        "fs": np.array(FS / 2.0),
        "limb_ratio": scalar("limb_ratio"),
        "rr": scalar("rr"),
        "pr": scalar("pr"),
        "qrs": scalar("qrs"),
        "qt": scalar("qt"),
        "r_off": scalar("r_off"),
        "noise_psd": np.stack([f["noise_psd"] for f in fits]).astype(np.float16),
        "noise_corr": np.stack([f["noise_corr"] for f in fits]).astype(np.float16),
        "noise_freqs": NOISE_FREQS.astype(np.float32),
        "lead_scale_mv": np.asarray(lead_scale_mv, dtype=np.float32),
        "kept": np.array(kept, dtype=np.int16),
    }
