"""Prior-shift correction of the aux head's yes/no on asked labels: counting, fitting, the verdict rule."""

import math

import numpy as np
import pytest

from bridge.configuration import EcgLlmConfig
from encoder.errors import ConfigError
from llm_finetune.data import QaSample
from llm_finetune.question_prior import asked_label_counts, fit_verdict_shifts

NAMES = ["SR", "AFIB", "STACH"]


def _verify(attr: str, yes: bool, ecg: int = 1) -> QaSample:
    return QaSample(
        [ecg], f"Does this ECG show {attr}?", ["yes" if yes else "no"], "single-verify", 2, "scp_code", [attr]
    )


def _choose(a: str, b: str, answer: list[str]) -> QaSample:
    return QaSample(
        [1], f"Which rhythm does this ECG show, {a} or {b}?", answer, "single-choose", 7, "scp_code", [a, b]
    )


def test_asked_label_counts_read_verify_and_choose_answers():
    samples = [
        _verify("atrial fibrillation", True),
        _verify("atrial fibrillation", False),
        _choose("atrial fibrillation", "sinus tachycardia", ["sinus tachycardia"]),
        _choose("sinus rhythm", "sinus tachycardia", ["none"]),
        QaSample([1, 2], "Do both show atrial fibrillation?", ["yes"], "comparison_irrelevant-verify", 9, "", ["atrial fibrillation"]),
    ]  # fmt: skip
    asked, present = asked_label_counts(samples, NAMES)
    assert asked.tolist() == [1, 3, 2]  # the two-ECG question is not counted
    assert present.tolist() == [0, 1, 1]


def test_fit_verdict_shifts_is_bayes_prior_shift():
    samples = [_verify("atrial fibrillation", i < 6) for i in range(10)]  # present in 6 of 10 asked
    prevalence = np.array([0.8, 0.05, 0.1])
    shifts = fit_verdict_shifts(samples, NAMES, prevalence, min_questions=5)
    q = (6 + 1) / (10 + 2)
    assert shifts[1] == pytest.approx(math.log(q / (1 - q)) - math.log(0.05 / 0.95))
    assert shifts[0] is None and shifts[2] is None  # never asked: keep the thresholds
    assert fit_verdict_shifts(samples, NAMES, prevalence, min_questions=11)[1] is None
    with pytest.raises(ValueError, match="prevalence"):
        fit_verdict_shifts(samples, NAMES, np.array([0.5, 0.5]))


def test_verdict_prior_shift_needs_the_question_hint():
    with pytest.raises(ConfigError, match="findings_for_question"):
        EcgLlmConfig(verdict_prior_shift=True, findings_hint=True)
