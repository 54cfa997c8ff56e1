"""Answers ECG-QA's two-ECG (comparison) questions from each ECG's own predictions and the template's rule.

Each of the two ECGs gets its own verdict on the attribute asked about — an SCP statement from that ECG's calibrated
label probabilities (the single-ECG verdict, :meth:`~llm_finetune.vqa.baselines.AuxHeadAnswerer.label_verdicts`),
a numeric feature's "abnormal" from that ECG's decoded multi-task attributes (:func:`numeric_verdicts`) — and the
template's relation (:data:`encoder.ecgqa.rules.COMPARISON_RULES`, the one the question writer uses) turns the pair
into the answer. An attribute no head predicts has no verdict: a verify question about it abstains; a query or
"changed" question abstains when fewer than ``min_coverage`` of its candidates have a verdict (the others count as
shown by neither ECG).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from encoder.ecgqa.attributes import NUMERIC_FEATURES, EcgAttributes
from encoder.ecgqa.rules import ComparisonRule, compared_statements
from llm_finetune.vqa.normalize import canon

Verdicts = Callable[[str], tuple[bool, bool] | None]
"""Attribute text -> (the first ECG shows it, the second shows it), or ``None`` when no head predicts it."""

Answer = list[str] | None


def numeric_verdicts(first: EcgAttributes | None, second: EcgAttributes | None) -> Verdicts:
    """Feature -> (abnormal in the first ECG, abnormal in the second); ``None`` when either ECG has no numeric head
    or the feature is not measured in it."""

    def verdict(feature: str) -> tuple[bool, bool] | None:
        f = canon(feature)
        if first is None or second is None or f not in NUMERIC_FEATURES:
            return None
        if any("numeric_feature" not in a.available or not a.numeric_classes(f) for a in (first, second)):
            return None
        return f in first.abnormal_features(), f in second.abnormal_features()

    return verdict


def _yes_no(truth: bool) -> list[str]:
    return ["yes" if truth else "no"]


def _known(
    candidates: Sequence[str], verdicts: Verdicts, min_coverage: float
) -> list[tuple[str, tuple]] | None:
    """(candidate, verdict) for the candidates with a verdict; ``None`` when too few have one."""
    known = [(c, v) for c in candidates if (v := verdicts(c)) is not None]
    return known if known and len(known) >= min_coverage * len(candidates) else None


def answer_comparison(
    rule: ComparisonRule,
    attributes: Sequence[str],
    options: Sequence[str],
    verdicts: Verdicts,
    min_coverage: float,
) -> Answer:
    """Answer set of one comparison question, or ``None`` to abstain.

    ``attributes``: the question's attribute values (the statement / feature of a verify question); ``options``:
    the template's answer options (the candidates of a query question).
    """
    if rule.kind == "verify":
        if len(attributes) != 1 or (v := verdicts(attributes[0])) is None:
            return None
        return _yes_no(rule.holds(*v))
    if rule.kind == "changed":
        known = _known(compared_statements(), verdicts, min_coverage)
        return None if known is None else _yes_no(any(rule.holds(*v) for _, v in known))
    known = _known([o for o in options if canon(o) != "none"], verdicts, min_coverage)
    if known is None:
        return None
    return [o for o, v in known if rule.holds(*v)] or ["none"]
