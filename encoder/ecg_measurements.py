"""Numeric features and heart axis measured from one 12-lead signal, with ECG-QA's rules.

Lead II at 500 Hz: neurokit2 clean -> R peaks -> delineation (needs >= 7 R peaks); RR gaps >= 2 s dropped;
P = P offset - P onset, PR = R onset - P onset, QRS = R offset - R onset, QT = T offset - Q peak, QTc = QT/sqrt(RR)
of the preceding RR; min and max over beats, in ms. Heart axis from the net QRS amplitude in I and aVF at lead II's
beats: normal -30..90 deg, left -90..-30, right 90..180, extreme -180..-90. Whether a lead is clean enough to
measure is the caller's call (``encoder.datasets.ptbxl_attributes``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from encoder.ecgqa.attributes import AXIS_CLASSES, LEADS

MEASURE_FS = 500
MIN_R_PEAKS = 7
MAX_RR_S = 2.0
_QRS_WINDOW_S = 0.1
"""Half-width of the window around an R peak searched for the QRS extremes (s)."""


@dataclass(frozen=True)
class Measurements:
    """What was measured: feature -> (min, max) in ms (absent = not measurable) and the axis."""

    numeric_ms: dict[str, tuple[float, float]] = field(default_factory=dict)
    axis_deg: float | None = None
    heart_axis: str | None = None
    """One of :data:`AXIS_CLASSES`, or None."""


def axis_class(axis_deg: float) -> str:
    """ECG-QA's axis class of an angle in degrees (-180..180)."""
    if -30 <= axis_deg < 90:
        return AXIS_CLASSES[0]
    if -90 <= axis_deg < -30:
        return AXIS_CLASSES[1]
    if 90 <= axis_deg <= 180:
        return AXIS_CLASSES[2]
    return AXIS_CLASSES[3]


def _delineate(lead: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """(R peaks, neurokit2 waves) of one lead at 500 Hz, or None when fewer than 7 R peaks."""
    import neurokit2 as nk

    clean = nk.ecg_clean(lead, sampling_rate=MEASURE_FS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, info = nk.ecg_peaks(clean, sampling_rate=MEASURE_FS)
            peaks = np.asarray(info["ECG_R_Peaks"], dtype=int)
            if len(peaks) < MIN_R_PEAKS:
                return None
            _, waves = nk.ecg_delineate(clean, peaks, sampling_rate=MEASURE_FS)
    except (ValueError, IndexError, ZeroDivisionError):
        return None
    return peaks, {k: np.asarray(v, dtype=float) for k, v in waves.items()}


def _min_max(values: list[float]) -> tuple[float, float] | None:
    return (float(min(values)), float(max(values))) if values else None


def _intervals(peaks: np.ndarray, waves: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    ms = 1000.0 / MEASURE_FS
    n = len(peaks)

    def col(name: str) -> np.ndarray:
        v = waves.get(name, np.full(n, np.nan))
        return np.concatenate([v, np.full(max(0, n - len(v)), np.nan)])[:n]

    def spans(a: np.ndarray, b: np.ndarray) -> list[float]:
        return [(y - x + 1) * ms for x, y in zip(a, b, strict=True) if not (np.isnan(x) or np.isnan(y))]

    rr = [(b - a) * ms for a, b in zip(peaks[:-1], peaks[1:], strict=True) if (b - a) / MEASURE_FS < MAX_RR_S]
    qt = spans(col("ECG_Q_Peaks"), col("ECG_T_Offsets"))
    qtc = []
    for j, (q, t) in enumerate(zip(col("ECG_Q_Peaks"), col("ECG_T_Offsets"), strict=True)):
        if j > 0 and not (np.isnan(q) or np.isnan(t)):
            qtc.append((t - q + 1) * ms / math.sqrt((peaks[j] - peaks[j - 1]) / MEASURE_FS))
    found = {
        "rr interval": _min_max(rr),
        "p duration": _min_max(spans(col("ECG_P_Onsets"), col("ECG_P_Offsets"))),
        "pr interval": _min_max(spans(col("ECG_P_Onsets"), col("ECG_R_Onsets"))),
        "qrs duration": _min_max(spans(col("ECG_R_Onsets"), col("ECG_R_Offsets"))),
        "qt interval": _min_max(qt),
        "qt corrected": _min_max(qtc),
    }
    return {k: v for k, v in found.items() if v is not None}


def _net_qrs(lead: np.ndarray, peaks: np.ndarray, onsets: np.ndarray) -> float | None:
    """Mean over beats of (max + min) around each R peak, relative to the value at R onset (mV)."""
    half = int(_QRS_WINDOW_S * MEASURE_FS)
    nets = []
    for p, o in zip(peaks, onsets, strict=False):
        if np.isnan(o):
            continue
        base = lead[int(o)]
        seg = lead[max(0, p - half) : p + half] - base
        nets.append(float(seg.max() + seg.min()))
    return float(np.mean(nets)) if nets else None


def measure_signal(signal: np.ndarray, fs: float) -> Measurements:
    """Measure a (12, T) mV signal in library lead order at ``fs`` Hz (resampled to 500 Hz)."""
    x = np.asarray(signal, dtype=np.float64)  # (12, T)
    if int(round(fs)) != MEASURE_FS:
        g = math.gcd(MEASURE_FS, int(round(fs)))
        x = resample_poly(x, MEASURE_FS // g, int(round(fs)) // g, axis=-1)  # (12, T')
    x = np.nan_to_num(x)
    found = _delineate(x[LEADS.index("II")])
    if found is None:
        return Measurements()
    peaks, waves = found
    numeric = _intervals(peaks, waves)
    onsets = waves.get("ECG_R_Onsets", np.full(len(peaks), np.nan))
    net_i = _net_qrs(x[LEADS.index("I")], peaks, onsets)
    net_avf = _net_qrs(x[LEADS.index("aVF")], peaks, onsets)
    if net_i is None or net_avf is None or (net_i == 0 and net_avf == 0):
        return Measurements(numeric_ms=numeric)
    angle = math.degrees(math.atan2(net_avf, net_i))
    return Measurements(numeric_ms=numeric, axis_deg=angle, heart_axis=axis_class(angle))


def _to_json(m: Measurements) -> str:
    return json.dumps({"numeric_ms": m.numeric_ms, "axis_deg": m.axis_deg})


def _from_json(text: str) -> Measurements:
    d = json.loads(text)
    angle = d["axis_deg"]
    numeric = {k: (float(a), float(b)) for k, (a, b) in d["numeric_ms"].items()}
    return Measurements(numeric, angle, None if angle is None else axis_class(angle))


def measure_record(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Measurements:
    """Measure the WFDB record at ``path``; cached in ``cache_dir`` keyed on the path and its mtime."""
    from encoder.io import read_ecg

    header = Path(f"{path}.hea")
    cache_file = None
    if cache_dir is not None:
        key = f"{Path(path).resolve()}|{header.stat().st_mtime_ns if header.is_file() else 0}"
        cache_file = Path(cache_dir) / f"measure-{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"
        if cache_file.is_file():
            return _from_json(cache_file.read_text())
    ecg = read_ecg(path)
    m = measure_signal(ecg.signal, ecg.fs)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(_to_json(m))
        tmp.replace(cache_file)
    return m
