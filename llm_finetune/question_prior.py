"""Label-shift correction for the aux head's yes/no on the labels a question names.

The head's probabilities are calibrated to how often each label occurs in the cohort (prevalence π), but a
question names a label far more often when the ECG has it: ECG-QA draws most asked attributes from the record's
own labels. With the rate q at which a named label is present in the training questions, Bayes' rule moves the
log-odds by ``logit(q) - logit(π)`` (a prior-shift correction, Saerens et al. 2002), and the verdict is "yes"
when the moved log-odds are above 0 — the accuracy-optimal rule, where the head's F1-tuned thresholds are not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bridge.modeling import labels_in_question
from encoder.heads import logit
from llm_finetune.data import QaSample

CLOSED_TYPES = ("single-verify", "single-choose")


def asked_label_counts(
    samples: Sequence[QaSample], label_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per label: how often single-ECG verify/choose questions name it, and how often it is then present.

    Returns ``(asked, present)``, both (L,) int arrays.
    """
    asked = np.zeros(len(label_names), dtype=np.int64)
    present = np.zeros(len(label_names), dtype=np.int64)
    names = list(label_names)
    for s in samples:
        if s.question_type not in CLOSED_TYPES or len(s.ecg_ids) != 1:
            continue
        answers = {a.strip().lower() for a in s.answer}
        for attribute in s.attribute or []:
            for j in labels_in_question(attribute, names):
                asked[j] += 1
                if s.question_type == "single-verify":
                    present[j] += answers == {"yes"}
                else:
                    present[j] += attribute.strip().lower() in answers
    return asked, present


def fit_verdict_shifts(
    samples: Sequence[QaSample],
    label_names: Sequence[str],
    prevalence: np.ndarray,
    min_questions: int = 5,
) -> list[float | None]:
    """Log-odds shift per label (None where fewer than ``min_questions`` training questions name it).

    ``prevalence``: (L,) how often each label occurs, e.g. the mean calibrated probability over the training
    ECGs. The rate a named label is present uses a +1/+2 (Laplace) prior so rare labels stay finite.
    """
    prevalence = np.asarray(prevalence, dtype=np.float64)
    if prevalence.shape != (len(label_names),):
        raise ValueError(f"prevalence has shape {prevalence.shape}, expected ({len(label_names)},).")
    asked, present = asked_label_counts(samples, label_names)
    return [
        logit((present[j] + 1) / (asked[j] + 2)) - logit(prevalence[j]) if asked[j] >= min_questions else None
        for j in range(len(label_names))
    ]
