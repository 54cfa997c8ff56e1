"""Baselines scored by the same harness as the model.

- :func:`fit_majority` / :func:`majority_answer`: the most frequent answer set of each template.
- Text-only: the same LLM with the ECG tokens removed (``EcgChat.generate_batch(use_ecg=False)``); it
  lives in :mod:`llm_finetune.vqa.evaluate` because it is a generation run like the model's.
- :class:`AuxHeadAnswerer`: answers single-ECG verify / choose / query questions straight from the stage-1
  classifier's calibrated label probabilities, like ECG-QA's upper-bound (classification) models do.
  A question is answered only when the attributes / options it needs map to the classifier's labels;
  other questions are abstentions (reported as coverage, scored as wrong).
- :meth:`AuxHeadAnswerer.answer_all`: every template — SCP-code questions from the label probabilities, the other
  attribute types and lead-specific form statements from the multi-task head's decoded attributes
  (:class:`llm_finetune.vqa.attribute_answerer.AttributeAnswerer`), two-ECG comparisons from each ECG's own
  predictions and the template's rule (:mod:`llm_finetune.vqa.comparison_answerer`); abstentions are counted per
  template.
- :func:`agreement`: how often the LLM's answer equals the aux head's (a hallucination flag).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache

import numpy as np

from encoder.ecgqa.attributes import NO_LEADS, EcgAttributes
from encoder.ecgqa.rules import ANY_OF_TEMPLATES, COMPARISON_RULES, any_of_statements
from encoder.heads import decision_log_odds, label_verdict
from encoder.labels import scp_code_aliases
from llm_finetune.vqa.attribute_answerer import AttributeAnswerer, parse_question
from llm_finetune.vqa.comparison_answerer import Verdicts, answer_comparison, numeric_verdicts
from llm_finetune.vqa.normalize import canon
from llm_finetune.vqa.scoring import answer_set

_LEAD_MENTION = re.compile(r"\b(lead|leads)\b", re.IGNORECASE)
_RULE_ATTRIBUTE = {"scp_code": "scp", "numeric_feature": "numeric"}
"""ECG-QA attribute type -> the :class:`~encoder.ecgqa.rules.ComparisonRule` attribute it is compared by."""


def _mentions_leads(question: str, attributes: Sequence[str]) -> bool:
    """Whether the question asks about particular leads; attribute names such as "myocardial infarction in
    inferior leads" do not count (they are whole-ECG statements)."""
    for attribute in attributes:
        question = re.sub(re.escape(attribute), " ", question, flags=re.IGNORECASE)
    return bool(_LEAD_MENTION.search(question))


def fit_majority(records: Iterable[dict]) -> dict:
    """Most frequent answer set per template (ties: the lexicographically smallest set).

    Returns ``{"by_template": {template_id: [answers]}, "by_question_type": {...}, "overall": [...]}``;
    the coarser levels answer templates never seen in ``records``.
    """
    counts: dict = {"by_template": defaultdict(Counter), "by_question_type": defaultdict(Counter)}
    overall: Counter = Counter()
    for r in records:
        key = tuple(sorted(answer_set(r["answer"])))
        counts["by_template"][int(r["template_id"])][key] += 1
        counts["by_question_type"][str(r["question_type"])][key] += 1
        overall[key] += 1

    def top(c: Counter) -> list[str]:
        return list(min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0])

    return {
        "by_template": {k: top(c) for k, c in counts["by_template"].items()},
        "by_question_type": {k: top(c) for k, c in counts["by_question_type"].items()},
        "overall": top(overall) if overall else ["none"],
    }


def majority_answer(model: dict, record: dict) -> list[str]:
    """The majority answer for one record (template, else question type, else overall)."""
    tid = int(record["template_id"])
    if tid in model["by_template"]:
        return model["by_template"][tid]
    return model["by_question_type"].get(str(record["question_type"]), model["overall"])


def label_lookup(label_names: Sequence[str]) -> dict[str, list[int]]:
    """Canonical ECG-QA answer text -> indices of the classifier labels that stand for it.

    Label names may be SCP codes (``"IMI"``), superclasses (``"MI"``) or descriptions; each is mapped to
    ECG-QA's spelling (``"myocardial infarction in inferior leads"``) through the shipped SCP statements.
    A PTB-XL superclass the classifier lacks (``"myocardial infarction"``) is derived from its member codes
    (any member positive -> positive).
    """
    from encoder.labels import ScpStatements

    aliases = {canon(k): v for k, v in scp_code_aliases().items()}
    lookup: dict[str, list[int]] = {}
    for i, name in enumerate(label_names):
        keys = {canon(name)}
        target = aliases.get(canon(name))
        if target:
            keys.add(canon(target))
        for k in keys:
            lookup.setdefault(k, [i])
    statements = ScpStatements.load()
    members: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(label_names):
        if name in statements:
            sup = statements.diagnostic_class_of(name)
            if sup and sup != "NORM":
                members[canon(aliases.get(canon(sup), sup))].append(i)
    for k, idx in members.items():
        lookup.setdefault(k, idx)
    return lookup


@cache
def superclass_of_statements() -> dict[str, str]:
    """Canonical ECG-QA text of a diagnostic SCP statement -> canonical ECG-QA text of its PTB-XL superclass."""
    from encoder.labels import ScpStatements

    aliases = scp_code_aliases()
    statements = ScpStatements.load()
    out = {}
    for code in statements.statements:
        sup = statements.diagnostic_class_of(code)
        if sup and sup != "NORM":
            out[canon(aliases.get(code, code))] = canon(aliases.get(sup, sup))
    return out


@dataclass
class AuxHeadAnswerer:
    """Answers ECG-QA questions from per-label probabilities of one ECG (see the module docstring).

    verify: yes/no for the one attribute (an "any ..." template: whether any statement of its pool is positive).
    choose: the attributes that are positive, else ``none`` (or the more likely one when the template has no
    ``none``). query: the template's options that are positive,
    else ``none``; options without a classifier label count as absent, and a query is answered only when at
    least ``min_query_coverage`` of its options have one.
    """

    label_names: Sequence[str]
    """The classifier's label names, in output order."""
    thresholds: Sequence[float] | None = None
    """Per-label decision thresholds (the encoder config's ``label_thresholds``); ``None`` -> 0.5."""
    min_query_coverage: float = 0.25
    """Share of a query template's (non-``none``) options that must map to labels for it to be answered."""
    logit_shifts: Sequence[float | None] | None = None
    """Per-label log-odds shifts for the labels a question names (``llm_finetune.question_prior``): a label
    with a shift is positive when its shifted log-odds are above 0, the others use their threshold."""
    change_margin: float = 4.0
    """Consecutive-comparison questions (two ECGs of one patient, by the record's ``question_type``): when the
    two ECGs' verdicts on a statement differ but their decision log-odds (:func:`encoder.heads.decision_log_odds`)
    are less than this far apart, both get the verdict of their mean, so a change is claimed only when the
    evidence moved that much (0 = each ECG's own verdict). Two ECGs of different patients always keep their own
    verdicts. The default was chosen on the quickstart cohort's valid split (docs/results.md)."""
    attributes: AttributeAnswerer = field(default_factory=AttributeAnswerer)
    """Answers (and counts) the questions the label probabilities cannot."""
    _lookup: dict[str, list[int]] = field(init=False, repr=False)
    _thresholds: Sequence[float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lookup = label_lookup(self.label_names)
        if self.thresholds is None or len(self.thresholds) != len(self.label_names):
            self.thresholds = [0.5] * len(self.label_names)
        self._thresholds = self.thresholds

    def label_index(self, text: str) -> list[int] | None:
        """Indices of the label(s) an attribute / option text refers to, or ``None``."""
        return self._lookup.get(canon(text))

    def positive(self, probs: np.ndarray, idx: list[int]) -> bool:
        shifts = self.logit_shifts
        return any(
            label_verdict(probs[i], self._thresholds[i], shifts[i] if shifts is not None else None)
            for i in idx
        )

    def label_verdicts(self, probs: np.ndarray, change_margin: float = 0.0) -> Verdicts:
        """Statement text -> (positive in the first ECG, positive in the second) from ``probs`` (2, L), rows in the
        question's ECG order; ``None`` for a statement without a label. ``change_margin``: see the field."""

        def verdict(text: str) -> tuple[bool, bool] | None:
            idx = self.label_index(text)
            if idx is None:
                return None
            first, second = self.positive(probs[0], idx), self.positive(probs[1], idx)
            if first != second and change_margin > 0:
                z1, z2 = self.log_odds(probs[0], idx), self.log_odds(probs[1], idx)
                if abs(z1 - z2) < change_margin:
                    first = second = (z1 + z2) / 2 >= 0
            return first, second

        return verdict

    def log_odds(self, probs: np.ndarray, idx: list[int]) -> float:
        """The decision log-odds of a statement (the largest over its labels: it is shown when any label is)."""
        shifts = self.logit_shifts
        return max(
            decision_log_odds(probs[i], self._thresholds[i], shifts[i] if shifts is not None else None)
            for i in idx
        )

    def _any_of(self, template_id: int, probs: np.ndarray) -> list[str] | None:
        """yes when any statement of the template's pool is positive; abstains when too few have a label."""
        pool = any_of_statements(template_id)
        mapped = [g for s in pool if (g := self.label_index(s)) is not None]
        if not mapped or len(mapped) < self.min_query_coverage * len(pool):
            return None
        return ["yes" if any(self.positive(probs, g) for g in mapped) else "no"]

    def answer(self, record: dict, options: Sequence[str], probs: np.ndarray) -> list[str] | None:
        """Answer set for ``record`` from ``probs`` ((L,) of its single ECG), or ``None`` to abstain."""
        qtype = str(record.get("question_type", ""))
        attrs = record.get("attribute") or []
        if isinstance(attrs, str):
            attrs = [attrs]
        if not qtype.startswith("single-") or _mentions_leads(str(record.get("question", "")), attrs):
            return None  # comparisons need two ECGs' semantics; lead-specific questions a lead-wise model
        has_none = any(canon(o) == "none" for o in options)
        if qtype == "single-verify":
            if not attrs and int(record.get("template_id", -1)) in ANY_OF_TEMPLATES:
                return self._any_of(int(record["template_id"]), probs)
            if len(attrs) != 1 or (idx := self.label_index(attrs[0])) is None:
                return None
            return ["yes" if self.positive(probs, idx) else "no"]
        if qtype == "single-choose":
            groups = [g for a in attrs if (g := self.label_index(a)) is not None]
            if not attrs or len(groups) != len(attrs):
                return None
            picked = [a for a, g in zip(attrs, groups, strict=True) if self.positive(probs, g)]
            if picked:
                return picked
            return ["none"] if has_none else [attrs[int(np.argmax([probs[g].max() for g in groups]))]]
        if qtype == "single-query":
            cands = [o for o in options if canon(o) != "none"]
            sup = superclass_of_statements()
            if len(attrs) == 1 and canon(attrs[0]) in set(sup.values()):
                # symptoms of {superclass} (template 9): only that superclass's statements
                cands = [o for o in cands if sup.get(canon(o)) == canon(attrs[0])]
            mapped = [(o, g) for o in cands if (g := self.label_index(o)) is not None]
            if not cands or len(mapped) < self.min_query_coverage * len(cands):
                return None
            picked = [o for o, g in mapped if self.positive(probs, g)]
            if picked:
                return picked
            if has_none or not mapped:
                return ["none"] if has_none else None
            return [mapped[int(np.argmax([probs[g].max() for _, g in mapped]))][0]]
        return None

    def answer_all(
        self,
        record: dict,
        options: Sequence[str],
        probs: np.ndarray,
        predicted: EcgAttributes | Sequence[EcgAttributes | None] | None,
    ) -> list[str] | None:
        """Any template: SCP-code questions without a lead from ``probs``, the rest from ``predicted`` (the
        decoded multi-task head outputs; ``None`` = no such head, so those abstain), comparisons from both.

        ``probs``: (L,) of the question's one ECG, or (n, L) of its ECGs in ``record["ecg_id"]`` order;
        ``predicted``: one ``EcgAttributes`` / ``None``, or one per ECG in the same order.
        """
        rows = np.asarray(probs).reshape(-1, np.shape(probs)[-1])  # (n, L)
        attrs: list[EcgAttributes | None] = (
            [predicted] if predicted is None or isinstance(predicted, EcgAttributes) else list(predicted)
        )
        tid = int(record.get("template_id", -1))
        if str(record.get("question_type", "")).startswith("comparison"):
            out = self._compare(record, options, rows, attrs)
            self.attributes.count(tid, out)
            return out
        if str(record.get("attribute_type")) == "scp_code":
            out = self.answer(record, options, rows[0])
            if out is None:
                named = parse_question(record, options).attributes
                if not any(self.label_index(a) is None for a in named):
                    return self.attributes.answer(record, options, self._gate_form_leads(attrs[0], rows[0]))
                # else a lead question about a statement without a label: no head says whether it is shown
            self.attributes.count(tid, out)
            return out
        return self.attributes.answer(record, options, attrs[0] or EcgAttributes())

    def _gate_form_leads(self, predicted: EcgAttributes | None, probs: np.ndarray) -> EcgAttributes:
        """``predicted`` with each form statement's leads kept only where its label says the ECG shows it: the lead
        head is trained on ECGs that show the statement (which leads, given it is there), so alone it cannot tell
        whether it is there; statements without a label count as not shown."""
        if predicted is None:
            return EcgAttributes()
        gated = {
            code: mask
            if (idx := self.label_index(code)) is not None and self.positive(probs, idx)
            else NO_LEADS
            for code, mask in predicted.form_leads.items()
        }
        return replace(predicted, form_leads=gated)

    def _compare(
        self, record: dict, options: Sequence[str], probs: np.ndarray, predicted: list[EcgAttributes | None]
    ) -> list[str] | None:
        """A two-ECG question from each ECG's own verdicts and the template's rule (``None``: abstain)."""
        rule = COMPARISON_RULES.get(int(record.get("template_id", -1)))
        if rule is None or rule.attribute != _RULE_ATTRIBUTE.get(str(record.get("attribute_type"))):
            return None
        if len(probs) != 2 or len(predicted) != 2:
            return None
        attrs = record.get("attribute") or []
        attrs = [attrs] if isinstance(attrs, str) else list(attrs)
        if rule.attribute == "scp":
            same_patient = str(record.get("question_type", "")).startswith("comparison_consecutive")
            verdicts = self.label_verdicts(probs, self.change_margin if same_patient else 0.0)
            return answer_comparison(rule, attrs, options, verdicts, self.min_query_coverage)
        return answer_comparison(rule, attrs, options, numeric_verdicts(*predicted), 1.0)

    def coverage(self) -> dict[int, dict[str, int]]:
        """Template id -> answered / abstained counts of :meth:`answer_all`."""
        return self.attributes.coverage()


def agreement(
    llm_answers: Sequence[Sequence[str]],
    aux_answers: Sequence[Sequence[str] | None],
    llm_correct: Sequence[bool],
) -> dict:
    """Agreement of the LLM with the aux head where the aux head answered.

    ``rate``: fraction of answered questions where both answer sets are equal. A disagreement flags a
    possible hallucination: ``llm_accuracy_when_agree`` vs ``llm_accuracy_when_disagree`` shows how
    useful that flag is (``flag_precision`` = share of flagged answers that are indeed wrong).
    """
    agree, correct = [], []
    for llm, aux, ok in zip(llm_answers, aux_answers, llm_correct, strict=True):
        if aux is None:
            continue
        agree.append(answer_set(llm, empty_is_none=False) == answer_set(aux))
        correct.append(bool(ok))
    a, c = np.array(agree, dtype=bool), np.array(correct, dtype=bool)

    def mean(x: np.ndarray) -> float | None:
        return float(x.mean()) if x.size else None

    return {
        "n": int(a.size),
        "rate": mean(a),
        "llm_accuracy_when_agree": mean(c[a]),
        "llm_accuracy_when_disagree": mean(c[~a]),
        "flag_precision": mean(~c[~a]),
    }
