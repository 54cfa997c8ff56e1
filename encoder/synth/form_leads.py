"""The leads a form statement is seen in, read off the record's own mean beat (with and without the label effect).

ECG-QA asks in which leads 13 form statements are (PTB-XL's reports name them); the synthetic cohort reports the
leads where the rendered change is visible, so the report, the ground truth and the signal agree. Thresholds are
in mV on the 12-lead mean beat (times relative to the R peak of the beat grid).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from encoder.ecgqa.attributes import FORM_LEAD_CODES, LeadMask

LIMB = np.arange(12) < 6


@dataclass(frozen=True)
class BeatLevels:
    """Per-lead (12,) levels of a mean beat relative to its PR segment, in mV."""

    st: np.ndarray
    """Mean level 40-80 ms after the QRS end."""
    t: np.ndarray
    """T-wave extreme (signed, largest magnitude)."""
    q: np.ndarray
    """Lowest value in the first 40 ms of the QRS (a Q wave when negative)."""
    p2p: np.ndarray
    """QRS peak-to-peak amplitude."""


def beat_levels(beat: np.ndarray, t: np.ndarray, q_on: float, qrs: float, qt: float) -> BeatLevels:
    """Levels of a 12-lead mean beat (12, W) on grid ``t`` (s); ``q_on`` QRS onset, ``qrs`` / ``qt`` in s."""

    def sel(lo: float, hi: float) -> np.ndarray:
        return (t >= lo) & (t < hi)

    base = beat[:, sel(q_on - 0.04, q_on - 0.01)].mean(axis=1, keepdims=True)
    x = beat - base
    j = q_on + qrs
    tw = x[:, sel(j + 0.08, max(q_on + qt, j + 0.16))]  # (12, >= 1) at any rate and QRS width
    qrs_part = x[:, sel(q_on, j)]
    return BeatLevels(
        st=x[:, sel(j + 0.04, j + 0.08)].mean(axis=1),
        t=tw[np.arange(12), np.abs(tw).argmax(axis=1)],
        q=x[:, sel(q_on, q_on + 0.04)].min(axis=1),
        p2p=qrs_part.max(axis=1) - qrs_part.min(axis=1),
    )


Rule = Callable[[BeatLevels, BeatLevels], np.ndarray]
"""(levels with the label effect, levels without) -> (12,) bool."""

RULES: dict[str, Rule] = {
    "STD_": lambda b, n: (b.st < -0.04) & (b.st - n.st < -0.03),
    "STE_": lambda b, n: (b.st > 0.06) & (b.st - n.st > 0.04),
    "INVT": lambda b, n: (b.t < -0.1) & (b.t - n.t < -0.1),
    "LOWT": lambda b, n: (np.abs(b.t) < 0.12) & (np.abs(b.t) < 0.6 * np.abs(n.t)),
    "NDT": lambda b, n: np.abs(b.t - n.t) > np.maximum(0.08, 0.4 * np.abs(n.t)),
    "QWAVE": lambda b, n: (b.q < -0.1) & (b.q - n.q < -0.05),
    "VCLVH": lambda b, n: b.p2p > np.where(LIMB, 1.5, 2.5),
    "HVOLT": lambda b, n: b.p2p > np.where(LIMB, 1.5, 2.5),
    "LVOLT": lambda b, n: b.p2p < np.where(LIMB, 0.5, 1.0),
    "NST_": lambda b, n: (
        (np.abs(b.st - n.st) > 0.03) | (np.abs(b.t - n.t) > np.maximum(0.06, 0.3 * np.abs(n.t)))
    ),
    "NT_": lambda b, n: np.abs(b.t - n.t) > np.maximum(0.06, 0.3 * np.abs(n.t)),
    "TAB_": lambda b, n: np.abs(b.t - n.t) > np.maximum(0.08, 0.4 * np.abs(n.t)),
    "DIG": lambda b, n: (b.st < -0.03) & (b.st - n.st < -0.02),
}
"""Form statement -> the leads it is seen in (all 13 of ECG-QA's lead-localised statements)."""


def form_lead_masks(
    codes: frozenset[str], with_label: BeatLevels, without: BeatLevels
) -> dict[str, LeadMask]:
    """Lead masks of the lead-localised form statements among ``codes`` (all 13 of ECG-QA's that are present)."""
    out: dict[str, LeadMask] = {}
    for code in FORM_LEAD_CODES:
        if code in codes:
            out[code] = tuple(bool(x) for x in RULES[code](with_label, without))
    return out
