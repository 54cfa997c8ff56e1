"""Numeric features and heart axis measured from signals (ECG-QA's rules, neurokit2)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from encoder.ecg_measurements import axis_class, measure_record, measure_signal
from encoder.ecgqa.attributes import AXIS_CLASSES, LEADS
from encoder.io import read_ecg

pytest.importorskip("neurokit2")
RECORD = Path(__file__).resolve().parents[1] / "encoder" / "resources" / "wfdb" / "s0010_re"
FS = 500
RR_S, PR_S, QRS_S, QT_S = 0.8, 0.16, 0.09, 0.38


def _gauss(t: np.ndarray, centre: float, width: float, amp: float) -> np.ndarray:
    return amp * np.exp(-0.5 * ((t - centre) / width) ** 2)


def beat_train(seconds: float = 10.0, axis_deg: float = 60.0) -> np.ndarray:
    """(12, T) mV: a P-QRS-T train with known intervals; lead I / aVF carry the QRS at ``axis_deg``."""
    t = np.arange(int(seconds * FS)) / FS
    lead = np.zeros_like(t)
    for r in np.arange(0.4, seconds - 0.5, RR_S):
        onset = r - QRS_S / 2
        lead += _gauss(t, onset - PR_S + 0.05, 0.02, 0.15)  # P wave, begins ~PR before QRS onset
        lead += _gauss(t, r - 0.025, 0.008, -0.15)  # Q
        lead += _gauss(t, r, 0.012, 1.2)  # R
        lead += _gauss(t, r + 0.025, 0.008, -0.25)  # S
        lead += _gauss(t, onset + QT_S - 0.09, 0.035, 0.3)  # T, ends ~QT after QRS onset
    sig = np.tile(lead, (12, 1))
    a = math.radians(axis_deg)
    sig[LEADS.index("I")] = lead * math.cos(a)
    sig[LEADS.index("aVF")] = lead * math.sin(a)
    return sig


def test_synthetic_beat_train_intervals_within_tolerance() -> None:
    m = measure_signal(beat_train(), FS)
    lo, hi = m.numeric_ms["rr interval"]
    assert abs(lo - 800) <= 4 and abs(hi - 800) <= 4
    qrs = np.mean(m.numeric_ms["qrs duration"])
    assert 50 <= qrs <= 140, m.numeric_ms
    qt = np.mean(m.numeric_ms["qt interval"])
    assert abs(qt - QT_S * 1000) <= 60, m.numeric_ms
    qtc = np.mean(m.numeric_ms["qt corrected"])
    assert abs(qtc - qt / math.sqrt(RR_S)) <= 15
    assert 60 <= np.mean(m.numeric_ms["pr interval"]) <= 240, m.numeric_ms


@pytest.mark.parametrize("angle", [60.0, -60.0, 135.0, -135.0])
def test_heart_axis_from_lead_i_and_avf(angle: float) -> None:
    m = measure_signal(beat_train(axis_deg=angle), FS)
    assert m.axis_deg is not None and abs(m.axis_deg - angle) < 10
    assert m.heart_axis == axis_class(angle)


def test_axis_class_boundaries() -> None:
    assert [axis_class(a) for a in (0, 89, -30, -31, -90, 90, 180, -91, -180)] == [
        AXIS_CLASSES[0], AXIS_CLASSES[0], AXIS_CLASSES[0], AXIS_CLASSES[1], AXIS_CLASSES[1],
        AXIS_CLASSES[2], AXIS_CLASSES[2], AXIS_CLASSES[3], AXIS_CLASSES[3],
    ]  # fmt: skip


def test_too_few_beats_measure_nothing() -> None:
    m = measure_signal(beat_train(seconds=4.0), FS)  # 5 R peaks < 7
    assert m.numeric_ms == {} and m.heart_axis is None


def test_real_record_resampled_and_cached(tmp_path: Path) -> None:
    ecg = read_ecg(RECORD)
    assert ecg.fs != FS  # the shipped record is 1 kHz: measure_signal resamples it
    m = measure_record(RECORD, cache_dir=tmp_path)
    lo, hi = m.numeric_ms["rr interval"]
    assert 400 <= lo <= hi <= 1500
    assert m.heart_axis in AXIS_CLASSES
    cached = list(tmp_path.glob("measure-*.json"))
    assert len(cached) == 1
    again = measure_record(RECORD, cache_dir=tmp_path)
    assert again.numeric_ms == m.numeric_ms and again.heart_axis == m.heart_axis
