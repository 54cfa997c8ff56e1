"""ECG-QA metric: exact match of answer sets, breakdowns, P/R/F1, bootstrap CIs, majority baseline."""

import ast
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from llm_finetune.vqa.baselines import fit_majority, majority_answer
from llm_finetune.vqa.scoring import answer_set, bootstrap_ci, exact_match, score_item, set_prf, summarize

SHARD = Path(__file__).parent / "data" / "ecgqa" / "ptbxl"


@pytest.fixture(scope="module")
def shard() -> list[dict]:
    return json.loads((SHARD / "template" / "test" / "80000.json").read_text())


@pytest.fixture(scope="module")
def options() -> dict[int, list[str]]:
    with open(SHARD / "answers_for_each_template.csv") as f:
        return {int(r["template_id"]): ast.literal_eval(r["classes"]) for r in csv.DictReader(f)}


@pytest.mark.parametrize(
    ("pred", "gold", "ok"),
    [
        (["qrs duration", "rr interval"], ["rr interval", "qrs duration"], True),  # order
        (["QRS Duration ", "rr interval"], ["qrs duration", "rr interval"], True),  # case / spaces
        (["qrs duration", "qrs duration"], ["qrs duration"], True),  # duplicates
        (["qrs duration"], ["qrs duration", "rr interval"], False),  # subset
        (["qrs duration", "rr interval", "pr interval"], ["qrs duration", "rr interval"], False),  # superset
        (["none"], [], True),  # empty gold means "none" (ECG-QA)
        ([], ["none"], False),  # empty prediction (out of vocabulary) is wrong
        (None, ["none"], False),
        ("yes", ["yes"], True),  # a bare string is a one-answer set
        (["no"], ["yes"], False),
        (["none"], ["none"], True),
    ],
)
def test_exact_match_cases(pred, gold, ok):
    assert exact_match(pred, gold) is ok


def test_set_prf():
    assert set_prf(["a", "b"], ["a", "c"]) == pytest.approx((0.5, 0.5, 0.5))
    assert set_prf(["a"], ["a", "b"]) == pytest.approx((1.0, 0.5, 2 / 3))
    assert set_prf([], ["a"]) == (0.0, 0.0, 0.0)
    assert set_prf(["none"], []) == (1.0, 1.0, 1.0)
    assert answer_set([]) == {"none"} and answer_set([], empty_is_none=False) == frozenset()


def test_bootstrap_ci_brackets_mean_and_is_seeded():
    v = np.r_[np.ones(70), np.zeros(30)]
    lo, hi = bootstrap_ci(v, n_boot=2000, seed=1)
    assert lo < 0.7 < hi and 0.55 < lo and hi < 0.85
    assert bootstrap_ci(v, seed=3) == bootstrap_ci(v, seed=3)
    assert bootstrap_ci(np.ones(5)) == (1.0, 1.0)
    assert all(np.isnan(bootstrap_ci([])))


def test_summarize_breakdowns_and_prf():
    recs = [
        {
            "sample_id": 0,
            "question_type": "single-verify",
            "attribute_type": "scp_code",
            "template_id": 1,
            "answer": ["yes"],
        },
        {
            "sample_id": 1,
            "question_type": "single-verify",
            "attribute_type": "noise",
            "template_id": 1,
            "answer": ["no"],
        },
        {
            "sample_id": 2,
            "question_type": "single-query",
            "attribute_type": "scp_code",
            "template_id": 4,
            "answer": ["a", "b"],
        },
        {
            "sample_id": 3,
            "question_type": "single-query",
            "attribute_type": "scp_code",
            "template_id": 4,
            "answer": ["a"],
        },
    ]
    preds = [["yes"], ["yes"], ["a"], ["a"]]
    s = summarize([score_item(r, p) for r, p in zip(recs, preds, strict=True)], n_boot=200)
    assert s["overall"]["accuracy"] == 0.5 and s["overall"]["n"] == 4
    assert s["by_question_type"]["single-verify"]["accuracy"] == 0.5
    assert s["by_question_type"]["single-query"]["accuracy"] == 0.5
    assert s["by_question_type"]["single-query"]["recall"] == pytest.approx(0.75)
    assert s["by_question_type"]["single-query"]["precision"] == pytest.approx(1.0)
    assert "f1" not in s["by_question_type"]["single-verify"]
    assert s["by_attribute_type"]["scp_code"]["accuracy"] == pytest.approx(2 / 3)
    assert s["by_attribute_type"]["noise"]["accuracy"] == 0.0
    assert list(s["by_question_type"]) == ["single-verify", "single-query"]  # paper order


def test_abstentions_count_as_wrong_and_report_coverage():
    recs = [
        {"question_type": "single-verify", "attribute_type": "x", "template_id": 1, "answer": ["yes"]}
    ] * 4
    items = [
        score_item(r, ["yes"], answered=a) for r, a in zip(recs, [True, True, False, False], strict=True)
    ]
    s = summarize(items, n_boot=100)["overall"]
    assert s["accuracy"] == 0.5 and s["coverage"] == 0.5 and s["accuracy_answered"] == 1.0


def test_gold_on_real_shard_scores_one(shard):
    items = [score_item(r, list(reversed(r["answer"]))) for r in shard]
    s = summarize(items, n_boot=100)
    assert s["overall"]["n"] == len(shard) == 2146
    assert s["overall"]["accuracy"] == 1.0 and s["overall"]["ci95"] == [1.0, 1.0]
    assert s["overall"]["f1"] == 1.0
    assert set(s["by_template_id"]) == {"69", "70"}


def test_majority_baseline_on_real_shard(shard, options):
    model = fit_majority(shard)
    for tid, ans in model["by_template"].items():
        assert set(ans) <= set(options[tid])
    preds = [majority_answer(model, r) for r in shard]
    acc = np.mean([exact_match(p, r["answer"]) for p, r in zip(preds, shard, strict=True)])
    # the majority answer set of each template, counted by hand
    expected = 0
    for tid in (69, 70):
        sets = [tuple(sorted(r["answer"])) for r in shard if r["template_id"] == tid]
        expected += max(sets.count(s) for s in set(sets))
    assert acc == pytest.approx(expected / len(shard))
    assert 0.0 < acc < 0.5  # multi-answer query questions: the majority guess is weak
    # unseen templates fall back to the question type, then to the overall majority
    unseen = {"template_id": 999, "question_type": "comparison_irrelevant-query"}
    assert majority_answer(model, unseen) == model["by_question_type"]["comparison_irrelevant-query"]
    assert majority_answer(model, {"template_id": 998, "question_type": "x"}) == model["overall"]
