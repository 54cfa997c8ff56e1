"""Signal features used to tell synthetic ECGs from real ones, and the shared preprocessing.

Every record goes through ``preprocess`` (the preprocessing of the shared real PTB-XL set: 500 Hz, 10 s,
4th-order Butterworth band-pass 0.5-40 Hz applied forward and backward, per-lead z-score), then
``record_features`` computes:

* per-lead relative band powers (Welch PSD; 0.5-3, 3-8, 8-15, 15-25, 25-40 Hz),
* inter-lead correlations (upper triangle of the 12 x 12 matrix),
* rhythm (RR mean / SD / CV / RMSSD, beat count) from neurokit2's R-peak detector on lead II,
* beat morphology from neurokit2's wavelet delineator on leads II, V1 and V5 (one lead alone is unreliable, e.g. it
  often merges the QRS with neighbouring waves): P, QRS, PR, QT durations (ms; median over beats, then over the
  leads) and per-lead P / Q / R / S / T amplitudes and ST level at the fiducial points (median over beats),
* per-lead median-beat samples at fixed offsets around the R peak.
Missing values (no P waves, failed delineation) are NaN; the gradient-boosted classifier handles them natively.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.signal import welch

from encoder.leads import CANONICAL_LEADS
from encoder.preprocess import bandpass, crop_or_pad, normalize_per_lead, resample

FS = 500
SECONDS = 10.0
NUM_SAMPLES = int(FS * SECONDS)
BANDS: tuple[tuple[float, float], ...] = ((0.5, 3.0), (3.0, 8.0), (8.0, 15.0), (15.0, 25.0), (25.0, 40.0))
BEAT_OFFSETS_MS: tuple[int, ...] = (-200, -120, -60, -30, 0, 30, 60, 100, 160, 240, 320, 400)
INTERVALS = ("p_dur", "qrs_dur", "pr", "qt", "qtc")
AMPLITUDES = ("p_amp", "q_amp", "r_amp", "s_amp", "t_amp", "st_level")


def preprocess(signal: np.ndarray, fs: float) -> np.ndarray:
    """(12, T) at ``fs`` -> (12, 5000) float32: 500 Hz, centre 10 s, band-pass 0.5-40 Hz (order 4, zero phase), z-score."""
    x = resample(signal, fs, FS) if fs != FS else np.asarray(signal, dtype=np.float32)
    x = crop_or_pad(x, NUM_SAMPLES, "center")
    x = bandpass(x, FS, 0.5, 40.0, order=4)
    return normalize_per_lead(x)


def feature_names() -> list[str]:
    names = [f"bandpow_{lead}_{lo:g}-{hi:g}Hz" for lead in CANONICAL_LEADS for lo, hi in BANDS]
    names += [f"corr_{CANONICAL_LEADS[i]}_{CANONICAL_LEADS[j]}" for i in range(12) for j in range(i + 1, 12)]
    names += ["rr_mean_ms", "rr_sd_ms", "rr_cv", "rmssd_ms", "num_beats"]
    names += [f"{k}_ms" for k in INTERVALS]
    names += [f"{k}_{lead}" for k in AMPLITUDES for lead in CANONICAL_LEADS]
    names += [f"beat_{lead}_{off:+d}ms" for lead in CANONICAL_LEADS for off in BEAT_OFFSETS_MS]
    return names


def _band_powers(x: np.ndarray) -> np.ndarray:
    f, p = welch(x, fs=FS, nperseg=1000, axis=-1)  # (12, F)
    total = p[:, (f >= 0.5) & (f <= 40.0)].sum(axis=1) + 1e-12
    return np.stack([p[:, (f >= lo) & (f < hi)].sum(axis=1) / total for lo, hi in BANDS], axis=1).ravel()


def _correlations(x: np.ndarray) -> np.ndarray:
    c = np.corrcoef(x)
    return c[np.triu_indices(12, k=1)]


def _median_at(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Median over beats of each lead's value at sample indices ``idx`` (NaN where missing) -> (12,)."""
    idx = idx[np.isfinite(idx)].astype(int)
    idx = idx[(idx >= 0) & (idx < x.shape[1])]
    if idx.size == 0:
        return np.full(12, np.nan)
    return np.median(x[:, idx], axis=1)


def delineate(lead: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """R peaks and wavelet delineation of one (pre-processed) lead; empty on failure."""
    import neurokit2 as nk

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            _, info = nk.ecg_peaks(lead, sampling_rate=FS)
            peaks = np.asarray(info["ECG_R_Peaks"], dtype=int)
        except Exception:  # noqa: BLE001  (neurokit raises bare errors on pathological signals)
            return np.zeros(0, dtype=int), {}
        if peaks.size < 3:
            return peaks, {}
        try:
            _, waves = nk.ecg_delineate(lead, peaks, sampling_rate=FS, method="dwt")
        except Exception:  # noqa: BLE001
            return peaks, {}
    return peaks, {k: np.asarray(v, dtype=float) for k, v in waves.items()}


def rhythm_summary(peaks: np.ndarray) -> dict[str, float]:
    """RR statistics (ms) from R-peak sample indices."""
    rr = np.diff(peaks) / FS * 1000.0
    if rr.size < 2:
        return {
            "rr_mean_ms": np.nan,
            "rr_sd_ms": np.nan,
            "rr_cv": np.nan,
            "rmssd_ms": np.nan,
            "num_beats": float(peaks.size),
        }
    return {
        "rr_mean_ms": float(rr.mean()),
        "rr_sd_ms": float(rr.std()),
        "rr_cv": float(rr.std() / rr.mean()),
        "rmssd_ms": float(np.sqrt(np.mean(np.diff(rr) ** 2))),
        "num_beats": float(peaks.size),
    }


def interval_summary(waves: dict[str, np.ndarray], rr_mean_ms: float) -> dict[str, float]:
    """Median P duration, QRS duration, PR, QT, QTc (ms) from a delineation."""

    def med(a: str, b: str) -> float:
        if a not in waves or b not in waves:
            return np.nan
        d = (waves[b] - waves[a]) / FS * 1000.0
        d = d[np.isfinite(d) & (d > 0)]
        return float(np.median(d)) if d.size else np.nan

    qt = med("ECG_R_Onsets", "ECG_T_Offsets")
    return {
        "p_dur": med("ECG_P_Onsets", "ECG_P_Offsets"),
        "qrs_dur": med("ECG_R_Onsets", "ECG_R_Offsets"),
        "pr": med("ECG_P_Onsets", "ECG_R_Onsets"),
        "qt": qt,
        "qtc": qt / np.sqrt(rr_mean_ms / 1000.0) if np.isfinite(rr_mean_ms) and rr_mean_ms > 0 else np.nan,
    }


DELINEATION_LEADS = (1, 6, 10)  # II, V1, V5


def r_peaks(lead: np.ndarray) -> np.ndarray:
    """R-peak sample indices of one lead (neurokit2), empty on failure."""
    import neurokit2 as nk

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return np.asarray(nk.ecg_peaks(lead, sampling_rate=FS)[1]["ECG_R_Peaks"], dtype=int)
        except Exception:  # noqa: BLE001
            return np.zeros(0, dtype=int)


def measure_intervals(
    x: np.ndarray, leads: tuple[int, ...] = DELINEATION_LEADS
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Rhythm (lead II R peaks) + intervals (median over ``DELINEATION_LEADS``) of a pre-processed record.

    Returns the measurements and the delineation of the first lead where it succeeded (for amplitudes)."""
    rhythm = rhythm_summary(r_peaks(x[1]))
    per_lead: list[dict[str, float]] = []
    first: dict[str, np.ndarray] = {}
    for lead in leads:
        peaks, waves = delineate(x[lead])
        if waves:
            per_lead.append(interval_summary(waves, rhythm["rr_mean_ms"]))
            if not first:
                first = waves | {"R_Peaks": peaks.astype(float)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        iv = {k: float(np.nanmedian([d[k] for d in per_lead])) if per_lead else np.nan for k in INTERVALS}
    return rhythm | iv, first


def record_features(x: np.ndarray) -> np.ndarray:
    """Feature vector (F,) of one pre-processed record (12, 5000); order = ``feature_names()``."""
    parts = [_band_powers(x), _correlations(x)]
    m, waves = measure_intervals(x)
    parts.append(np.array([m[k] for k in ("rr_mean_ms", "rr_sd_ms", "rr_cv", "rmssd_ms", "num_beats")]))
    parts.append(np.array([m[k] for k in INTERVALS]))
    peaks = waves.get("R_Peaks", r_peaks(x[1]).astype(float))
    nan12 = np.full(12, np.nan)
    if waves:
        r_on, r_off = waves.get("ECG_R_Onsets"), waves.get("ECG_R_Offsets")
        baseline = _median_at(x, r_on - int(0.02 * FS)) if r_on is not None else nan12
        amp = {
            "p_amp": _median_at(x, waves["ECG_P_Peaks"]) - baseline,
            "q_amp": _median_at(x, waves["ECG_Q_Peaks"]) - baseline,
            "r_amp": _median_at(x, peaks.astype(float)) - baseline,
            "s_amp": _median_at(x, waves["ECG_S_Peaks"]) - baseline,
            "t_amp": _median_at(x, waves["ECG_T_Peaks"]) - baseline,
            "st_level": (_median_at(x, r_off + int(0.04 * FS)) - baseline) if r_off is not None else nan12,
        }
    else:
        amp = {k: nan12 for k in AMPLITUDES}
    parts += [amp[k] for k in AMPLITUDES]
    beat = np.full((12, len(BEAT_OFFSETS_MS)), np.nan)
    inner = peaks[(peaks > 0.25 * FS) & (peaks < NUM_SAMPLES - 0.45 * FS)].astype(int)
    if inner.size:
        for j, off in enumerate(BEAT_OFFSETS_MS):
            beat[:, j] = np.median(x[:, inner + int(off * FS / 1000)], axis=1)
    parts.append(beat.ravel())
    return np.concatenate(parts).astype(np.float64)


def feature_matrix(records: np.ndarray, progress: bool = True, workers: int = 2) -> np.ndarray:
    """(N, 12, 5000) pre-processed records -> (N, F) features (``workers`` processes where fork is available)."""
    import multiprocessing as mp

    from tqdm import tqdm

    bar = dict(total=len(records), desc="features", unit="rec", disable=not progress)
    if workers > 1 and len(records) > 8 and "fork" in mp.get_all_start_methods():
        with mp.get_context("fork").Pool(workers) as pool:
            return np.stack(list(tqdm(pool.imap(record_features, records, chunksize=4), **bar)))
    return np.stack([record_features(r) for r in tqdm(records, **bar)])
