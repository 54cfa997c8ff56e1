"""Prompt building: the one place that turns aux-head probabilities into prompt hint text.

Label-name matching (ECG-QA spelling), findings, the yes/no verdict on the labels a question names (thresholds
or the fitted prior shift), the asked-format wording, the decoded multi-task head's attribute lines
(``bridge.attribute_hint``) and the hint lines all live here. Training data, batch
inference, constrained decoding and chat call ``PromptBuilder.hints``; the model only merges features.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from bridge.asked_hint import ASKED_FORMATS
from bridge.attribute_hint import attribute_lines
from bridge.comparison_hint import is_numeric_question, numeric_change_line, statement_change_line
from encoder.ecgqa.attributes import EcgAttributes, LeadMask
from encoder.errors import ConfigError
from encoder.heads import label_verdict


# ----- label names --------------------------------------------------------------------------------------------
def label_description(code: str) -> str:
    """Readable lower-case text for a label code, spelled as ECG-QA spells it (``"IMI"`` -> "myocardial
    infarction in inferior leads"), so hints and label embeddings use the questions' own words."""
    from encoder.labels import ecgqa_name

    return ecgqa_name(code).lower()


@functools.lru_cache(maxsize=1)
def _statements():
    from encoder.labels import ScpStatements

    return ScpStatements.load()


@functools.cache
def superclass_of(code: str) -> str | None:
    """ECG-QA name of a label's PTB-XL diagnostic superclass; None for rhythm/form codes and superclasses."""
    from encoder.labels import ecgqa_name

    sup = _statements().diagnostic_class_of(code)
    return None if sup in (None, code) else ecgqa_name(sup).lower()


def is_superclass(name: str) -> bool:
    """A PTB-XL diagnostic superclass label other than NORM (which is an SCP code too)."""
    from encoder.labels import SUPERCLASS_DESCRIPTIONS

    return name in SUPERCLASS_DESCRIPTIONS and name != "NORM"


def superclasses(codes: list[str]) -> list[str]:
    """Sorted ECG-QA names of the diagnostic superclasses of ``codes`` (NORM has none)."""
    return sorted({s for s in map(superclass_of, codes) if s is not None})


def labels_in_question(question: str, label_names: list[str]) -> list[int]:
    """Indices of the labels a question names (ECG-QA spelling), in question order; longest names win, so
    "myocardial infarction in inferior leads" is IMI, not also MI."""
    return list(_labels_in_question(question.lower(), tuple(label_names)))


@functools.lru_cache(maxsize=4096)
def _labels_in_question(text: str, label_names: tuple[str, ...]) -> tuple[int, ...]:
    # cached: ECG-QA questions are templates, so a training set repeats the same few hundred texts
    names = sorted(((label_description(c), j) for j, c in enumerate(label_names)), key=lambda x: -len(x[0]))
    taken = [False] * len(text)
    found = []
    for name, j in names:
        for m in re.finditer(rf"(?<![\w/]){re.escape(name)}(?![\w/])", text):
            if not any(taken[m.start() : m.end()]):
                taken[m.start() : m.end()] = [True] * (m.end() - m.start())
                found.append((m.start(), j))
                break
    return tuple(j for _, j in sorted(found))


# ----- policy and builder -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PromptPolicy:
    """What the prompt hint says (field meanings: the same-named fields of ``EcgLlmConfig``)."""

    findings_hint: bool = False
    findings_top_k: int = 3
    findings_superclass: bool = True
    findings_for_question: bool = False
    asked_format: str = "grouped"
    findings_threshold: float = 0.5
    attribute_hint: Literal["off", "all", "asked"] = "all"
    comparison_hint: bool = False

    @classmethod
    def from_config(cls, config) -> PromptPolicy:
        """The policy fields of an ``EcgLlmConfig`` (or any object with those attributes)."""
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class PromptBuilder:
    """Aux-head probabilities -> findings, verdicts and hint lines, for one head's labels."""

    policy: PromptPolicy
    label_names: tuple[str, ...]
    label_thresholds: tuple[float, ...] | None = None
    """The encoder's tuned per-label thresholds; None = ``policy.findings_threshold`` for every label."""
    logit_shifts: tuple[float | None, ...] | None = None
    """Fitted per-label prior shifts on the log-odds (None: not fitted; a None entry: keep the threshold)."""
    aux_thresholds: Mapping[str, Sequence[float]] | None = None
    """The encoder's tuned thresholds of its sigmoid multi-task outputs (``config.aux_thresholds``)."""

    @property
    def thresholds(self) -> list[float]:
        """Per-label decision thresholds: the encoder's tuned ones, else ``findings_threshold``."""
        return list(self.label_thresholds or [self.policy.findings_threshold] * len(self.label_names))

    @property
    def mixed_labels(self) -> bool:
        """SCP codes with a diagnostic superclass among the labels (the hint then names superclasses apart)."""
        return any(superclass_of(c) for c in self.label_names)

    def verdict(self, j: int, prob: float) -> bool:
        """The head's yes/no on label ``j``: log-odds plus the fitted shift above 0 where fitted, else the
        probability at or above the label's threshold."""
        shifts = self.logit_shifts
        return label_verdict(prob, self.thresholds[j], shifts[j] if shifts is not None else None)

    def findings(self, probs: torch.Tensor) -> list[list[str]]:
        """Findings per ECG ((n, L) probs): labels above threshold, high first.

        At most ``findings_top_k`` SCP codes; superclass labels of an ``all+superdiagnostic`` head follow them
        (all that are above threshold).
        """
        names, thr, k = self.label_names, self.thresholds, self.policy.findings_top_k
        mixed = self.mixed_labels
        result = []
        for row in probs.tolist():
            order = sorted(range(len(names)), key=lambda j: -row[j])
            above = [names[j] for j in order if row[j] >= thr[j]]
            if mixed:
                result.append(
                    [c for c in above if not is_superclass(c)][:k] + [c for c in above if is_superclass(c)]
                )
            else:
                result.append(above[:k])
        return result

    def _finding_texts(self, findings: list[list[str]]) -> list[str]:
        if not (self.policy.findings_superclass and self.mixed_labels):
            return [", ".join(label_description(c) for c in f) or "none" for f in findings]
        direct = any(is_superclass(c) for c in self.label_names)
        texts = []
        for f in findings:
            codes = [c for c in f if not is_superclass(c)]
            sup = (
                sorted(label_description(c) for c in f if is_superclass(c)) if direct else superclasses(codes)
            )
            codes_text = ", ".join(label_description(c) for c in codes) or "none"
            texts.append(f"{codes_text}; superclass: {', '.join(sup) or 'none'}")
        return texts

    def hint_lines(
        self,
        findings: list[list[str]],
        question: str | None = None,
        probs: torch.Tensor | None = None,
        attributes: Sequence[EcgAttributes] | None = None,
    ) -> list[str] | None:
        """Prompt hint lines from per-ECG findings (None when the hint is switched off).

        With SCP-code labels the superclasses are named apart: the head's own superclass labels when it has
        them (``all+superdiagnostic``), else the superclasses of the listed codes. With
        ``findings_for_question``, ``question`` and the ECGs' ``probs`` ((n, L)), the head's yes/no on each
        label the question names follows, worded by ``asked_format``. With the ECGs' decoded multi-task
        ``attributes`` (and ``attribute_hint`` not ``off``) their attribute lines follow, ECG by ECG. With
        ``comparison_hint`` and two ECGs, a line of what changed between them comes before those.
        """
        if not self.policy.findings_hint:
            return None
        texts = self._finding_texts(findings)
        if self.policy.findings_for_question and question is not None and probs is not None:
            asked = labels_in_question(question, list(self.label_names))
            if asked:
                fmt = ASKED_FORMATS[self.policy.asked_format]
                texts = [
                    t
                    + fmt([(label_description(self.label_names[j]), self.verdict(j, row[j])) for j in asked])
                    for t, row in zip(texts, probs.tolist(), strict=True)
                ]
        if len(texts) == 1:
            lines = [f"Findings: {texts[0]}."]
        else:
            lines = [f"Findings ECG {i + 1}: {t}." for i, t in enumerate(texts)]
        if self.policy.comparison_hint and len(texts) == 2:
            lines += self.comparison_lines(question, probs, attributes)
        if attributes is not None and self.policy.attribute_hint != "off":
            forms = [
                self.present_forms(a, row)
                for a, row in zip(attributes, _rows(probs, len(attributes)), strict=True)
            ]
            lines += attribute_lines(
                attributes, forms, question if self.policy.attribute_hint == "asked" else None
            )
        return lines

    def comparison_lines(
        self,
        question: str | None,
        probs: torch.Tensor | None,
        attributes: Sequence[EcgAttributes] | None,
    ) -> list[str]:
        """What changed from the first ECG to the second (``bridge.comparison_hint``): the decoded numeric features
        for a question about numeric features, else the label head's verdicts on every compared statement."""
        if question is not None and is_numeric_question(question):
            line = (
                numeric_change_line(*attributes) if attributes is not None and len(attributes) == 2 else None
            )
            return [line] if line else []
        if probs is None:
            return []
        first, second = probs.tolist()
        shown = {
            label_description(c): (self.verdict(j, first[j]), self.verdict(j, second[j]))
            for j, c in enumerate(self.label_names)
        }
        return [statement_change_line(shown)]

    def present_forms(
        self, attributes: EcgAttributes, probs: Sequence[float] | None
    ) -> list[tuple[str, LeadMask]]:
        """(ECG-QA name, leads) of the lead-localised form statements present: the label head's verdict where
        the code is one of its labels (and ``probs`` is given), else any lead predicted."""
        index = {c: j for j, c in enumerate(self.label_names)}
        out = []
        for code, mask in attributes.form_leads.items():
            j = index.get(code)
            shown = self.verdict(j, probs[j]) if j is not None and probs is not None else any(mask)
            if shown:
                out.append((label_description(code), mask))
        return out

    def attributes(self, aux: Mapping[str, torch.Tensor]) -> list[EcgAttributes]:
        """Decoded multi-task head outputs per ECG (task -> (M, K) probabilities / normalised values)."""
        from encoder.multitask import decode

        arrays = {n: v.detach().cpu().float().numpy() for n, v in aux.items()}
        count = len(next(iter(arrays.values())))
        thresholds = {n: list(t) for n, t in (self.aux_thresholds or {}).items()}
        return [decode({n: p[i] for n, p in arrays.items()}, thresholds) for i in range(count)]

    def hints(
        self,
        questions: Sequence[str],
        rows: Sequence[Sequence[int]],
        probs: torch.Tensor | None,
        aux: Mapping[str, torch.Tensor] | None = None,
    ) -> list[list[str] | None]:
        """Hint lines per question: ``rows[i]`` are the rows of ``probs`` ((M, L)) and of the multi-task head's
        outputs ``aux`` (task -> (M, K); empty or None = no attribute lines) question i is about.

        None for a question without ECGs, without probabilities, or with the hint switched off.
        """
        if len(questions) != len(rows):
            raise ConfigError(f"{len(questions)} questions for {len(rows)} row lists.")
        if probs is None or not self.policy.findings_hint:
            return [None] * len(questions)
        findings = self.findings(probs)
        decoded = self.attributes(aux) if aux and self.policy.attribute_hint != "off" else None
        return [
            self.hint_lines(
                [findings[r] for r in rs], q, probs[list(rs)], [decoded[r] for r in rs] if decoded else None
            )
            if rs
            else None
            for q, rs in zip(questions, rows, strict=True)
        ]


def _rows(probs: torch.Tensor | None, n: int) -> list[list[float] | None]:
    return probs.tolist() if probs is not None else [None] * n


def consecutive_rows(counts: Sequence[int]) -> list[list[int]]:
    """``[2, 0, 1]`` -> ``[[0, 1], [], [2]]``: the rows of each question when ECGs are stacked in order."""
    out, row = [], 0
    for n in counts:
        out.append(list(range(row, row + n)))
        row += n
    return out
