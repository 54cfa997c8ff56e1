"""What the ECG-QA templates that combine findings ask, in one table shared by the question writer and the answerer.

- :data:`COMPARISON_RULES`: the 28 two-ECG templates (43-56 consecutive, 57-70 irrelevant). Each asks whether a
  rule holds for what the first and the second ECG show: an SCP statement present / absent, or a numeric feature
  abnormal / normal (ECG-QA's ranges, :meth:`EcgAttributes.abnormal_features`).
- :data:`ANY_OF_TEMPLATES` / :func:`any_of_statements`: the single-ECG "any ..." templates (13, 14, 16): yes when the
  ECG shows any statement of a pool.

The synthetic question writer (:mod:`encoder.synth.questions`) writes gold answers with these rules and the aux-head
answerer (:mod:`llm_finetune.vqa.comparison_answerer`) applies them to predictions, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Literal

from encoder.ecgqa.templates import TEMPLATES

Holds = Callable[[bool, bool], bool]
"""(first ECG shows it, second ECG shows it) -> whether the template's relation holds."""


def newly(first: bool, second: bool) -> bool:
    """Absent in the first ECG, present in the second (new SCP statement; numeric: normal -> abnormal)."""
    return second and not first


def gone(first: bool, second: bool) -> bool:
    """Present in the first ECG, absent in the second (SCP statement disappeared; numeric: abnormal -> normal)."""
    return first and not second


def both(first: bool, second: bool) -> bool:
    """Present in both ECGs (still present; numeric: still abnormal)."""
    return first and second


def neither(first: bool, second: bool) -> bool:
    """Absent in both ECGs (numeric: still normal)."""
    return not first and not second


def differs(first: bool, second: bool) -> bool:
    """Present in one ECG only (a changed SCP statement)."""
    return first != second


@dataclass(frozen=True)
class ComparisonRule:
    """One comparison template: what "shows" means, what is asked, and the relation between the two ECGs."""

    template_id: int
    attribute: Literal["scp", "numeric"]
    """``scp``: the ECG shows the SCP statement; ``numeric``: the feature is outside ECG-QA's normal range."""
    kind: Literal["verify", "query", "changed"]
    """verify: yes/no for the question's one attribute; query: the template's options for which the relation holds
    (else ``none``); changed: yes when the relation holds for any statement of :func:`compared_statements`."""
    holds: Holds


_BLOCK: tuple[tuple[Literal["scp", "numeric"], Literal["verify", "query", "changed"], Holds], ...] = (
    ("scp", "verify", newly),  # Is {attr} newly detected in the second ECG ...?
    ("scp", "verify", gone),  # Has {attr} of the first ECG disappeared in the second ECG?
    ("scp", "verify", both),  # Is {attr} of the first ECG still present in the second ECG?
    ("scp", "changed", differs),  # Are there any symptoms of the second ECG that have changed ...?
    ("scp", "query", newly),
    ("scp", "query", gone),
    ("scp", "query", both),
    ("numeric", "verify", gone),  # ... now become normal
    ("numeric", "verify", newly),  # ... now considered an abnormal value
    ("numeric", "verify", both),  # ... still abnormal
    ("numeric", "verify", neither),  # ... still normal
    ("numeric", "query", gone),
    ("numeric", "query", newly),
    ("numeric", "query", both),
)
"""The 14 templates of one comparison block, in template-id order (the wordings are in ``templates.py``)."""

COMPARISON_RULES: dict[int, ComparisonRule] = {
    start + i: ComparisonRule(start + i, attribute, kind, holds)
    for start in (43, 57)
    for i, (attribute, kind, holds) in enumerate(_BLOCK)
}
"""Template id (43-70) -> :class:`ComparisonRule`."""


@cache
def compared_statements() -> tuple[str, ...]:
    """The SCP statements the comparison templates ask about: the options of their query templates, less ``none``."""
    ids = [t for t, r in COMPARISON_RULES.items() if r.attribute == "scp" and r.kind == "query"]
    return tuple(sorted({o for t in ids for o in TEMPLATES[t].options} - {"none"}))


ANY_OF_TEMPLATES: dict[int, int | None] = {13: 8, 14: 11, 16: None}
""""Does this ECG show any ... symptoms?" template -> the template whose options are its statement pool (13: the
diagnostic statements of template 8, 14: the form statements of template 11); ``None``: every compared statement
except sinus rhythm (16, "any abnormal symptoms")."""


def any_of_statements(template_id: int) -> tuple[str, ...]:
    """The SCP statements (ECG-QA answer strings) an "any ..." template asks about."""
    source = ANY_OF_TEMPLATES[template_id]
    if source is None:
        return tuple(s for s in compared_statements() if s != "sinus rhythm")
    return tuple(o for o in TEMPLATES[source].options if o != "none")
