"""Open questions: describe samples from reports, the description parser and scorer, paraphrased wordings."""

from __future__ import annotations

import string

import numpy as np
import pytest

from encoder.ecgqa.templates import TEMPLATES, parse_question
from encoder.errors import ConfigError, DatasetError
from llm_finetune.data import QaSample, training_extras
from llm_finetune.vqa.describe import (
    DESCRIBE_PROMPTS,
    describe_samples,
    load_reports,
    micro_f1,
    parse_description,
    score_descriptions,
)
from llm_finetune.vqa.paraphrase import paraphrase, paraphrased, wordings

NAMES = ("SR", "AFIB", "STACH", "IMI", "ASMI", "LVH", "1AVB", "NST_", "NORM")


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        # the synthetic cohort's reports: PTB-XL descriptions, lower case, ". "-joined
        ("sinus rhythm. inferior myocardial infarction. left ventricular hypertrophy.", {"SR", "IMI", "LVH"}),
        # ECG-QA spellings, as a model trained on ECG-QA answers might write them
        ("myocardial infarction in anteroseptal leads, first degree av block", {"ASMI", "1AVB"}),
        ("normal ecg. no atrial fibrillation. sinus tachycardia.", {"NORM", "STACH"}),
        ("non-specific ST changes", {"NST_"}),
        ("a tiny test record", set()),
    ],
)
def test_descriptions_parse_back_to_label_sets(text, labels):
    assert parse_description(text, NAMES) == labels


def test_scores_compare_the_description_with_the_aux_head():
    truth = [{"SR", "IMI"}, {"AFIB"}]
    generated = ["sinus rhythm. inferior myocardial infarction.", "sinus rhythm."]
    out = score_descriptions(generated, truth, [{"SR", "IMI"}, {"AFIB"}], NAMES)
    # llm: tp 2 (SR, IMI), fp 1 (SR), fn 1 (AFIB) -> F1 = 4 / 6; aux head perfect
    assert out["llm_micro_f1"] == pytest.approx(2 / 3) and out["aux_head_micro_f1"] == 1.0
    assert out["ratio"] == pytest.approx(2 / 3) and out["n"] == 2
    assert micro_f1([set()], [set()], NAMES) == 0.0
    with pytest.raises(ConfigError):
        score_descriptions(generated, truth[:1], truth, NAMES)


def test_describe_samples_take_reports_of_the_split_folds():
    reports = {1: (1, "sinus rhythm."), 2: (9, "atrial fibrillation."), 3: (2, "sinus tachycardia.")}
    train = describe_samples(reports, range(1, 9))
    assert [s.ecg_ids for s in train] == [[1], [3]] and train[0].answer == ["sinus rhythm."]
    assert all(s.question in DESCRIBE_PROMPTS["train"] and s.question_type == "describe" for s in train)
    held = describe_samples(reports, [9], "heldout")
    assert held[0].question in DESCRIBE_PROMPTS["heldout"]
    assert not set(DESCRIBE_PROMPTS["train"]) & set(DESCRIBE_PROMPTS["heldout"])
    assert len(describe_samples(reports, range(1, 11), limit=2)) == 2


def _slots(wording: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(wording) if name}


@pytest.mark.parametrize("template_id", sorted(TEMPLATES))
def test_every_template_has_disjoint_train_and_heldout_paraphrases(template_id):
    train, held = wordings(template_id, "train"), wordings(template_id, "heldout")
    original = TEMPLATES[template_id].wording
    assert train and held and not set(train) & set(held) and original not in train + held
    for w in train + held:  # the placeholders survive
        assert _slots(w) == _slots(original)


def test_a_paraphrased_question_keeps_its_values_and_answer():
    s = QaSample([4], "Does this ECG show baseline drift in lead aVF?", ["yes"], "single-verify", 26, "noise")
    rng = np.random.default_rng(0)
    p = paraphrase(s, "heldout", rng)
    assert (
        p is not None and p.question != s.question and "baseline drift" in p.question and "aVF" in p.question
    )
    assert p.answer == ["yes"] and p.template_id == 26 and parse_question(26, p.question) is None
    assert paraphrase(QaSample([4], "Free text?", ["no"], "single-verify", 26), "train", rng) is None
    assert len(paraphrased([s, s], "train")) == 2


def test_training_extras_add_describe_and_paraphrased_questions(tmp_path):
    from llm_finetune.testing import write_tiny_qa

    root = write_tiny_qa(tmp_path / "data", num_records=20)
    assert load_reports(root)[1] == (1, "sinus rhythm, tiny test record")
    s = QaSample([1], "What heart axis does this ECG show?", ["normal heart axis"], "single-query", 22)
    extras = training_extras([s] * 4, root, "train", describe=5, paraphrase_fraction=1.0)
    described = [e for e in extras if e.question_type == "describe"]
    assert len(described) == 5 and {e.ecg_ids[0] % 10 for e in described} <= set(range(1, 9))  # folds 1-8
    assert sum(e.template_id == 22 for e in extras) == 4
    with pytest.raises(DatasetError):
        training_extras([s], None, "train", describe=1)
