"""ECG-QA attributes of MIMIC-IV-ECG records, from what its release holds.

MIMIC-IV-ECG ships no noise or extra-beat columns and no SCP codes; ``machine_measurements.csv`` holds, per study,
the cart's measurements of its median beat and the cart's report statements (``report_0`` ... ``report_17``).
From those:

- ``numeric_feature``: RR = ``rr_interval``; P = ``p_end - p_onset``; PR = ``qrs_onset - p_onset``; QRS =
  ``qrs_end - qrs_onset``; QT = ``t_end - qrs_onset``; QTc = QT / sqrt(RR in s). One value per study (the median
  beat), so min = max. A value the cart could not measure (MIMIC writes 29999, or the cell is empty) or a
  non-positive interval is not measured.
- ``heart_axis``: ``qrs_axis`` (degrees) -> ECG-QA's class.
- ``stage_of_infarction``, ``extra_systole``, ``pacemaker``: phrases of the report statements
  (:data:`STAGE_PHRASES`, :data:`EXTRA_SYSTOLE_PHRASES`, :data:`PACEMAKER_PHRASES`); available whenever the report
  columns are.
- ``noise`` and ``form_leads`` are never available: the statements name no leads. Questions about them are
  unanswerable for MIMIC-IV-ECG records.

The rules are this library's reading of the cart's statements, not ECG-QA's code. :func:`machine_attributes` is
the entry point; ``MimicIvEcg.attributes`` calls it.
"""

from __future__ import annotations

import math
import re

import pandas as pd

from encoder.ecg_measurements import axis_class
from encoder.ecgqa.attributes import EXTRA_SYSTOLE_TYPES, INFARCTION_STAGES, EcgAttributes

MISSING_MEASUREMENT = 29999
"""MIMIC-IV-ECG's marker for a measurement the cart could not make (values at or above it are missing)."""

MEASUREMENT_COLUMNS = ("rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end", "qrs_axis")
REPORT_COLUMN = re.compile(r"^report_\d+$")

STAGE_PHRASES: tuple[tuple[str, str], ...] = (
    (r"\bacute\b|\bstemi\b|\bhyperacute\b|\binjury\b", INFARCTION_STAGES[0]),
    (r"\brecent\b|\bevolving\b", INFARCTION_STAGES[1]),
    (r"\bold\b|\bprior\b|\bremote\b", INFARCTION_STAGES[2]),
    (r"age (?:undetermined|indeterminate)|\binfarct|\bmyocardial infarction\b|\bmi\b", INFARCTION_STAGES[3]),
)
"""(pattern, stage): the first pattern found in a statement that mentions an infarct sets the stage; an infarct
named without an age is of unknown stage. Only statements that mention an infarct are read."""

_INFARCT = re.compile(r"\binfarct|\bmyocardial infarction\b|\bstemi\b|\bmi\b")

EXTRA_SYSTOLE_PHRASES: tuple[tuple[str, str], ...] = (
    (
        r"premature ventric|ventricular premature|\bpvcs?\b|ventricular (?:bi|tri)geminy|ventricular extrasystol",
        EXTRA_SYSTOLE_TYPES[1],
    ),
    (
        r"premature (?:atrial|supraventric|junctional)|(?:atrial|supraventricular|junctional) premature|\bpacs?\b|"
        r"(?:atrial|supraventricular) (?:bi|tri)geminy|supraventricular extrasystol",
        EXTRA_SYSTOLE_TYPES[2],
    ),
    (r"premature (?:complex|beat|contraction)|extrasystol|ectopic beat", EXTRA_SYSTOLE_TYPES[0]),
)
"""(pattern, type): statements naming premature or ectopic beats (a typed one wins over "extrasystoles")."""

PACEMAKER_PHRASES = r"\bpaced\b|pacemaker|\bpacing\b|pacer"


def _value(row: pd.Series, column: str) -> float:
    v = row.get(column)
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return math.nan if not math.isfinite(x) or x >= MISSING_MEASUREMENT else x


def _intervals(row: pd.Series) -> dict[str, tuple[float, float]]:
    """ECG-QA's numeric features (ms) of one study's median beat; unmeasurable ones left out."""
    rr = _value(row, "rr_interval")
    p_on, p_end, q_on, q_end, t_end = (_value(row, c) for c in MEASUREMENT_COLUMNS[1:6])
    qt = t_end - q_on
    values = {
        "rr interval": rr,
        "p duration": p_end - p_on,
        "pr interval": q_on - p_on,
        "qrs duration": q_end - q_on,
        "qt interval": qt,
        "qt corrected": qt / math.sqrt(rr / 1000.0) if rr > 0 else math.nan,
    }
    return {k: (v, v) for k, v in values.items() if math.isfinite(v) and v > 0}


def _statements(row: pd.Series, report_columns: list[str]) -> list[str]:
    return [" ".join(str(row[c]).lower().split()) for c in report_columns if isinstance(row[c], str)]


def _stage(statements: list[str]) -> str | None:
    for text in statements:
        if not _INFARCT.search(text):
            continue
        for pattern, stage in STAGE_PHRASES:
            if re.search(pattern, text):
                return stage
    return None


def _extra_systoles(statements: list[str]) -> frozenset[str]:
    found: set[str] = set()
    for text in statements:
        for pattern, kind in EXTRA_SYSTOLE_PHRASES:
            if re.search(pattern, text):
                found.add(kind)
                break
    if len(found) > 1:
        found.discard(EXTRA_SYSTOLE_TYPES[0])
    return frozenset(found)


def machine_attributes(table: pd.DataFrame) -> list[EcgAttributes]:
    """One :class:`EcgAttributes` per row of a ``machine_measurements.csv``-layout table (same order).

    Columns the table lacks leave their groups out of ``available``; a study whose measurement is missing has
    ``numeric_feature`` / ``heart_axis`` unavailable."""
    report_columns = sorted(
        (c for c in table.columns if REPORT_COLUMN.match(str(c))), key=lambda c: int(c[7:])
    )
    has_measurements = all(c in table.columns for c in MEASUREMENT_COLUMNS[:6])
    out = []
    for _, row in table.iterrows():
        available: set[str] = set()
        numeric = _intervals(row) if has_measurements else {}
        if numeric:
            available.add("numeric_feature")
        axis_deg = _value(row, "qrs_axis")
        axis = None
        if math.isfinite(axis_deg) and -180.0 <= axis_deg <= 360.0:
            axis = axis_class(((axis_deg + 180.0) % 360.0) - 180.0)
            available.add("heart_axis")
        stage, extra, paced = None, frozenset[str](), False
        if report_columns:
            statements = _statements(row, report_columns)
            stage, extra = _stage(statements), _extra_systoles(statements)
            paced = any(re.search(PACEMAKER_PHRASES, s) for s in statements)
            available |= {"stage_of_infarction", "extra_systole", "pacemaker"}
        out.append(
            EcgAttributes(
                extra_systoles=extra,
                heart_axis=axis,
                infarction_stage=stage,
                pacemaker=paced,
                numeric_ms=numeric,
                available=frozenset(available),
            )
        )
    return out


def machine_report(row: pd.Series) -> str:
    """The cart's statements of one study joined into one report ("" without report columns)."""
    cols = sorted((c for c in row.index if REPORT_COLUMN.match(str(c))), key=lambda c: int(str(c)[7:]))
    return ". ".join(str(row[c]).strip() for c in cols if isinstance(row[c], str) and row[c].strip())
