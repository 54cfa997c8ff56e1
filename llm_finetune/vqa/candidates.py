"""The answers constrained decoding chooses between, per question, for all 70 ECG-QA templates.

A single-choose question names two options ("... hypertrophy or conduction disturbance?"), so its valid
answers are either option, both, or ``none`` — not the dozens of options its template has across all
questions. A query question's answer is a set: any non-empty subset of its template's options, written in the
options' order (:func:`canonical_order`), or one ``none`` option alone (:class:`Candidates` with ``subsets``;
``llm_finetune.inference`` decodes it item by item). Other question types pick one of their template's options.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llm_finetune.vqa.normalize import canon

SEPARATOR = ", "
"""Between the items of a multi-item answer (as ``llm_finetune.data.answer_text`` writes them)."""


@dataclass(frozen=True)
class Candidates:
    """What one question's constrained answer is chosen from (a sequence of its options, for callers that only
    pick one)."""

    options: tuple[str, ...]
    """Complete answers (``subsets`` false), or the items a subset is made of (``subsets`` true)."""
    subsets: bool = False
    """Query questions: the answer is a non-empty, option-ordered subset of the non-``none`` options, or one
    ``none`` option alone."""

    def __len__(self) -> int:
        return len(self.options)

    def __getitem__(self, k: int) -> str:
        return self.options[k]

    def __iter__(self):
        return iter(self.options)

    def is_null(self, k: int) -> bool:
        """Option ``k`` is a "none" answer (``none``, ``none of myocardial infarction``)."""
        return canon(self.options[k]).startswith("none")

    def extensions(self, items: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The answers one step from ``items`` (option indices, in order): ``items`` itself (stop) and ``items``
        plus one later non-null option; every single option when ``items`` is empty."""
        if not items:
            return [(k,) for k in range(len(self.options))]
        if self.is_null(items[0]):
            return [items]
        later = range(items[-1] + 1, len(self.options))
        return [items] + [(*items, k) for k in later if not self.is_null(k)]

    def text(self, items: tuple[int, ...]) -> str:
        return SEPARATOR.join(self.options[k] for k in items)


def canonical_order(answer: Sequence[str], options: Sequence[str]) -> list[str]:
    """A query answer's items in the options' order (ECG-QA scores sets, so the order is free to fix); the
    answer unchanged when an item is not among the options."""
    index = {canon(o): k for k, o in enumerate(options)}
    if not all(canon(a) in index for a in answer):
        return list(answer)
    return sorted(answer, key=lambda a: index[canon(a)])


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
        return [a, b, f"{a}{SEPARATOR}{b}"] + (["none"] if allows_none else [])
    if not template_options or (max_options is not None and len(template_options) > max_options):
        return None
    return list(template_options)


def question_candidates(
    question_type: str, attributes: Sequence[str] | str | None, template_options: Sequence[str] | None
) -> Candidates | None:
    """:class:`Candidates` of one question: a choose question's own two options (+ both, none), a query
    question's option subsets, else the template's options; ``None`` without options."""
    if question_type.endswith("-query") and template_options:
        return Candidates(tuple(template_options), subsets=True)
    plain = candidate_answers(question_type, attributes, template_options)
    return Candidates(tuple(plain)) if plain else None


def decoding_options(
    question_type: str, attributes: Sequence[str] | str | None, template_options: Sequence[str]
) -> list[str] | Candidates:
    """What ``EcgChat.generate_batch(allowed_answers=...)`` takes for one question: a plain list of answers,
    or :class:`Candidates` for a query question's option subsets."""
    c = question_candidates(question_type, attributes, template_options)
    if c is None:
        return list(template_options)
    return c if c.subsets else list(c.options)


def template_candidates(template_id: int, attributes: Sequence[str] | str | None = None) -> Candidates:
    """:func:`question_candidates` of an ECG-QA template (id 1-70, options from ``encoder.ecgqa.templates``)."""
    from encoder.ecgqa.templates import TEMPLATES

    t = TEMPLATES[template_id]
    return question_candidates(t.question_type, attributes, t.options) or Candidates(t.options)
