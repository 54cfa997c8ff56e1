"""The two-ECG change line: the diff of the heads' verdicts, by the comparison templates' own relations."""

from __future__ import annotations

import json

import torch

from bridge.comparison_hint import is_numeric_question, numeric_change_line, statement_change_line
from bridge.configuration import EcgLlmConfig
from bridge.prompting import PromptBuilder, PromptPolicy
from encoder.ecgqa.attributes import EcgAttributes
from encoder.ecgqa.rules import COMPARISON_RULES, compared_statements
from encoder.ecgqa.templates import TEMPLATES

LABELS = ("SR", "AFIB", "IMI", "LVH")
NEW = "What symptoms are newly detected in the second ECG as compared to the first ECG?"
NUMERIC = "What numeric features of the second ECG are still abnormal as compared to the first ECG?"


def _builder(**policy) -> PromptBuilder:
    return PromptBuilder(PromptPolicy(findings_hint=True, findings_superclass=False, **policy), LABELS)


def test_statement_line_diffs_the_two_ecgs_over_compared_statements_only():
    line = statement_change_line(
        {
            "sinus rhythm": (True, False),
            "atrial fibrillation": (False, True),
            "left ventricular hypertrophy": (True, True),
            "not a compared statement": (False, True),
        }
    )
    assert line == (
        "Changes ECG 1 -> ECG 2: new: atrial fibrillation; gone: sinus rhythm; "
        "still present: left ventricular hypertrophy."
    )
    assert statement_change_line({}) == "Changes ECG 1 -> ECG 2: new: none; gone: none; still present: none."


def test_the_line_answers_every_scp_query_template_by_the_writers_rule():
    shown = {s: (i % 3 != 0, i % 2 == 0) for i, s in enumerate(compared_statements())}
    line = statement_change_line(shown).removesuffix(".")
    groups = dict(part.split(": ", 1) for part in line.split(": ", 1)[1].split("; "))
    for tid, rule in COMPARISON_RULES.items():
        if rule.attribute != "scp" or rule.kind != "query":
            continue
        key = {"newly": "new", "gone": "gone", "both": "still present"}[rule.holds.__name__]
        items = f", {groups[key]}, "  # statement names may hold commas themselves
        for option in TEMPLATES[tid].options:
            if option in shown:
                assert (f", {option}, " in items) == rule.holds(*shown[option]), (tid, option)


def test_numeric_line_uses_ecgqa_ranges_and_needs_measurements():
    on = frozenset({"numeric_feature"})
    first = EcgAttributes(
        numeric_ms={"rr interval": (500.0, 560.0), "qt interval": (380.0, 400.0)}, available=on
    )
    second = EcgAttributes(
        numeric_ms={"rr interval": (520.0, 580.0), "qt interval": (440.0, 470.0)}, available=on
    )
    assert numeric_change_line(first, second) == (
        "Abnormal values ECG 1 -> ECG 2: now abnormal: qt interval; now normal: none; still abnormal: rr interval."
    )
    assert numeric_change_line(first, EcgAttributes()) is None
    assert is_numeric_question(NUMERIC) and is_numeric_question(
        "Is the qt interval of the second ECG normal?"
    )
    assert not is_numeric_question(NEW)


def test_prompt_builder_adds_the_line_to_two_ecg_questions_only_when_asked():
    probs = torch.tensor([[0.9, 0.1, 0.8, 0.1], [0.2, 0.9, 0.7, 0.1]])  # (2 ECGs, 4 labels)
    with_line = _builder(comparison_hint=True).hints([NEW], [[0, 1]], probs)[0]
    assert with_line is not None
    assert with_line[-1] == (
        "Changes ECG 1 -> ECG 2: new: atrial fibrillation; gone: sinus rhythm; "
        "still present: myocardial infarction in inferior leads."
    )
    without = _builder().hints([NEW], [[0, 1]], probs)[0]
    assert without is not None and not any(line.startswith("Changes") for line in without)
    single = _builder(comparison_hint=True).hints(["Does this ECG show sinus rhythm?"], [[0]], probs)[0]
    assert single is not None and not any(line.startswith("Changes") for line in single)
    # a numeric question without decoded attributes gets no line rather than the statement diff
    numeric = _builder(comparison_hint=True).hints([NUMERIC], [[0, 1]], probs)[0]
    assert numeric is not None and not any("ECG 1 -> ECG 2" in line for line in numeric)


def test_saved_models_without_the_option_keep_their_prompts(tmp_path):
    cfg = EcgLlmConfig(findings_hint=True, comparison_hint=True)
    cfg.save(tmp_path / "config.json")
    assert EcgLlmConfig.load(tmp_path / "config.json").comparison_hint
    data = json.loads((tmp_path / "config.json").read_text())
    del data["comparison_hint"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert not EcgLlmConfig.load(tmp_path / "old.json").comparison_hint
