"""The ECG-QA attributes of one ECG beyond its SCP codes, in the one form every part of the library shares.

The PTB-XL table parser fills it from the real columns, the synthetic cohort from what it drew (and writes the
columns back in the real table's formats), the question writer asks about it, stage 1's multi-task head learns it
and the aux-head answerer answers from it. Answer strings are ECG-QA's own (``answers.csv``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
"""ECG-QA's lead names, in the library's lead order."""

NOISE_TYPES: tuple[str, ...] = ("baseline drift", "static noise", "burst noise", "electrodes problems")
NOISE_COLUMNS: dict[str, str] = {
    "baseline drift": "baseline_drift",
    "static noise": "static_noise",
    "burst noise": "burst_noise",
    "electrodes problems": "electrodes_problems",
}
"""Noise type (answer string) -> PTB-XL table column (free-text lead list)."""

EXTRA_SYSTOLE_TYPES: tuple[str, ...] = (
    "extrasystoles",
    "ventricular extrasystoles",
    "supraventricular extrasystoles",
)
AXIS_CLASSES: tuple[str, ...] = (
    "normal heart axis",
    "left axis deviation",
    "right axis deviation",
    "extreme axis deviation",
)
INFARCTION_STAGES: tuple[str, ...] = (
    "early stage of myocardial infarction",
    "middle stage of myocardial infarction",
    "old stage of myocardial infarction",
    "unknown stage of myocardial infarction",
)
NUMERIC_FEATURES: tuple[str, ...] = (
    "rr interval",
    "p duration",
    "pr interval",
    "qrs duration",
    "qt interval",
    "qt corrected",
)
NORMAL_RANGES_MS: dict[str, tuple[float | None, float]] = {
    "rr interval": (600.0, 1000.0),
    "p duration": (None, 120.0),
    "pr interval": (120.0, 200.0),
    "qrs duration": (60.0, 110.0),
    "qt interval": (330.0, 430.0),
    "qt corrected": (330.0, 555.0),
}
"""ECG-QA's normal ranges (low, high) in ms; ``None`` = no lower bound (P duration)."""

FORM_LEAD_CODES: tuple[str, ...] = (
    "NDT", "NST_", "DIG", "STD_", "VCLVH", "QWAVE", "LOWT", "NT_", "INVT", "LVOLT", "HVOLT", "TAB_", "STE_",
)  # fmt: skip
"""The 13 form statements whose leads ECG-QA parses from the report text (lead-specific templates)."""

ATTRIBUTE_GROUPS = ("noise", "extra_systole", "heart_axis", "stage_of_infarction", "numeric_feature", "pacemaker",
                    "form_leads")  # fmt: skip
AttributeGroup = Literal[
    "noise",
    "extra_systole",
    "heart_axis",
    "stage_of_infarction",
    "numeric_feature",
    "pacemaker",
    "form_leads",
]
RangeClass = Literal["below the normal range", "within the normal range", "above the normal range"]

LeadMask = tuple[bool, ...]
"""12 booleans in :data:`LEADS` order."""

NO_LEADS: LeadMask = (False,) * len(LEADS)


def range_class(feature: str, value_ms: float) -> RangeClass | None:
    """ECG-QA's class of one measured value; ``None`` when the value is missing (NaN)."""
    if value_ms is None or math.isnan(value_ms):
        return None
    low, high = NORMAL_RANGES_MS[feature]
    if value_ms > high:
        return "above the normal range"
    if low is not None and value_ms < low:
        return "below the normal range"
    return "within the normal range"


@dataclass(frozen=True)
class EcgAttributes:
    """Everything ECG-QA asks about one ECG besides its SCP codes.

    A group missing from ``available`` is unknown (a table without that column, a feature not measurable): questions
    that need it are unanswerable, never answered from a default.
    """

    noise: dict[str, LeadMask] = field(default_factory=dict)
    """Noise type -> leads it is in (all four types present when ``"noise"`` is available)."""
    extra_systoles: frozenset[str] = frozenset()
    """Subset of :data:`EXTRA_SYSTOLE_TYPES` ("extrasystoles" = type not stated)."""
    heart_axis: str | None = None
    """One of :data:`AXIS_CLASSES`, or ``None`` when not determined."""
    infarction_stage: str | None = None
    """One of :data:`INFARCTION_STAGES`, or ``None`` = no infarction."""
    pacemaker: bool = False
    form_leads: dict[str, LeadMask] = field(default_factory=dict)
    """SCP code of :data:`FORM_LEAD_CODES` present in the record -> the leads it is reported in."""
    numeric_ms: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Numeric feature -> (min, max) over beats in ms; missing or NaN = not measured."""
    available: frozenset[str] = frozenset()
    """The :data:`ATTRIBUTE_GROUPS` that are known for this record."""

    def noisy_leads(self, noise_type: str | None = None) -> LeadMask:
        """Leads with the given noise type, or with any noise when ``noise_type`` is None."""
        types = NOISE_TYPES if noise_type is None else (noise_type,)
        masks = [self.noise.get(t, NO_LEADS) for t in types]
        return tuple(any(m[i] for m in masks) for i in range(len(LEADS)))

    def numeric_classes(self, feature: str) -> set[RangeClass]:
        """Classes of the feature's min and max (empty when not measured)."""
        lo_hi = self.numeric_ms.get(feature)
        if lo_hi is None:
            return set()
        return {c for c in (range_class(feature, v) for v in lo_hi) if c is not None}

    def abnormal_features(self) -> set[str]:
        """Numeric features with a min or max outside ECG-QA's normal range."""
        return {f for f in self.numeric_ms if self.numeric_classes(f) - {"within the normal range"}}

    def to_json(self) -> str:
        """One JSON string (a table cell); :meth:`from_json` reads it back."""
        return json.dumps(
            {
                "noise": {k: [int(x) for x in v] for k, v in self.noise.items()},
                "extra_systoles": sorted(self.extra_systoles),
                "heart_axis": self.heart_axis,
                "infarction_stage": self.infarction_stage,
                "pacemaker": self.pacemaker,
                "form_leads": {k: [int(x) for x in v] for k, v in self.form_leads.items()},
                "numeric_ms": {
                    k: [_finite_or_none(a), _finite_or_none(b)] for k, (a, b) in self.numeric_ms.items()
                },
                "available": sorted(self.available),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> EcgAttributes:
        d: dict[str, Any] = json.loads(text)
        return cls(
            noise={k: tuple(bool(x) for x in v) for k, v in d.get("noise", {}).items()},
            extra_systoles=frozenset(d.get("extra_systoles", ())),
            heart_axis=d.get("heart_axis"),
            infarction_stage=d.get("infarction_stage"),
            pacemaker=bool(d.get("pacemaker", False)),
            form_leads={k: tuple(bool(x) for x in v) for k, v in d.get("form_leads", {}).items()},
            numeric_ms={
                k: (_nan_if_none(a), _nan_if_none(b)) for k, (a, b) in d.get("numeric_ms", {}).items()
            },
            available=frozenset(d.get("available", ())),
        )


def _finite_or_none(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def _nan_if_none(x: float | None) -> float:
    return float("nan") if x is None else float(x)
