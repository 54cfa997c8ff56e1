"""Ground-truth numeric features of a generated record (known by construction, not measured)."""

from __future__ import annotations

import numpy as np

from encoder.synth.patient import Physiology, Template

# Normal ranges (ms) used for ECG-QA numeric-feature questions; outside = abnormal.
NORMAL_RANGES_MS: dict[str, tuple[float, float]] = {
    "rr interval": (600.0, 1000.0),
    "p duration": (60.0, 120.0),
    "pr interval": (120.0, 200.0),
    "qrs duration": (60.0, 120.0),
    "qt interval": (300.0, 450.0),
    "qt corrected": (350.0, 460.0),
}


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


def abnormal_features(values: dict[str, float]) -> set[str]:
    """Names of the numeric features outside their normal range (NaN counts as not measurable, not abnormal)."""
    out = set()
    for name, (lo, hi) in NORMAL_RANGES_MS.items():
        v = values.get(name, float("nan"))
        if np.isfinite(v) and not lo <= v <= hi:
            out.add(name)
    return out
