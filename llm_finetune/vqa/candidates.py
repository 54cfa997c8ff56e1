"""The answers constrained decoding chooses between, per question.

A single-choose question names two options ("... hypertrophy or conduction disturbance?"), so its valid
answers are either option, both, or ``none`` — not the dozens of options its template has across all
questions. Other question types keep their template's options.
"""

from __future__ import annotations

from collections.abc import Sequence

from llm_finetune.vqa.normalize import canon


def candidate_answers(
    question_type: str,
    attributes: Sequence[str] | str | None,
    template_options: Sequence[str] | None,
    max_options: int | None = None,
) -> list[str] | None:
    """Answer strings for one question, or ``None`` when it should be answered free-form.

    single-choose with two named attributes: ``[a, b, "a, b"]`` plus ``"none"`` unless the template's
    options are known and lack it. Otherwise the template's options, or ``None`` when there are none or more
    than ``max_options``.
    """
    if isinstance(attributes, str):
        attributes = [attributes]
    attributes = list(attributes or [])
    if question_type == "single-choose" and len(attributes) == 2:
        a, b = attributes
        allows_none = template_options is None or any(canon(o) == "none" for o in template_options)
        return [a, b, f"{a}, {b}"] + (["none"] if allows_none else [])
    if not template_options or (max_options is not None and len(template_options) > max_options):
        return None
    return list(template_options)
