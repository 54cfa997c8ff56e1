"""The hint line of a two-ECG question: what changed from the first ECG to the second, by the heads' own verdicts.

ECG-QA's comparison questions ask which statements are new, gone or still present in the second ECG, or which
numeric features became abnormal, became normal or stay abnormal. Each ECG's findings line lists only its top
findings, so the LLM would have to diff two partial lists. This line states the diff over every statement the
comparison templates ask about (:func:`encoder.ecgqa.rules.compared_statements`) with the relations the question
writer and the aux-head answerer use (:mod:`encoder.ecgqa.rules`), so the two cannot drift apart:

    ``Changes ECG 1 -> ECG 2: new: atrial fibrillation; gone: sinus rhythm; still present: none.``
    ``Abnormal values ECG 1 -> ECG 2: now abnormal: qt interval; now normal: none; still abnormal: rr interval.``
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from encoder.ecgqa.attributes import NUMERIC_FEATURES, EcgAttributes
from encoder.ecgqa.rules import Holds, both, compared_statements, gone, newly

STATEMENT_CHANGES: tuple[tuple[str, Holds], ...] = (("new", newly), ("gone", gone), ("still present", both))
NUMERIC_CHANGES: tuple[tuple[str, Holds], ...] = (
    ("now abnormal", newly),
    ("now normal", gone),
    ("still abnormal", both),
)


def is_numeric_question(question: str) -> bool:
    """Whether a question asks about numeric features (names one, or says "numeric feature")."""
    text = question.lower()
    return "numeric feature" in text or any(f in text for f in NUMERIC_FEATURES)


def _line(
    title: str, changes: Sequence[tuple[str, Holds]], verdicts: Iterable[tuple[str, bool, bool]]
) -> str:
    groups: dict[str, list[str]] = {name: [] for name, _ in changes}
    for statement, first, second in verdicts:
        for name, holds in changes:
            if holds(first, second):
                groups[name].append(statement)
    body = "; ".join(f"{name}: {', '.join(items) or 'none'}" for name, items in groups.items())
    return f"{title} ECG 1 -> ECG 2: {body}."


def statement_change_line(shown: dict[str, tuple[bool, bool]]) -> str:
    """``shown``: ECG-QA statement -> (the first ECG shows it, the second shows it); statements the comparison
    templates do not ask about are left out."""
    asked = set(compared_statements())
    return _line("Changes", STATEMENT_CHANGES, ((s, *v) for s, v in sorted(shown.items()) if s in asked))


def numeric_change_line(first: EcgAttributes, second: EcgAttributes) -> str | None:
    """The numeric features whose abnormal / normal verdict holds each relation; None when either ECG has no
    measured features."""
    if any("numeric_feature" not in a.available or not a.numeric_ms for a in (first, second)):
        return None
    a, b = first.abnormal_features(), second.abnormal_features()
    return _line("Abnormal values", NUMERIC_CHANGES, ((f, f in a, f in b) for f in NUMERIC_FEATURES))
