"""Prompt cost of the attribute hint: mean hint tokens per question (SmolLM2 tokenizer) by ``attribute_hint``.

Questions of all 70 templates are written (``make_questions``) for 400 hand-made records with random attributes
(noise in 15 % of leads per type, one form statement, random intervals); the multi-task outputs are the records'
own attribute targets, so the lines are what a perfect head would give. Run:
``python benchmarks/hint_tokens.py`` (seconds, offline).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from bridge.llm import load_llm
from bridge.prompting import PromptBuilder, PromptPolicy
from encoder.ecgqa.attributes import AXIS_CLASSES, NOISE_TYPES, NUMERIC_FEATURES, EcgAttributes
from encoder.multitask import AUX_TASKS, build_targets
from encoder.synth.questions import QaRecord, make_questions

LABELS = ("SR", "AFIB", "IMI", "NST_", "NORM")


def _attributes(rng: np.random.Generator) -> EcgAttributes:
    def mask(p: float) -> tuple[bool, ...]:
        return tuple(bool(x) for x in rng.random(12) < p)

    values = rng.uniform(80, 900, len(NUMERIC_FEATURES))
    return EcgAttributes(
        noise={t: mask(0.15) for t in NOISE_TYPES},
        heart_axis=str(rng.choice(AXIS_CLASSES)),
        form_leads={"NST_": mask(0.3)},
        numeric_ms={f: (float(v), float(v) + 12) for f, v in zip(NUMERIC_FEATURES, values, strict=True)},
        available=frozenset(AUX_TASKS),
    )


def main() -> None:
    rng = np.random.default_rng(0)
    recs = [
        QaRecord(e, e // 2, e % 10 + 1, frozenset({"SR", "NST_"}), attributes=_attributes(rng))
        for e in range(400)
    ]
    questions = make_questions(recs, 2, 0)["train"]
    aux = {n: t for n, (t, _) in build_targets([r.attributes for r in recs], sorted(AUX_TASKS)).items()}
    probs = torch.full((len(recs), len(LABELS)), 0.2)  # (N, L)
    probs[:, 0] = 0.9
    _, tokenizer = load_llm("packaged:smollm2-135m-instruct")
    for mode in ("off", "asked", "all"):
        policy = PromptPolicy(findings_hint=True, findings_for_question=True, attribute_hint=mode)
        hints = PromptBuilder(policy, LABELS).hints(
            [q["question"] for q in questions], [q["ecg_id"] for q in questions], probs, aux
        )
        tokens = defaultdict(list)
        for q, h in zip(questions, hints, strict=True):
            n = len(tokenizer("\n".join(h), add_special_tokens=False)["input_ids"])
            tokens[q["question_type"].split("-")[0]].append(n)
        every = [n for v in tokens.values() for n in v]
        by_kind = {k: round(float(np.mean(v))) for k, v in sorted(tokens.items())}
        print(f"attribute_hint={mode}: {np.mean(every):.0f} hint tokens per question; {by_kind}")


if __name__ == "__main__":
    main()
