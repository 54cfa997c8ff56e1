"""Ground-truth numeric features of a generated record (known by construction, not measured)."""

from __future__ import annotations

import numpy as np

from encoder.ecgqa.attributes import range_class
from encoder.synth.patient import Physiology, Template


def numeric_features(ph: Physiology, tmpl: Template) -> dict[str, float]:
    """Interval values (ms) implied by the physiology; P-wave features are absent (NaN) without P waves."""
    rr = 60.0 / ph.heart_rate
    has_p = ph.rhythm == "sinus"
    p1, p2 = tmpl["P1"], tmpl["P2"]
    p_dur = (p2.center + 2.5 * p2.sigma_right) - (p1.center - 2.5 * p1.sigma_left)
    return {
        "rr interval": 1000.0 * rr,
        "p duration": 1000.0 * p_dur if has_p else float("nan"),
        "pr interval": 1000.0 * ph.pr if has_p else float("nan"),
        "qrs duration": 1000.0 * ph.qrs,
        "qt interval": 1000.0 * ph.qtc * np.sqrt(rr),
        "qt corrected": 1000.0 * ph.qtc,
    }


def numeric_min_max(
    features: dict[str, float], rr_prev: np.ndarray, qtc: float
) -> dict[str, tuple[float, float]]:
    """(min, max) in ms over the record's beats: RR and QT vary beat to beat (QT follows the preceding RR), the
    rest are the patient's constants."""
    rr = np.clip(rr_prev[1:] if rr_prev.size > 1 else rr_prev, 0.3, 2.0)
    qt = qtc * np.sqrt(rr)
    out = {name: (v, v) for name, v in features.items()}
    out["rr interval"] = (1000.0 * float(rr.min()), 1000.0 * float(rr.max()))
    out["qt interval"] = (1000.0 * float(qt.min()), 1000.0 * float(qt.max()))
    return out


def abnormal_features(values: dict[str, float]) -> set[str]:
    """Names of the numeric features outside ECG-QA's normal range (NaN counts as not measurable, not abnormal)."""
    out = set()
    for name, v in values.items():
        if np.isfinite(v) and range_class(name, v) != "within the normal range":
            out.add(name)
    return out
