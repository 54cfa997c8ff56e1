"""The 70 ECG-QA (PTB-XL) templates in one table: id, question type, attribute type, wording, options, flags.

Facts (ids, question and attribute types, answer options, the MIMIC-IV-ECG subset) come from ECG-QA's released data
(Oh et al., NeurIPS 2023; github.com/Jwoo5/ecg-qa): the answer options are its ``answers_for_each_template.csv``
(shipped in ``encoder/resources/ecgqa``); the MIMIC-IV-ECG subset is the template ids of its MIMIC-IV-ECG options
table. Wordings of templates 26-28 and 54-56/68-70 are ECG-QA's own; the others follow its style. Placeholders:
``{attr}``, ``{attr1}``/``{attr2}`` (choose), ``{lead}``, ``{superclass}``, ``{feature}``, ``{range}``.
"""

from __future__ import annotations

import ast
import csv
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal, get_args

QuestionType = Literal[
    "single-verify",
    "single-choose",
    "single-query",
    "comparison_consecutive-verify",
    "comparison_consecutive-query",
    "comparison_irrelevant-verify",
    "comparison_irrelevant-query",
]
AttributeType = Literal[
    "scp_code", "noise", "numeric_feature", "extra_systole", "heart_axis", "stage_of_infarction"
]
QUESTION_TYPES: tuple[str, ...] = get_args(QuestionType)
ATTRIBUTE_TYPES: tuple[str, ...] = get_args(AttributeType)

MIMIC_EXCLUDED: frozenset[int] = frozenset({28, 29, 30, 31, 32, 33, 35, 36, 37, 38})
"""PTB-XL template ids without a MIMIC-IV-ECG counterpart (the other 60 are in both)."""


@dataclass(frozen=True)
class Template:
    """One ECG-QA template."""

    template_id: int
    question_type: str
    attribute_type: str
    wording: str
    lead_specific: bool = False

    @property
    def in_mimic(self) -> bool:
        """Whether the MIMIC-IV-ECG version of ECG-QA has this template."""
        return self.template_id not in MIMIC_EXCLUDED

    @property
    def options(self) -> tuple[str, ...]:
        """The template's answer options (ECG-QA's ``answers_for_each_template.csv``)."""
        return answer_options()[self.template_id]


_SV, _SC, _SQ = "single-verify", "single-choose", "single-query"
_CV, _CQ = "comparison_consecutive-verify", "comparison_consecutive-query"
_IV, _IQ = "comparison_irrelevant-verify", "comparison_irrelevant-query"

# Comparison wordings shared by the consecutive (43-56) and irrelevant (57-70) blocks, in block order.
_SCP_COMPARE_VERIFY = (
    "Is {attr} newly detected in the second ECG as compared to the first ECG?",
    "Has {attr} of the first ECG disappeared in the second ECG?",
    "Is {attr} of the first ECG still present in the second ECG?",
    "Are there any symptoms of the second ECG that have changed as compared to the first ECG?",
)
_SCP_COMPARE_QUERY = (
    "What symptoms are newly detected in the second ECG as compared to the first ECG?",
    "What symptoms of the first ECG have disappeared in the second ECG?",
    "What symptoms of the second ECG are still present as compared to the first ECG?",
)
_NUM_COMPARE_VERIFY = (
    "Has the {feature} of the second ECG now become normal as compared to the first ECG?",
    "Is the {feature} of the second ECG now considered an abnormal value as compared to the first ECG?",
    "Is the {feature} of the second ECG still abnormal as compared to the first ECG?",
    "Is the {feature} of the second ECG still normal as compared to the first ECG?",
)
_NUM_COMPARE_QUERY = (
    "What numeric features of the second ECG now have become normal as compared to the first ECG?",
    "What numeric features of the second ECG are now considered abnormal values as compared to the first ECG?",
    "What numeric features of the second ECG are still abnormal as compared to the first ECG?",
)

_SINGLE: tuple[tuple[int, str, str, str, bool], ...] = (
    (1, _SV, "scp_code", "Does this ECG show symptoms of {attr}?", False),
    (2, _SV, "scp_code", "Does this ECG show {attr}?", False),
    (3, _SC, "scp_code", "Which diagnostic superclass does this ECG show, {attr1} or {attr2}?", False),
    (4, _SC, "scp_code", "Which diagnostic symptom does this ECG show, {attr1} or {attr2}?", False),
    (5, _SC, "scp_code", "Which symptom of {superclass} does this ECG show, {attr1} or {attr2}?", False),
    (6, _SC, "scp_code", "Which form-related symptom does this ECG show, {attr1} or {attr2}?", False),
    (7, _SC, "scp_code", "Which rhythm does this ECG show, {attr1} or {attr2}?", False),
    (8, _SQ, "scp_code", "What diagnostic symptoms does this ECG show?", False),
    (9, _SQ, "scp_code", "What symptoms of {superclass} does this ECG show?", False),
    (10, _SQ, "scp_code", "What rhythm does this ECG show?", False),
    (11, _SQ, "scp_code", "What form-related symptoms does this ECG show?", False),
    (12, _SV, "scp_code", "Does this ECG show any symptoms of {superclass}?", False),
    (13, _SV, "scp_code", "Does this ECG show any diagnostic symptoms?", False),
    (14, _SV, "scp_code", "Does this ECG show any form-related symptoms?", False),
    (15, _SV, "scp_code", "Does this ECG show a paced rhythm?", False),
    (16, _SV, "scp_code", "Does this ECG show any abnormal symptoms?", False),
    (17, _SV, "scp_code", "Does this ECG show {attr} in lead {lead}?", True),
    (18, _SQ, "scp_code", "What form-related symptoms does this ECG show in lead {lead}?", True),
    (19, _SQ, "scp_code", "What leads are showing {attr}?", True),
    (20, _SV, "heart_axis", "Does this ECG show {attr}?", False),
    (21, _SC, "heart_axis", "Which heart axis does this ECG show, {attr1} or {attr2}?", False),
    (22, _SQ, "heart_axis", "What heart axis does this ECG show?", False),
    (23, _SV, "stage_of_infarction", "Does this ECG show {attr}?", False),
    (
        24,
        _SC,
        "stage_of_infarction",
        "Which stage of infarction does this ECG show, {attr1} or {attr2}?",
        False,
    ),
    (25, _SQ, "stage_of_infarction", "What stage of myocardial infarction does this ECG show?", False),
    (26, _SV, "noise", "Does this ECG show {attr} in lead {lead}?", True),
    (27, _SV, "noise", "Does this ECG show {attr}?", False),
    (28, _SV, "noise", "Does this ECG show any kind of noises in lead {lead}?", True),
    (29, _SV, "noise", "Does this ECG show any kind of noises?", False),
    (30, _SC, "noise", "Which noise does this ECG show, {attr1} or {attr2}?", False),
    (31, _SC, "noise", "Which noise does this ECG show in lead {lead}, {attr1} or {attr2}?", True),
    (32, _SQ, "noise", "What kind of noises does this ECG show?", False),
    (33, _SQ, "noise", "What kind of noises does this ECG show in lead {lead}?", True),
    (34, _SQ, "noise", "What leads are showing {attr}?", True),
    (35, _SV, "extra_systole", "Does this ECG show {attr}?", False),
    (36, _SV, "extra_systole", "Does this ECG show any kind of extra systoles?", False),
    (37, _SC, "extra_systole", "Which kind of extra systoles does this ECG show, {attr1} or {attr2}?", False),
    (38, _SQ, "extra_systole", "What kind of extra systoles does this ECG show?", False),
    (39, _SV, "numeric_feature", "Is the {feature} of this ECG {range}?", False),
    (40, _SC, "numeric_feature", "Which range is the {feature} of this ECG in, {attr1} or {attr2}?", False),
    (41, _SQ, "numeric_feature", "What range is the {feature} of this ECG in?", False),
    (42, _SQ, "numeric_feature", "What numeric features of this ECG are considered abnormal values?", False),
)


def _comparison(start: int, verify: str, query: str) -> list[tuple[int, str, str, str, bool]]:
    rows = [(verify, "scp_code", w) for w in _SCP_COMPARE_VERIFY] + [
        (query, "scp_code", w) for w in _SCP_COMPARE_QUERY
    ]
    rows += [(verify, "numeric_feature", w) for w in _NUM_COMPARE_VERIFY]
    rows += [(query, "numeric_feature", w) for w in _NUM_COMPARE_QUERY]
    return [(start + i, q, a, w, False) for i, (q, a, w) in enumerate(rows)]


TEMPLATES: dict[int, Template] = {
    row[0]: Template(*row) for row in (*_SINGLE, *_comparison(43, _CV, _CQ), *_comparison(57, _IV, _IQ))
}
"""Template id -> :class:`Template`, ids 1-70."""


@cache
def answer_options() -> dict[int, tuple[str, ...]]:
    """Template id -> answer options, read from the shipped ``answers_for_each_template.csv``."""
    path = resources.files("encoder") / "resources" / "ecgqa" / "ptbxl" / "answers_for_each_template.csv"
    with path.open(encoding="utf-8") as f:
        return {int(r["template_id"]): tuple(ast.literal_eval(r["classes"])) for r in csv.DictReader(f)}


def template_ids(subset: Literal["ptbxl", "mimic-iv-ecg"] = "ptbxl") -> tuple[int, ...]:
    """All 70 ids, or the 60 of the MIMIC-IV-ECG version."""
    return tuple(t for t, tpl in TEMPLATES.items() if subset == "ptbxl" or tpl.in_mimic)


@cache
def _pattern(template_id: int) -> re.Pattern[str]:
    escaped = re.escape(TEMPLATES[template_id].wording)
    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>.+?)", escaped) + "$")


def parse_question(template_id: int, question: str) -> dict[str, str] | None:
    """The placeholder values of a template-worded question (``{"lead": "aVF", "attr": ...}``); None if it does not
    match the template's wording (a paraphrased question)."""
    m = _pattern(template_id).match(question)
    return None if m is None else m.groupdict()
