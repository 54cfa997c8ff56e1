"""Open "describe this ECG" questions: training samples answered with the record's report, and a scorer that
parses a generated description back to label sets (micro-F1 against the truth, beside the aux head's own F1).

Reports come from the PTB-XL-format table's ``report`` column (the synthetic cohort writes the SCP statements'
descriptions there; a real PTB-XL copy has the cardiologists' reports, many in German, which the parser below
reads only partly). The parser finds label names in the text, longest first, in any spelling
``encoder.labels.scp_code_aliases`` knows (code, PTB-XL description, ECG-QA answer text).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.metrics import f1_score

from llm_finetune.data import QaSample

DESCRIBE_PROMPTS: dict[str, tuple[str, ...]] = {
    "train": (
        "Describe this ECG.",
        "What does this ECG show?",
        "Write a short report of this ECG.",
        "Summarize the findings of this ECG.",
    ),
    "heldout": (
        "Interpret this ECG for me.",
        "What are the findings on this tracing?",
    ),
}
"""Wordings of the open question; the held-out ones are kept for evaluation."""

QUESTION_TYPE = "describe"
"""``QaSample.question_type`` of a describe sample (``template_id`` 0: no ECG-QA template)."""


def load_reports(data_root: str | os.PathLike) -> dict[int, tuple[int, str]]:
    """ecg_id -> (strat_fold, report) of every record with a non-empty report in a PTB-XL-format folder."""
    from encoder.datasets.ptbxl import PtbXl

    table = PtbXl(data_root, sampling_rate=100, min_label_count=0, drop_unlabeled=False).table
    if "report" not in table.columns:
        return {}
    return {
        int(e): (int(f), str(r).strip())
        for e, f, r in zip(table["ecg_id"], table["strat_fold"], table["report"].fillna(""), strict=True)
        if str(r).strip()
    }


def label_sets(data_root: str | os.PathLike) -> dict[int, set[str]]:
    """ecg_id -> the SCP codes its ``scp_codes`` cell lists (at any likelihood) in a PTB-XL-format folder."""
    from encoder.datasets.ptbxl import PtbXl

    table = PtbXl(data_root, sampling_rate=100, min_label_count=0, drop_unlabeled=False).table
    return {int(e): set(codes) for e, codes in zip(table["ecg_id"], table["scp_codes"], strict=True)}


def describe_samples(
    reports: dict[int, tuple[int, str]],
    folds: Sequence[int],
    which: Literal["train", "heldout"] = "train",
    limit: int | None = None,
    seed: int = 0,
) -> list[QaSample]:
    """One describe question per record of ``folds`` (a random wording of the set), answered with its report;
    ``limit`` records at most (seeded)."""
    rng = np.random.default_rng([seed, 31])
    ids = sorted(e for e, (f, _) in reports.items() if f in set(folds))
    if limit is not None and len(ids) > limit:
        ids = sorted(int(i) for i in rng.choice(ids, size=limit, replace=False))
    prompts = DESCRIBE_PROMPTS[which]
    return [
        QaSample(
            ecg_ids=[e],
            question=prompts[int(rng.integers(len(prompts)))],
            answer=[reports[e][1]],
            question_type=QUESTION_TYPE,
            template_id=0,
            attribute_type="report",
        )
        for e in ids
    ]


@functools.cache
def _alias_pattern(label_names: tuple[str, ...]) -> tuple[re.Pattern[str], dict[str, str]]:
    """One regex of every spelling of the labels (longest first) and spelling -> label code."""
    from encoder.labels import scp_code_aliases

    target = {code: scp_code_aliases().get(code, code).lower() for code in label_names}
    by_text = {t: c for c, t in target.items()}
    spellings: dict[str, str] = {}
    for alias, text in scp_code_aliases().items():
        code = by_text.get(text.lower())
        if code is not None and not alias.isupper():  # descriptions and ECG-QA texts, not bare codes
            spellings[alias.lower()] = code
    for code, text in target.items():
        spellings[text] = code
    ordered = sorted(spellings, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w/])(" + "|".join(map(re.escape, ordered)) + r")(?![\w/])")
    return pattern, spellings


def parse_description(text: str, label_names: Sequence[str]) -> set[str]:
    """The labels (codes of ``label_names``) a free-text description names, e.g. "sinus rhythm. inferior
    myocardial infarction." -> {"SR", "IMI"}; a negated mention ("no atrial fibrillation") does not count."""
    if not label_names:
        return set()
    pattern, spellings = _alias_pattern(tuple(label_names))
    found = set()
    for m in pattern.finditer(text.lower()):
        before = text.lower()[max(0, m.start() - 12) : m.start()]
        if re.search(r"\b(no|not|without)\s+$", before):
            continue
        found.add(spellings[m.group(1)])
    return found


def micro_f1(predicted: Sequence[set[str]], truth: Sequence[set[str]], label_names: Sequence[str]) -> float:
    """Micro-averaged F1 of label sets over ``label_names`` (sklearn; 0 when nothing is predicted or true)."""
    names = list(label_names)
    y_true = np.array([[n in t for n in names] for t in truth], dtype=bool).reshape(len(truth), len(names))
    y_pred = np.array([[n in p for n in names] for p in predicted], dtype=bool).reshape(
        len(truth), len(names)
    )
    return float(f1_score(y_true, y_pred, average="micro", zero_division=0))


def score_descriptions(
    generated: Sequence[str],
    truth: Sequence[set[str]],
    aux_predicted: Sequence[set[str]],
    label_names: Sequence[str],
) -> dict[str, float]:
    """Label micro-F1 of generated descriptions and of the aux head's own label sets on the same records, and
    their ratio (the issue's bar: ratio >= 0.8)."""
    if not (len(generated) == len(truth) == len(aux_predicted)):
        from encoder.errors import ConfigError

        raise ConfigError(
            f"{len(generated)} descriptions, {len(truth)} truth sets, {len(aux_predicted)} aux-head sets."
        )
    parsed = [parse_description(t, label_names) for t in generated]
    llm = micro_f1(parsed, truth, label_names)
    aux = micro_f1(aux_predicted, truth, label_names)
    return {
        "n": len(generated),
        "llm_micro_f1": llm,
        "aux_head_micro_f1": aux,
        "ratio": llm / aux if aux else 0.0,
    }


def describe_label_names(label_names: Sequence[str]) -> list[str]:
    """The labels a description is scored on: the head's SCP codes (superclass labels are not named in
    reports)."""
    from bridge.prompting import is_superclass

    return [n for n in label_names if not is_superclass(n)]


def evaluate_descriptions(
    chat,
    ecg_arrays: Sequence[np.ndarray],
    truth: Sequence[set[str]],
    *,
    prompt: str = DESCRIBE_PROMPTS["heldout"][0],
    max_new_tokens: int = 48,
    batch_size: int = 8,
) -> dict:
    """Generate a description of each model-ready ECG (12, T) with an ``EcgChat`` and score it against the
    records' label sets (:func:`score_descriptions`), beside the aux head's verdicts on the same ECGs."""
    names = describe_label_names(chat.label_names)
    texts = chat.generate_batch(
        [[a] for a in ecg_arrays],
        [prompt] * len(ecg_arrays),
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
    )
    probs = np.asarray(chat.aux_probabilities(np.stack(ecg_arrays)))  # (n, L)
    index = {n: j for j, n in enumerate(chat.label_names)}
    aux = [{n for n in names if chat.model.verdict(index[n], float(row[index[n]]))} for row in probs]
    truth = [set(t) & set(names) for t in truth]
    out: dict[str, Any] = score_descriptions(texts, truth, aux, names)
    out["examples"] = [
        {"generated": t, "truth": sorted(s)} for t, s in list(zip(texts, truth, strict=True))[:8]
    ]
    return out
