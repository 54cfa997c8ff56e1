"""Hint lines from an ECG's decoded multi-task head outputs (:class:`EcgAttributes`): one line per attribute group.

A name -> (question pattern, formatter) registry (:data:`ATTRIBUTE_LINES`, keys are ``EcgAttributes.available``
groups). A formatter takes the ECG's attributes and the ECG-QA names of the form statements the label head calls
present, and returns the line's text after its ``"<Title>: "`` / ``"<Title> ECG 2: "`` prefix. Leads are written
bare (``I, aVF, V5``), intervals in ms with their class (``low`` / ``normal`` / ``high`` = below / within / above
ECG-QA's normal range), so query answers can be read off the prompt. ``PromptBuilder`` decides which lines a
question gets; the pattern says which questions a line is relevant to (``attribute_hint: asked``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from encoder.ecgqa.attributes import LEADS, NOISE_TYPES, NUMERIC_FEATURES, EcgAttributes

RANGE_WORDS: dict[str, str] = {
    "below the normal range": "low",
    "within the normal range": "normal",
    "above the normal range": "high",
}
"""ECG-QA range class -> the short word the hint uses."""


def lead_list(mask: Sequence[bool]) -> str:
    """``(True, False, ..., True)`` -> ``"I, V6"``."""
    return ", ".join(lead for lead, on in zip(LEADS, mask, strict=True) if on)


def _noise(a: EcgAttributes, _: Sequence[tuple[str, Sequence[bool]]]) -> str:
    """``baseline drift in I, II; static noise in V1`` (``none``)."""
    parts = [f"{t} in {lead_list(a.noise[t])}" for t in NOISE_TYPES if any(a.noise.get(t, ()))]
    return "; ".join(parts) or "none"


def _extra_systole(a: EcgAttributes, _) -> str:
    return ", ".join(sorted(a.extra_systoles)) or "none"


def _heart_axis(a: EcgAttributes, _) -> str:
    return a.heart_axis or "undetermined"


def _stage(a: EcgAttributes, _) -> str:
    """``old`` for "old stage of myocardial infarction"; ``none``."""
    return a.infarction_stage.split(" stage", 1)[0] if a.infarction_stage else "none"


def _pacemaker(a: EcgAttributes, _) -> str:
    return "yes" if a.pacemaker else "no"


def _interval(a: EcgAttributes, feature: str) -> str | None:
    lo_hi = a.numeric_ms.get(feature)
    classes = a.numeric_classes(feature)
    if lo_hi is None or not classes:
        return None
    words = "/".join(w for c, w in RANGE_WORDS.items() if c in classes)
    lo, hi = (round(v) for v in lo_hi)
    return f"{feature} {lo}-{hi} ms {words}" if lo != hi else f"{feature} {lo} ms {words}"


def _numeric(a: EcgAttributes, _) -> str:
    """``rr interval 810-845 ms normal, qrs duration 118-126 ms high; abnormal: qrs duration``."""
    parts = [p for p in (_interval(a, f) for f in NUMERIC_FEATURES) if p is not None]
    abnormal = [f for f in NUMERIC_FEATURES if f in a.abnormal_features()]
    return f"{', '.join(parts) or 'not measured'}; abnormal: {', '.join(abnormal) or 'none'}"


def _form_leads(_: EcgAttributes, present: Sequence[tuple[str, Sequence[bool]]]) -> str:
    """``non-specific st changes in V5, V6; inverted t-waves in V1`` for the form statements present."""
    parts = [f"{name} in {lead_list(mask)}" for name, mask in present if any(mask)]
    return "; ".join(parts) or "none"


@dataclass(frozen=True)
class AttributeLine:
    """One group's hint line: its title, the questions it is relevant to and its formatter."""

    title: str
    pattern: re.Pattern[str]
    text: Callable[[EcgAttributes, Sequence[tuple[str, Sequence[bool]]]], str]


def _words(*words: str) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(words) + r")", re.IGNORECASE)


_LEAD_QUESTION = r"lead\b|what leads|which leads"  # "lead V1", "lead by lead"; not "... in inferior leads"


ATTRIBUTE_LINES: dict[str, AttributeLine] = {
    "noise": AttributeLine("Noise", _words("nois", "drift", "electrode", _LEAD_QUESTION), _noise),
    "extra_systole": AttributeLine("Extra systoles", _words("extra ?systol", "premature"), _extra_systole),
    "heart_axis": AttributeLine("Heart axis", _words("axis"), _heart_axis),
    "stage_of_infarction": AttributeLine("Infarction stage", _words("stage"), _stage),
    "pacemaker": AttributeLine("Pacemaker", _words("pace"), _pacemaker),
    "numeric_feature": AttributeLine(
        "Intervals",
        _words("numeric", "interval", "duration", "qt corrected", "range", "normal value", "abnormal value"),
        _numeric,
    ),
    "form_leads": AttributeLine("Form leads", _words(_LEAD_QUESTION), _form_leads),
}
"""Group -> hint line, in prompt order; only groups the ECG's attributes have (``available``) are written."""

DESCRIBE = _words("describe", "what does this ecg show", "report", "interpret", "summar")
"""Open questions that get every line under ``attribute_hint: asked``."""


def relevant_groups(question: str) -> list[str]:
    """The groups whose lines a question is about (every group for an open "describe" question)."""
    if DESCRIBE.search(question):
        return list(ATTRIBUTE_LINES)
    return [g for g, line in ATTRIBUTE_LINES.items() if line.pattern.search(question)]


def attribute_lines(
    attributes: Sequence[EcgAttributes],
    present_forms: Sequence[Sequence[tuple[str, Sequence[bool]]]],
    question: str | None = None,
) -> list[str]:
    """Hint lines of one question's ECGs (all of ECG 1's lines, then ECG 2's); ``question`` given = only the
    groups whose pattern it matches (every group for an open "describe" question)."""
    groups = list(ATTRIBUTE_LINES) if question is None else relevant_groups(question)
    out = []
    for i, (a, forms) in enumerate(zip(attributes, present_forms, strict=True)):
        where = "" if len(attributes) == 1 else f" ECG {i + 1}"
        out += [
            f"{ATTRIBUTE_LINES[g].title}{where}: {ATTRIBUTE_LINES[g].text(a, forms)}."
            for g in groups
            if g in a.available
        ]
    return out
