"""ECG-QA evaluation harness: normalisation, the official metric, baselines, leakage check, reports."""

from llm_finetune.vqa.baselines import AuxHeadAnswerer, agreement, fit_majority, majority_answer
from llm_finetune.vqa.evaluate import EvalVqaConfig, evaluate_vqa, run_eval_vqa
from llm_finetune.vqa.normalize import AnswerNormalizer, NormalizedAnswer, normalize_answer
from llm_finetune.vqa.scoring import bootstrap_ci, exact_match, score_item, set_prf, summarize

__all__ = [
    "AnswerNormalizer",
    "AuxHeadAnswerer",
    "EvalVqaConfig",
    "NormalizedAnswer",
    "agreement",
    "bootstrap_ci",
    "evaluate_vqa",
    "exact_match",
    "fit_majority",
    "majority_answer",
    "normalize_answer",
    "run_eval_vqa",
    "score_item",
    "set_prf",
    "summarize",
]
