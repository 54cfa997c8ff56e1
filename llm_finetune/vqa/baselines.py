"""Baselines scored by the same harness as the model.

- :func:`fit_majority` / :func:`majority_answer`: the most frequent answer set of each template.
- Text-only: the same LLM with the ECG tokens removed (``EcgChat.generate_batch(use_ecg=False)``); it
  lives in :mod:`llm_finetune.vqa.evaluate` because it is a generation run like the model's.
- :class:`AuxHeadAnswerer`: answers single-ECG verify / choose / query questions straight from the stage-1
  classifier's calibrated label probabilities, like ECG-QA's upper-bound (classification) models do.
  A question is answered only when every attribute / option it needs maps to one of the classifier's
  labels; other questions are abstentions (reported as coverage, scored as wrong).
- :func:`agreement`: how often the LLM's answer equals the aux head's (a hallucination flag).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from llm_finetune.vqa.normalize import canon, scp_code_aliases
from llm_finetune.vqa.scoring import answer_set

_LEAD_MENTION = re.compile(r"\b(lead|leads)\b", re.IGNORECASE)


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


def label_lookup(label_names: Sequence[str]) -> dict[str, int]:
    """Canonical ECG-QA answer text -> classifier label index.

    Label names may be SCP codes (``"IMI"``), superclasses (``"MI"``) or descriptions; each is mapped to
    ECG-QA's spelling (``"myocardial infarction in inferior leads"``) through the shipped SCP statements.
    """
    aliases = {canon(k): v for k, v in scp_code_aliases().items()}
    lookup: dict[str, int] = {}
    for i, name in enumerate(label_names):
        lookup.setdefault(canon(name), i)
        target = aliases.get(canon(name)) or scp_code_aliases().get(name)
        if target:
            lookup.setdefault(canon(target), i)
    return lookup


@dataclass
class AuxHeadAnswerer:
    """Answers ECG-QA questions from per-label probabilities of one ECG (see the module docstring)."""

    label_names: Sequence[str]
    """The classifier's label names, in output order."""
    thresholds: Sequence[float] | None = None
    """Per-label decision thresholds (the encoder config's ``label_thresholds``); ``None`` -> 0.5."""
    _lookup: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lookup = label_lookup(self.label_names)
        if self.thresholds is None or len(self.thresholds) != len(self.label_names):
            self.thresholds = [0.5] * len(self.label_names)

    def label_index(self, text: str) -> int | None:
        """Index of the label an attribute / option text refers to, or ``None``."""
        return self._lookup.get(canon(text))

    def positive(self, probs: np.ndarray, i: int) -> bool:
        return bool(probs[i] >= self.thresholds[i])

    def answer(self, record: dict, options: Sequence[str], probs: np.ndarray) -> list[str] | None:
        """Answer set for ``record`` from ``probs`` ((L,) of its single ECG), or ``None`` to abstain."""
        qtype = str(record.get("question_type", ""))
        if not qtype.startswith("single-") or _LEAD_MENTION.search(str(record.get("question", ""))):
            return None  # comparisons need two ECGs' semantics; lead-specific questions a lead-wise model
        attrs = record.get("attribute") or []
        if isinstance(attrs, str):
            attrs = [attrs]
        has_none = any(canon(o) == "none" for o in options)
        if qtype == "single-verify":
            if len(attrs) != 1 or (i := self.label_index(attrs[0])) is None:
                return None
            return ["yes" if self.positive(probs, i) else "no"]
        if qtype == "single-choose":
            idx = [self.label_index(a) for a in attrs]
            if not attrs or any(i is None for i in idx):
                return None
            picked = [a for a, i in zip(attrs, idx, strict=True) if self.positive(probs, i)]
            if picked:
                return picked
            return ["none"] if has_none else [attrs[int(np.argmax([probs[i] for i in idx]))]]
        if qtype == "single-query":
            cands = [o for o in options if canon(o) != "none"]
            idx = [self.label_index(o) for o in cands]
            if not cands or any(i is None for i in idx):
                return None
            picked = [o for o, i in zip(cands, idx, strict=True) if self.positive(probs, i)]
            if picked:
                return picked
            return ["none"] if has_none else [cands[int(np.argmax([probs[i] for i in idx]))]]
        return None


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
