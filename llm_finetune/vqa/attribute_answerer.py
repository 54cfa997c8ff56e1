"""Answers single-ECG ECG-QA questions about attributes beyond SCP codes from stage 1's multi-task aux head.

The head's outputs are decoded into a predicted :class:`~encoder.ecgqa.attributes.EcgAttributes`
(:func:`encoder.multitask.decode`); one rule per attribute type (:data:`RULES`) answers verify / choose / query
questions from it (:data:`TEMPLATE_RULES` for templates that are not one attribute lookup, such as template
15's pacemaker). A question is written against a small protocol (ECG-QA's JSON fields): ``question_type``,
``attribute_type``, ``template_id``, ``attribute`` (list of strings), ``question`` and the template's options;
the lead it asks about is read from the attribute or question text. A question no rule can answer is an
abstention, counted per template (:attr:`AttributeAnswerer.abstained`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from encoder.ecgqa.attributes import (
    AXIS_CLASSES,
    EXTRA_SYSTOLE_TYPES,
    FORM_LEAD_CODES,
    INFARCTION_STAGES,
    LEADS,
    NOISE_TYPES,
    NUMERIC_FEATURES,
    EcgAttributes,
)
from llm_finetune.vqa.normalize import canon

_LEAD = re.compile(r"\blead\s+(" + "|".join(sorted(LEADS, key=len, reverse=True)) + r")\b", re.IGNORECASE)
_RANGE_WORDS = ("below the normal range", "within the normal range", "above the normal range")
_ANY_NOISE = ("noise", "any kind of noises")
"""Attribute values that ask about noise of any type (templates 28, 29)."""


@dataclass(frozen=True)
class Question:
    """What a rule needs of one question."""

    question_type: str
    attribute_type: str
    template_id: int
    attributes: tuple[str, ...]
    """The question's attribute values without lead mentions (canonical text)."""
    lead: int | None
    """Index into :data:`LEADS` of the lead the question is about, or ``None``."""
    options: tuple[str, ...]
    """The template's answer options (canonical text)."""
    text: str

    @property
    def kind(self) -> str:
        return self.question_type.rsplit("-", 1)[-1]  # verify | choose | query


def lead_index(text: str) -> int | None:
    """Index of the lead named as ``lead X`` in ``text`` (or ``text`` being a bare lead name)."""
    m = _LEAD.search(text)
    name = m.group(1) if m else text.strip()
    by_lower = {lead.lower(): i for i, lead in enumerate(LEADS)}
    return by_lower.get(name.lower())


def parse_question(record: dict, options: Sequence[str]) -> Question:
    attrs = record.get("attribute") or []
    attrs = [attrs] if isinstance(attrs, str) else list(attrs)
    leads = [lead_index(a) for a in attrs if _LEAD.search(a) or lead_index(a) is not None]
    lead = leads[0] if leads else lead_index_in(str(record.get("question", "")))
    plain = tuple(canon(a) for a in attrs if not (_LEAD.search(a) or lead_index(a) is not None))
    return Question(
        str(record.get("question_type", "")),
        str(record.get("attribute_type", "")),
        int(record.get("template_id", -1)),
        plain,
        lead,
        tuple(canon(o) for o in options),
        str(record.get("question", "")),
    )


def lead_index_in(question: str) -> int | None:
    m = _LEAD.search(question)
    return lead_index(m.group(0)) if m else None


Answer = list[str] | None
Rule = Callable[[EcgAttributes, Question], Answer]


def _set_answer(q: Question, present: Sequence[str], universe: Sequence[str]) -> Answer:
    """verify: yes/no on the one attribute; choose / query: the present options, else ``none`` (a query: the
    template's own "none ..." option, e.g. "none of myocardial infarction")."""
    if q.kind == "verify":
        if len(q.attributes) != 1 or q.attributes[0] not in universe:
            return None
        return ["yes" if q.attributes[0] in present else "no"]
    pool = q.attributes if q.kind == "choose" else q.options
    picked = [o for o in pool if o in present]
    none = next((o for o in q.options if o.startswith("none")), "none") if q.kind == "query" else "none"
    return picked or [none]


def _lead_names(mask: Sequence[bool]) -> list[str]:
    return [canon(f"lead {lead}") for lead, on in zip(LEADS, mask, strict=True) if on]


def _leads_query(q: Question, mask: Sequence[bool]) -> Answer:
    """Which-leads questions: options are leads (``lead I`` or ``I``)."""
    names = set(_lead_names(mask)) | {canon(lead) for lead, on in zip(LEADS, mask, strict=True) if on}
    picked = [o for o in q.options if o in names]
    return picked or ["none"]


def _asks_for_leads(q: Question) -> bool:
    return q.kind == "query" and any(lead_index(o) is not None for o in q.options)


def _noise(p: EcgAttributes, q: Question) -> Answer:
    types = [t for t in q.attributes if t in NOISE_TYPES]
    if _asks_for_leads(q):
        return _leads_query(q, p.noisy_leads(types[0] if types else None))
    if q.lead is not None:
        present = [t for t in NOISE_TYPES if p.noise.get(t, (False,) * 12)[q.lead]]
    else:
        present = [t for t in NOISE_TYPES if any(p.noise.get(t, ()))]
    if q.kind == "verify" and q.attributes and q.attributes[0] in _ANY_NOISE:
        return ["yes" if present else "no"]
    return _set_answer(q, present, NOISE_TYPES)


def _extra_systole(p: EcgAttributes, q: Question) -> Answer:
    if q.kind == "verify" and not q.attributes:  # any kind of extra systoles (template 36)
        return ["yes" if p.extra_systoles else "no"]
    return _set_answer(q, sorted(p.extra_systoles), EXTRA_SYSTOLE_TYPES)


def _heart_axis(p: EcgAttributes, q: Question) -> Answer:
    return _set_answer(q, [p.heart_axis] if p.heart_axis else [], AXIS_CLASSES)


def _stage(p: EcgAttributes, q: Question) -> Answer:
    return _set_answer(q, [p.infarction_stage] if p.infarction_stage else [], INFARCTION_STAGES)


def _features(q: Question) -> list[str]:
    """The numeric features the question names: in its attribute, else in its text (a choose question's attribute
    holds the two ranges)."""
    named = [a for a in q.attributes if a in NUMERIC_FEATURES]
    return named or [f for f in NUMERIC_FEATURES if f in canon(q.text)]


def _numeric(p: EcgAttributes, q: Question) -> Answer:
    features = [a for a in q.attributes if a in NUMERIC_FEATURES]
    if q.kind != "verify" and any(o in _RANGE_WORDS for o in q.options):
        features = _features(q)
        classes = p.numeric_classes(features[0]) if len(features) == 1 else set()
        if not classes:
            return None
        if q.kind == "choose":
            return [a for a in q.attributes if a in classes] or ["none"]
        return [o for o in q.options if o in classes] or None
    abnormal = sorted(p.abnormal_features())
    if q.kind == "verify":
        if len(features) != 1:
            return None
        words = [w for w in _RANGE_WORDS if w in canon(q.text)]
        if words:
            return ["yes" if words[0] in p.numeric_classes(features[0]) else "no"]
        return ["yes" if features[0] in abnormal else "no"]
    return _set_answer(q, abnormal, NUMERIC_FEATURES)


def _form_lookup() -> dict[str, str]:
    """Canonical code or ECG-QA text -> form-statement code of :data:`FORM_LEAD_CODES`."""
    from encoder.labels import scp_code_aliases

    names = scp_code_aliases()
    return {canon(k): code for code in FORM_LEAD_CODES for k in (code, names.get(code, code))}


def _form_code(q: Question) -> str | None:
    """The form-statement code (of :data:`FORM_LEAD_CODES`) the question names, by code or ECG-QA text."""
    lookup = _form_lookup()
    return next((lookup[a] for a in q.attributes if a in lookup), None)


def _forms_in_lead(p: EcgAttributes, q: Question, lead: int) -> Answer:
    """The form-statement options shown in the question's lead ``lead`` (template 18), else ``none``."""
    lookup = _form_lookup()
    shown = [o for o in q.options if o in lookup and p.form_leads.get(lookup[o], (False,) * len(LEADS))[lead]]
    return shown or ["none"]


def _scp_leads(p: EcgAttributes, q: Question) -> Answer:
    """Lead-specific form statements (the only SCP questions this answerer takes)."""
    code = _form_code(q)
    if "form_leads" not in p.available:
        return None
    if code is None:
        return _forms_in_lead(p, q, q.lead) if q.kind == "query" and q.lead is not None else None
    mask = p.form_leads.get(code, (False,) * len(LEADS))
    if _asks_for_leads(q):
        return _leads_query(q, mask)
    if q.kind == "verify" and q.lead is not None:
        return ["yes" if mask[q.lead] else "no"]
    return None


def _pacemaker(p: EcgAttributes, q: Question) -> Answer:
    return ["yes" if p.pacemaker else "no"] if q.kind == "verify" else None


TEMPLATE_RULES: dict[int, tuple[str, Rule]] = {15: ("pacemaker", _pacemaker)}
"""Template id -> (the aux-head group it needs, rule), for templates that are not one attribute lookup."""

RULES: dict[str, tuple[str, Rule]] = {
    "noise": ("noise", _noise),
    "extra_systole": ("extra_systole", _extra_systole),
    "heart_axis": ("heart_axis", _heart_axis),
    "stage_of_infarction": ("stage_of_infarction", _stage),
    "numeric_feature": ("numeric_feature", _numeric),
    "scp_code": ("form_leads", _scp_leads),
}
"""ECG-QA attribute type -> (the aux-head group it needs, rule)."""


@dataclass
class AttributeAnswerer:
    """Answers single-ECG questions from one ECG's predicted attributes; counts abstentions per template."""

    answered: Counter = field(default_factory=Counter)
    abstained: Counter = field(default_factory=Counter)

    def answer(self, record: dict, options: Sequence[str], predicted: EcgAttributes) -> Answer:
        """Answer set for ``record`` from ``predicted``, or ``None`` to abstain."""
        q = parse_question(record, options)
        out = None
        rule = TEMPLATE_RULES.get(q.template_id) or RULES.get(q.attribute_type)
        if q.question_type.startswith("single-") and rule is not None and rule[0] in predicted.available:
            out = rule[1](predicted, q)
        self.count(q.template_id, out)
        if out is None:
            return None
        # the rules work on canonical text; answer in the options' own spelling
        spelling = {canon(o): o for o in options}
        return [spelling.get(a, a) for a in out]

    def count(self, template_id: int, out: Answer) -> None:
        """Count one answer (``out``) or abstention (``None``) of the template."""
        (self.answered if out is not None else self.abstained)[template_id] += 1

    def coverage(self) -> dict[int, dict[str, int]]:
        """Template id -> answered / abstained counts."""
        ids = sorted(set(self.answered) | set(self.abstained))
        return {t: {"answered": self.answered[t], "abstained": self.abstained[t]} for t in ids}
