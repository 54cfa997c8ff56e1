"""Paraphrased wordings of the 70 ECG-QA templates: one set to train on, a disjoint set held out for evaluation.

Like ECG-QA's paraphrased version, a paraphrase keeps a template's placeholders and meaning and changes its words.
Wordings come from rewrite rules on the template text (:data:`REWRITES`: a regex pattern with its training and its
held-out replacement; :data:`RULES` per set): each rule that matches a template gives one wording of each set. The placeholder values of a template-worded
question are read back with ``encoder.ecgqa.templates.parse_question`` and written into the new wording.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import cache
from typing import Literal

import numpy as np

from encoder.ecgqa.templates import TEMPLATES, parse_question
from encoder.errors import ConfigError
from llm_finetune.data import QaSample

ParaphraseSet = Literal["train", "heldout"]

REWRITES: tuple[tuple[str, str, str], ...] = (
    # (pattern, training wording, held-out wording)
    (r"^Does this ECG show (.+)\?$", r"Is \1 present in this ECG?", r"Can you see \1 on this tracing?"),
    (
        r"^Which (.+) does this ECG show, (.+)\?$",
        r"Which \1 is seen in this ECG, \2?",
        r"Looking at this tracing, which \1 is it, \2?",
    ),
    (
        r"^What (.+) does this ECG show(.*)\?$",
        r"Which \1 are seen in this ECG\2?",
        r"Name the \1 that this tracing shows\2.",
    ),
    (
        r"^Is the (.+) of this ECG (.+)\?$",
        r"Would you say the \1 of this ECG is \2?",
        r"Does the \1 of this tracing fall \2?",
    ),
    (
        r"^What leads are showing (.+)\?$",
        r"In which leads does \1 appear?",
        r"Where, lead by lead, is \1 seen?",
    ),
    (r"this ECG", "the ECG", "this recording"),
    (
        r"the second ECG(.*) the first ECG",
        r"the later ECG\1 the earlier ECG",
        r"ECG number two\1 ECG number one",
    ),
    (
        r"the first ECG(.*) the second ECG",
        r"the earlier ECG\1 the later ECG",
        r"ECG number one\1 ECG number two",
    ),
    (r"as compared to the first ECG", "relative to the first ECG", "versus the first recording"),
)
"""Rewrite rules: each template pattern with its wording in the training set and in the held-out set."""

RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "train": tuple((pattern, train) for pattern, train, _ in REWRITES),
    "heldout": tuple((pattern, heldout) for pattern, _, heldout in REWRITES),
}
"""Paraphrase set -> rewrite rules; every template gets at least one wording from each set."""


@cache
def wordings(template_id: int, which: ParaphraseSet) -> tuple[str, ...]:
    """The template's paraphrased wordings of one set (with its placeholders), in rule order, distinct."""
    if which not in RULES:
        raise ConfigError(f"Unknown paraphrase set {which!r}; choose from {sorted(RULES)}.")
    original = TEMPLATES[template_id].wording
    out: list[str] = []
    for pattern, repl in RULES[which]:
        new = re.sub(pattern, repl, original)
        if new != original and new not in out:
            out.append(new)
    return tuple(out)


def reword(template_id: int, question: str, which: ParaphraseSet, rng: np.random.Generator) -> str | None:
    """The question in a random wording of the set; None when it is not in its template's wording (nothing to
    read the placeholders from) or the template is unknown."""
    if template_id not in TEMPLATES:
        return None
    values = parse_question(template_id, question)
    options = wordings(template_id, which)
    if values is None or not options:
        return None
    return options[int(rng.integers(len(options)))].format(**values)


def paraphrase(sample: QaSample, which: ParaphraseSet, rng: np.random.Generator) -> QaSample | None:
    """The sample with its question reworded by :func:`reword` (None when it cannot be)."""
    question = reword(sample.template_id, sample.question, which, rng)
    return None if question is None else replace(sample, question=question)


def paraphrased(samples: list[QaSample], which: ParaphraseSet, seed: int = 0) -> list[QaSample]:
    """Every sample that can be paraphrased, reworded with the set (seeded): training extras (``train``) or the
    held-out evaluation questions (``heldout``)."""
    rng = np.random.default_rng([seed, 23])
    return [p for p in (paraphrase(s, which, rng) for s in samples) if p is not None]
