"""Free text -> template answer vocabulary: case, punctuation, paraphrase, aliases, multi-answer, none."""

import ast
import csv
import json
from pathlib import Path

import pytest

from llm_finetune.vqa.normalize import AnswerNormalizer, canon, normalize_answer
from llm_finetune.vqa.scoring import exact_match

SHARD = Path(__file__).parent / "data" / "ecgqa" / "ptbxl"


@pytest.fixture(scope="module")
def options() -> dict[int, list[str]]:
    with open(SHARD / "answers_for_each_template.csv") as f:
        return {int(r["template_id"]): ast.literal_eval(r["classes"]) for r in csv.DictReader(f)}


def test_canon():
    assert canon("  First-degree AV block. ") == "first degree av block"
    assert canon("ST/T change") == canon("st t change")
    assert canon("Long QT‐interval") == "long qt interval"  # unicode hyphen


@pytest.mark.parametrize(
    ("template", "text", "expected", "method"),
    [
        (1, "Yes.", {"yes"}, "exact"),
        (1, "YES", {"yes"}, "exact"),
        (1, "y", {"yes"}, "exact"),
        (1, "No, there is no evidence of it.", {"no"}, "scan"),
        (1, "Not sure", {"not sure"}, "exact"),
        (1, "uncertain", {"not sure"}, "exact"),
        (2, "The ECG does not show it", {"no"}, "scan"),
        (2, "absent", {"no"}, "exact"),
        (3, "MI and ST/T change", {"myocardial infarction", "st/t change"}, "scan"),
        (4, "Inferior myocardial infarction", {"myocardial infarction in inferior leads"}, "exact"),
        (
            4,
            "IMI, NDT",
            {"myocardial infarction in inferior leads", "non-diagnostic t abnormalities"},
            "scan",
        ),
        (4, "1st degree AV block", {"first degree av block"}, "exact"),
        (7, "AFIB", {"atrial fibrillation"}, "exact"),
        (7, "atrial fibrilation", {"atrial fibrillation"}, "fuzzy"),  # typo
        (7, "normal sinus rhythm", {"sinus rhythm"}, "exact"),
        (19, "aVF, V1 and lead II", {"lead aVF", "lead V1", "lead II"}, "scan"),
        (19, "LEAD AVF", {"lead aVF"}, "exact"),  # the option's own casing comes back
        (70, "QRS-duration; RR interval.", {"qrs duration", "rr interval"}, "scan"),
        (70, "None.", {"none"}, "exact"),
        (70, "nothing", {"none"}, "exact"),
        (3, "No.", {"none"}, "exact"),  # a bare "no" to a "which ... ?" question
        # ... but "no" inside a sentence is not "none"
        (7, "No doubt: sinus rhythm", {"sinus rhythm"}, "scan"),
        (2, "No.", {"no"}, "exact"),
        (25, "none of myocardial infarction", {"none of myocardial infarction"}, "exact"),
        # the stage query (template 25) has no plain "none": a bare "none" / "no" is its "none of ..." option
        (25, "None", {"none of myocardial infarction"}, "exact"),
        (25, "no", {"none of myocardial infarction"}, "exact"),
        (25, "middle", {"middle stage of myocardial infarction"}, "exact"),
        (25, "Old stage.", {"old stage of myocardial infarction"}, "exact"),
        (
            25,
            "early, unknown",
            {"early stage of myocardial infarction", "unknown stage of myocardial infarction"},
            "scan",
        ),  # fmt: skip
        (70, "banana", set(), "oov"),
        (70, "", set(), "oov"),
    ],
)
def test_hand_made(options, template, text, expected, method):
    n = normalize_answer(text, options[template])
    assert set(n.answers) == expected
    assert n.method == method
    assert n.in_vocab is bool(expected)


def test_longest_option_wins(options):
    # template 47 holds both an MI site and plain terms; the longer phrase must not also yield its parts
    n = normalize_answer("myocardial infarction in inferolateral leads", options[4])
    assert n.answers == ("myocardial infarction in inferolateral leads",)
    n = normalize_answer("subendocardial injury in inferior leads and non-specific ischemic", options[4])
    assert set(n.answers) == {"subendocardial injury in inferior leads", "non-specific ischemic"}


def test_alias_only_used_when_target_is_an_option(options):
    # a stage word is no answer where the stage options are not (template 70: numeric features)
    assert normalize_answer("old", options[70]).answers == ()
    assert normalize_answer("none", options[70]).answers == ("none",)
    # "AFIB" is not an option of the yes/no template 2 -> out of vocabulary, not "atrial fibrillation"
    assert normalize_answer("AFIB", options[2]).answers == ()
    # the yes/no template only keeps the first hit
    assert normalize_answer("yes and no", options[2]).answers == ("yes",)


def test_every_option_of_every_template_maps_to_itself(options):
    for tid, opts in options.items():
        assert len({canon(o) for o in opts}) == len(opts), f"template {tid}: options collide after canon()"
        norm = AnswerNormalizer(opts)
        for o in opts:
            assert norm(o).answers == (o,), (tid, o)
            assert norm(o.upper() + ".").answers == (o,), (tid, o)


def test_gold_texts_of_real_shard_round_trip(options):
    shard = json.loads((SHARD / "template" / "test" / "80000.json").read_text())
    for r in shard:
        opts = options[r["template_id"]]
        for text in (
            ", ".join(r["answer"]),
            " and ".join(a.upper() for a in r["answer"]) + ".",
            "; ".join(r["answer"][::-1]),
        ):
            n = normalize_answer(text, opts)
            assert exact_match(n.answers, r["answer"]), (text, n)


# --- wrong -> right: the normalizer must never turn a wrong answer into a right one -------------


@pytest.mark.parametrize(
    ("template", "text"),
    [
        (7, "no atrial fibrillation"),
        (7, "not sinus rhythm"),
        (3, "no hypertrophy"),
        (4, "without left ventricular hypertrophy"),
        (4, "There is no evidence of complete left bundle branch block."),
        (7, "no atrial fibrilation"),  # negated typo: no fuzzy rescue either
    ],
)
def test_negated_finding_never_maps_to_the_positive_option(options, template, text):
    n = normalize_answer(text, options[template])
    assert n.answers == ()
    assert n.negated or n.method == "oov"


def test_negation_of_every_option_is_never_that_option(options):
    for tid, opts in options.items():
        norm = AnswerNormalizer(opts)
        if norm._closed:
            continue
        for o in opts:
            if canon(o) == "none":
                continue
            for text in (f"no {o}", f"not {o}", f"without {o}", f"absence of {o}", f"negative for {o}"):
                n = norm(text)
                assert o not in n.answers, (tid, text, n)


def test_negation_scope(options):
    n = normalize_answer("no atrial fibrillation or sinus rhythm", options[7])
    assert n.answers == ()  # joined by "or": both negated
    n = normalize_answer("no atrial fibrillation, but sinus rhythm", options[7])
    assert n.answers == ("sinus rhythm",)  # "but" ends the negation
    assert n.negated == ("atrial fibrillation",)


def test_fuzzy_refuses_when_two_options_are_nearly_as_close(options):
    opts = options[4]
    assert normalize_answer("complete left bundle branch blok", opts).answers == ()
    assert normalize_answer("incomplete left bundle branch blok", opts).answers == ()
    # every option with a one-letter typo maps to itself or to nothing, never to another option
    for tid in (4, 8):
        norm = AnswerNormalizer(options[tid])
        for o in options[tid]:
            got = norm(o[:-1] + "x").answers
            assert got in ((), (o,)), (tid, o, got)


def test_quick_heldout_check_scores_with_the_harness_normalizer(options):
    from llm_finetune.heldout import _answer_set

    assert exact_match(_answer_set("Atrial fibrillation.", options[7]), ["atrial fibrillation"])
    assert not exact_match(_answer_set("no atrial fibrillation", options[7]), ["atrial fibrillation"])
    assert exact_match(_answer_set("MI, STTC", None), ["mi", "sttc"])  # no options: comma split
