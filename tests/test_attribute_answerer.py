"""The aux-head answerer answers toy ECG-QA questions from predicted attributes, and abstains when it must."""

from __future__ import annotations

import numpy as np
import pytest

from encoder.ecgqa.attributes import LEADS, EcgAttributes
from encoder.multitask import AUX_TASKS, build_targets, decode
from llm_finetune.vqa.attribute_answerer import AttributeAnswerer

V1 = tuple(i == LEADS.index("V1") for i in range(12))
PRED = EcgAttributes(
    noise={"baseline drift": V1, "static noise": (False,) * 12, "burst noise": (False,) * 12,
           "electrodes problems": (False,) * 12},
    extra_systoles=frozenset({"ventricular extrasystoles"}),
    heart_axis="left axis deviation",
    infarction_stage=None,
    form_leads={"NDT": V1},
    numeric_ms={"qrs duration": (80.0, 130.0), "rr interval": (700.0, 900.0)},
    available=frozenset({"noise", "extra_systole", "heart_axis", "stage_of_infarction", "numeric_feature",
                         "form_leads"}),
)  # fmt: skip
LEAD_OPTIONS = [f"lead {lead}" for lead in LEADS] + ["none"]


def q(qtype: str, atype: str, attribute: list[str], question: str = "", tid: int = 1) -> dict:
    return {"question_type": qtype, "attribute_type": atype, "attribute": attribute, "question": question,
            "template_id": tid}  # fmt: skip


CASES = [
    (q("single-verify", "noise", ["baseline drift", "lead V1"]), [], ["yes"]),
    (q("single-verify", "noise", ["baseline drift", "lead II"]), [], ["no"]),
    (q("single-verify", "noise", ["static noise"]), [], ["no"]),
    (q("single-query", "noise", ["baseline drift"]), LEAD_OPTIONS, ["lead V1"]),
    (q("single-query", "noise", [], "Which noise does lead V1 show?"), ["baseline drift", "static noise", "none"],
     ["baseline drift"]),
    (q("single-verify", "extra_systole", ["ventricular extrasystoles"]), [], ["yes"]),
    (q("single-choose", "extra_systole", ["ventricular extrasystoles", "supraventricular extrasystoles"]),
     ["none"], ["ventricular extrasystoles"]),
    (q("single-query", "heart_axis", []), ["normal heart axis", "left axis deviation"], ["left axis deviation"]),
    (q("single-verify", "heart_axis", ["normal heart axis"]), [], ["no"]),
    (q("single-query", "stage_of_infarction", []), ["old stage of myocardial infarction", "none"], ["none"]),
    (q("single-verify", "numeric_feature", ["qrs duration"]), [], ["yes"]),
    (q("single-verify", "numeric_feature", ["rr interval"]), [], ["no"]),
    (q("single-query", "numeric_feature", ["qrs duration"]),
     ["below the normal range", "within the normal range", "above the normal range"],
     ["within the normal range", "above the normal range"]),
    (q("single-query", "numeric_feature", []), ["rr interval", "qrs duration", "none"], ["qrs duration"]),
    (q("single-verify", "scp_code", ["non-diagnostic t abnormalities", "lead V1"]), [], ["yes"]),
    (q("single-query", "scp_code", ["non-diagnostic t abnormalities"]), LEAD_OPTIONS, ["lead V1"]),
    # templates that are not one attribute lookup: any noise (28, 29), any extra systole (36), a range choice naming
    # its feature in the text (40), the form statements of one lead (18), a query's own "none ..." option (25)
    (q("single-verify", "noise", ["any kind of noises"], "Does this ECG show any kind of noises in lead V1?"), [],
     ["yes"]),
    (q("single-verify", "noise", ["any kind of noises"], "Does this ECG show any kind of noises in lead II?"), [],
     ["no"]),
    (q("single-verify", "extra_systole", []), [], ["yes"]),
    (q("single-choose", "numeric_feature", ["below the normal range", "above the normal range"],
       "Which range is the qrs duration of this ECG in, below the normal range or above the normal range?"),
     ["above the normal range", "below the normal range", "none", "within the normal range"],
     ["above the normal range"]),
    (q("single-query", "scp_code", [], "What form-related symptoms does this ECG show in lead V1?"),
     ["inverted t-waves", "non-diagnostic t abnormalities", "none"], ["non-diagnostic t abnormalities"]),
    (q("single-query", "scp_code", [], "What form-related symptoms does this ECG show in lead II?"),
     ["inverted t-waves", "non-diagnostic t abnormalities", "none"], ["none"]),
    (q("single-query", "stage_of_infarction", []), ["old stage of myocardial infarction",
     "none of myocardial infarction"], ["none of myocardial infarction"]),
]  # fmt: skip


@pytest.mark.parametrize(("record", "options", "want"), CASES)
def test_answers_toy_questions_from_predicted_attributes(record: dict, options: list, want: list) -> None:
    assert AttributeAnswerer().answer(record, options, PRED) == want


def test_pacemaker_template_reads_the_pacemaker_head() -> None:
    paced = EcgAttributes(pacemaker=True, available=frozenset({"pacemaker"}))
    record = q("single-verify", "scp_code", [], "Does this ECG show a paced rhythm?", tid=15)
    assert AttributeAnswerer().answer(record, ["no", "yes"], paced) == ["yes"]
    assert AttributeAnswerer().answer(record, ["no", "yes"], PRED) is None  # PRED has no pacemaker head


def test_abstains_and_counts_per_template() -> None:
    ans = AttributeAnswerer()
    no_noise_head = EcgAttributes(heart_axis="normal heart axis", available=frozenset({"heart_axis"}))
    assert ans.answer(q("single-verify", "noise", ["baseline drift"], tid=7), [], no_noise_head) is None
    assert ans.answer(q("comparison_consecutive-verify", "heart_axis", [], tid=9), [], PRED) is None
    assert ans.answer(q("single-verify", "scp_code", ["atrial fibrillation"], tid=9), [], PRED) is None
    assert ans.answer(q("single-verify", "heart_axis", ["normal heart axis"], tid=7), [], no_noise_head) == [
        "yes"
    ]
    assert ans.coverage() == {7: {"answered": 1, "abstained": 1}, 9: {"answered": 0, "abstained": 2}}


def test_answers_from_decoded_head_outputs() -> None:
    """Head outputs equal to the true targets decode to attributes that answer like the truth."""
    targets = build_targets([PRED], list(AUX_TASKS))
    probs = {n: np.clip(t[0].numpy(), 0.02, 0.98) for n, (t, _) in targets.items()}
    probs["numeric_feature"] = targets["numeric_feature"][0][0].numpy()
    decoded = decode(probs)
    for record, options, want in CASES:
        assert AttributeAnswerer().answer(record, options, decoded) == want, record


def test_answer_all_routes_scp_to_labels_and_the_rest_to_the_attributes() -> None:
    from llm_finetune.vqa.baselines import AuxHeadAnswerer

    ans = AuxHeadAnswerer(["AFIB", "NORM"], thresholds=[0.5, 0.5])
    probs = np.array([0.9, 0.1])
    afib = q(
        "single-verify", "scp_code", ["atrial fibrillation"], "Does this ECG show atrial fibrillation?", tid=2
    )
    assert ans.answer_all(afib, ["yes", "no"], probs, None) == ["yes"]
    axis = q("single-verify", "heart_axis", ["left axis deviation"], tid=5)
    assert ans.answer_all(axis, [], probs, PRED) == ["yes"]
    assert ans.answer_all(axis, [], probs, None) is None  # no multi-task head: abstain
    assert ans.coverage() == {2: {"answered": 1, "abstained": 0}, 5: {"answered": 1, "abstained": 1}}


def test_report_has_the_question_type_by_attribute_type_table() -> None:
    from llm_finetune.vqa.report import markdown_report, type_breakdown
    from llm_finetune.vqa.scoring import score_item, summarize

    recs = [
        {**q("single-verify", "noise", []), "answer": ["yes"]},
        {**q("single-verify", "noise", []), "answer": ["no"]},
        {**q("single-query", "heart_axis", []), "answer": ["left axis deviation"]},
    ]
    items = [
        score_item(r, p, answered=p is not None) for r, p in zip(recs, [["yes"], ["yes"], None], strict=True)
    ]
    table = type_breakdown(items)
    assert table["single-verify"]["noise"] == {"n": 2, "accuracy": 0.5, "coverage": 1.0}
    assert table["single-query"]["heart_axis"]["coverage"] == 0.0
    system = {**summarize(items, n_boot=10), "by_question_x_attribute": table}
    text = markdown_report({"n_questions": 3, "systems": {"aux_head": system}})
    assert "question type × attribute type" in text
    assert "| single-verify | 50.0 (n=2) | – |" in text and "0.0 (n=1, cov 0%)" in text


def test_lead_questions_need_the_statement_label() -> None:
    """The lead head says which leads given a statement is shown; whether it is shown is the label's verdict."""
    from llm_finetune.vqa.baselines import AuxHeadAnswerer

    ans = AuxHeadAnswerer(["NDT", "NORM"], thresholds=[0.5, 0.5])
    in_v1 = q("single-verify", "scp_code", ["non-diagnostic t abnormalities"],
              "Does this ECG show non-diagnostic t abnormalities in lead V1?", tid=17)  # fmt: skip
    shown, not_shown = np.array([0.9, 0.1]), np.array([0.1, 0.9])
    assert ans.answer_all(in_v1, ["no", "yes"], shown, PRED) == ["yes"]
    assert ans.answer_all(in_v1, ["no", "yes"], not_shown, PRED) == ["no"]  # PRED's lead mask says V1
    in_lead = q(
        "single-query", "scp_code", [], "What form-related symptoms does this ECG show in lead V1?", tid=18
    )
    opts = ["inverted t-waves", "non-diagnostic t abnormalities", "none"]
    assert ans.answer_all(in_lead, opts, shown, PRED) == ["non-diagnostic t abnormalities"]
    assert ans.answer_all(in_lead, opts, not_shown, PRED) == ["none"]
    no_label = AuxHeadAnswerer(["NORM"])
    assert no_label.answer_all(in_v1, ["no", "yes"], np.array([0.1]), PRED) is None
    assert no_label.coverage() == {17: {"answered": 0, "abstained": 1}}
