"""The aux-head answerer answers two-ECG (comparison) questions from each ECG's own findings with the same rule table
the question writer uses: given the true findings it reproduces every written answer, and it abstains (counted per
template) where a head is missing."""

from __future__ import annotations

import numpy as np
import pytest

from encoder.ecgqa.attributes import (
    ATTRIBUTE_GROUPS,
    AXIS_CLASSES,
    EXTRA_SYSTOLE_TYPES,
    FORM_LEAD_CODES,
    INFARCTION_STAGES,
    NOISE_TYPES,
    NORMAL_RANGES_MS,
    NUMERIC_FEATURES,
    EcgAttributes,
)
from encoder.ecgqa.rules import COMPARISON_RULES, compared_statements
from encoder.ecgqa.templates import TEMPLATES
from encoder.synth.questions import ATTRIBUTE_NAMES, QaRecord, make_questions, write_sample
from llm_finetune.vqa.baselines import AuxHeadAnswerer
from llm_finetune.vqa.evaluate import evaluate_vqa
from llm_finetune.vqa.scoring import exact_match

CODES = list(ATTRIBUTE_NAMES)  # a classifier with a label for every SCP statement the question writer uses


def _record(ecg_id: int, rng: np.random.Generator, patient: int | None = None) -> QaRecord:
    """A record with random SCP codes and random attributes of every group (numeric values around the ranges)."""
    codes = frozenset(c for c in CODES if rng.random() < 0.12)

    def mask(p: float) -> tuple[bool, ...]:
        return tuple(bool(x) for x in rng.random(12) < p)

    numeric = {}
    for f in NUMERIC_FEATURES:
        low, high = NORMAL_RANGES_MS[f]
        v = float(rng.uniform((low or high / 2) * 0.8, high * 1.2))
        numeric[f] = (v, v + float(rng.uniform(0, 30)))
    attributes = EcgAttributes(
        noise={t: mask(0.1) for t in NOISE_TYPES},
        extra_systoles=frozenset(t for t in EXTRA_SYSTOLE_TYPES if rng.random() < 0.2),
        heart_axis=str(rng.choice(AXIS_CLASSES)),
        infarction_stage=str(rng.choice(INFARCTION_STAGES)) if rng.random() < 0.3 else None,
        pacemaker=bool(rng.random() < 0.2),
        form_leads={c: mask(0.4) for c in FORM_LEAD_CODES if c in codes},
        numeric_ms=numeric,
        available=frozenset(ATTRIBUTE_GROUPS),
    )
    return QaRecord(
        ecg_id, ecg_id if patient is None else patient, 1 + ecg_id % 10, codes, attributes=attributes
    )


def _true_probs(rec: QaRecord) -> np.ndarray:
    return np.array([float(c in rec.codes) for c in CODES])  # (L,)


@pytest.fixture(scope="module")
def records() -> list[QaRecord]:
    rng = np.random.default_rng(0)
    return [_record(e, rng) for e in range(120)]


def test_rule_table_matches_the_templates() -> None:
    assert sorted(COMPARISON_RULES) == list(range(43, 71))
    for tid, rule in COMPARISON_RULES.items():
        t = TEMPLATES[tid]
        assert t.attribute_type == {"scp": "scp_code", "numeric": "numeric_feature"}[rule.attribute], tid
        assert t.question_type.endswith("-query" if rule.kind == "query" else "-verify"), tid
    assert set(ATTRIBUTE_NAMES.values()) <= set(compared_statements())  # "changed" looks at every written one


def test_true_findings_reproduce_every_comparison_answer(records) -> None:
    """For random pairs, the answer from the true labels and attributes is the writer's on all 28 templates."""
    rng = np.random.default_rng(1)
    answerer = AuxHeadAnswerer(CODES, [0.5] * len(CODES))
    checked = dict.fromkeys(COMPARISON_RULES, 0)
    for tid in COMPARISON_RULES:
        for _ in range(40):
            i, j = rng.choice(len(records), 2, replace=False)
            pair = (records[int(i)], records[int(j)])
            s = write_sample(tid, pair, rng)
            assert s is not None
            probs = np.stack([_true_probs(r) for r in pair])  # (2, L)
            got = answerer.answer_all(s, TEMPLATES[tid].options, probs, [r.attributes for r in pair])
            assert got is not None and exact_match(got, s["answer"]), (s, got)
            checked[tid] += 1
    assert answerer.coverage() == {t: {"answered": 40, "abstained": 0} for t in COMPARISON_RULES}
    answers = {tuple(write_sample(t, (records[0], records[1]), rng)["answer"]) for t in (43, 44, 45, 46)}
    assert len(answers) > 1  # the pair's verify answers are not all the same: the check can fail


def test_true_findings_answer_every_single_template(records) -> None:
    """Single-ECG templates: right on every answered question; abstentions only where too few labels exist."""
    rng = np.random.default_rng(2)
    answerer = AuxHeadAnswerer(CODES, [0.5] * len(CODES))
    for tid in [t for t in TEMPLATES if t < 43]:
        for _ in range(30):
            rec = records[int(rng.integers(len(records)))]
            s = write_sample(tid, (rec,), rng)
            got = answerer.answer_all(s, TEMPLATES[tid].options, _true_probs(rec), rec.attributes)
            assert got is None or exact_match(got, s["answer"]), (s, got)
    abstained = {t for t, c in answerer.coverage().items() if c["abstained"]}
    # template 9 on "myocardial infarction": 3 of its 14 statements have a label (< min_query_coverage)
    assert abstained <= {9}
    assert answerer.coverage()[13] == {"answered": 30, "abstained": 0}  # "any diagnostic symptoms"


def test_comparisons_abstain_without_the_heads_they_need(records) -> None:
    a, b = records[0], records[1]
    numeric = {"template_id": 50, "question_type": "comparison_consecutive-verify",
               "attribute_type": "numeric_feature", "attribute": ["qrs duration"], "question": ""}  # fmt: skip
    scp = {"template_id": 43, "question_type": "comparison_consecutive-verify", "attribute_type": "scp_code",
           "attribute": ["atrial flutter"], "question": ""}  # fmt: skip
    no_aflt = AuxHeadAnswerer([c for c in CODES if c != "AFLT"])
    cut = np.stack([_true_probs(r)[[i for i, c in enumerate(CODES) if c != "AFLT"]] for r in (a, b)])
    assert no_aflt.answer_all(scp, ["no", "yes"], cut, [a.attributes, b.attributes]) is None  # no such label
    assert no_aflt.answer_all(numeric, ["no", "yes"], cut, [a.attributes, None]) is None  # no numeric head
    assert no_aflt.answer_all(numeric, ["no", "yes"], cut[0], a.attributes) is None  # one ECG given
    assert no_aflt.answer_all(numeric, ["no", "yes"], cut, [a.attributes, b.attributes]) in (["yes"], ["no"])
    assert no_aflt.coverage() == {43: {"answered": 0, "abstained": 1}, 50: {"answered": 1, "abstained": 2}}


class FindingsChat:
    """Stands in for EcgChat: each ECG array carries its ecg_id; the aux head returns that record's true findings."""

    def __init__(self, records: list[QaRecord]) -> None:
        self.by_id = {r.ecg_id: r for r in records}
        self.label_names = CODES
        self.encoder_config = type("Cfg", (), {"label_thresholds": None})()

    def generate_batch(self, ecg_batches, questions, **kwargs):
        return ["no"] * len(questions)

    def _recs(self, arrays: np.ndarray) -> list[QaRecord]:
        return [self.by_id[int(a[0, 0])] for a in arrays]

    def aux_probabilities(self, arrays: np.ndarray) -> np.ndarray:
        return np.stack([_true_probs(r) for r in self._recs(arrays)])  # (n, L)

    def aux_attributes(self, arrays: np.ndarray) -> list[EcgAttributes]:
        return [r.attributes for r in self._recs(arrays)]


def test_evaluate_vqa_answers_comparison_questions_from_both_ecgs() -> None:
    rng = np.random.default_rng(3)
    recs = [
        _record(e, rng, patient=e // 2) for e in range(1, 200)
    ]  # patients with two ECGs: consecutive pairs
    questions = make_questions(recs, 2, seed=0)["train"]
    comparisons = [q for q in questions if q["question_type"].startswith("comparison")][:120]
    assert {q["question_type"] for q in comparisons} == set(_COMPARISON_TYPES)
    res = evaluate_vqa(
        FindingsChat(recs),
        comparisons,
        answer_options={t: list(tpl.options) for t, tpl in TEMPLATES.items()},
        ecg_arrays=lambda r: [np.full((12, 10), e, np.float32) for e in r["ecg_id"]],
        baselines=["aux_head"],
        batch_size=7,
        n_boot=10,
    )
    by_type = res["systems"]["aux_head"]["by_question_type"]
    for qtype in _COMPARISON_TYPES:
        assert by_type[qtype]["accuracy"] == 1.0 and "coverage" not in by_type[qtype], qtype  # all answered
    assert res["systems"]["llm"]["overall"]["accuracy"] < 1.0  # the scripted LLM's "no" is not always right


_COMPARISON_TYPES = (
    "comparison_consecutive-verify",
    "comparison_consecutive-query",
    "comparison_irrelevant-verify",
    "comparison_irrelevant-query",
)


@pytest.mark.parametrize(("template_id", "consecutive"), [(47, True), (61, False)])
def test_change_margin_claims_a_change_only_when_the_evidence_moved(
    template_id: int, consecutive: bool
) -> None:
    """AFIB just above the threshold in the second ECG and just below it in the first: one patient's ECGs call that
    no change (both take the verdict of the mean); two patients' ECGs keep their own verdicts. A clear change is a
    change either way."""
    afib = CODES.index("AFIB")
    kind = "comparison_consecutive-query" if consecutive else "comparison_irrelevant-query"
    record = {
        "template_id": template_id,
        "question_type": kind,
        "attribute_type": "scp_code",
        "attribute": [],
    }
    options = TEMPLATES[template_id].options
    with_margin = AuxHeadAnswerer(CODES, [0.5] * len(CODES), change_margin=4.0)
    without = AuxHeadAnswerer(CODES, [0.5] * len(CODES), change_margin=0.0)

    def probs(first: float, second: float) -> np.ndarray:
        p = np.full((2, len(CODES)), 0.01)  # (2 ECGs, L): nothing else shown
        p[:, afib] = first, second
        return p

    borderline, clear = probs(0.45, 0.55), probs(0.02, 0.98)
    assert with_margin.answer_all(record, options, borderline, [None, None]) == (
        ["none"] if consecutive else ["atrial fibrillation"]
    )
    assert without.answer_all(record, options, borderline, [None, None]) == ["atrial fibrillation"]
    assert with_margin.answer_all(record, options, clear, [None, None]) == ["atrial fibrillation"]
