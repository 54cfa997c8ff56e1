"""Free-form LLM text -> a set of answers from the question template's answer options.

ECG-QA scores a prediction by exact match of the answer *set*, so the generated text must first be
mapped onto the template's vocabulary (``answers_for_each_template.csv``). The rules, in order:

1. Canonicalise text and options: lower case, unicode dashes/quotes unified, every non-alphanumeric
   run replaced by one space (so ``"First-degree AV block."`` == ``"first degree av block"``).
2. The whole answer equals one option (or an alias of one) -> that option.
3. Otherwise scan the text for options and aliases as whole words, longest first, without overlaps
   (``"myocardial infarction in inferior leads"`` wins over ``"myocardial infarction"``). For
   yes/no templates only the first hit counts ("No, there is no ..." -> ``{"no"}``).
4. Nothing found -> a fuzzy match (``difflib``, ratio >= ``fuzzy_cutoff``) of the whole answer to one
   option; else the answer is out of vocabulary (empty set, scored wrong).

Aliases: yes/no/none/not-sure synonyms, PTB-XL SCP codes -> their descriptions (``"AFIB"`` ->
``"atrial fibrillation"``), bare lead names (``"aVF"`` -> ``"lead aVF"``). An alias is only used when
its target is one of the template's options.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from encoder.labels import scp_code_aliases

# Synonyms of the closed-class answers, keyed by the ECG-QA answer they stand for.
ANSWER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "yes": ("yes", "y", "true", "correct", "present", "affirmative", "positive"),
    "no": (
        "no",
        "n",
        "false",
        "incorrect",
        "absent",
        "not present",
        "negative",
        "does not",
        "doesn t",
        "there is no",
        "there are no",
    ),
    "not sure": (
        "not sure",
        "unsure",
        "uncertain",
        "cannot be determined",
        "can not be determined",
        "unclear",
    ),
    "none": (
        "none",
        "nothing",
        "neither",
        "none of them",
        "none of the above",
        "no abnormality",
        "no abnormalities",
        "not applicable",
        "n a",
    ),
}
# Aliases that only count as the *whole* answer (never found inside a sentence): a bare "no" to a
# "which ... ?" question means "none", but "no" inside "no atrial fibrillation" must not.
WHOLE_ANSWER_ALIASES: dict[str, tuple[str, ...]] = {"none": ("no", "nope", "no findings")}
# Extra wording of a few ECG-QA answers.
EXTRA_ALIASES: dict[str, tuple[str, ...]] = {
    "first degree av block": ("1st degree av block", "first degree atrioventricular block"),
    "sinus rhythm": ("normal sinus rhythm", "nsr"),
    "normal heart axis": ("normal axis",),
}
_LEAD_SHORT = (
    "II",
    "III",
    "aVR",
    "aVL",
    "aVF",
    "V1",
    "V2",
    "V3",
    "V4",
    "V5",
    "V6",
)  # "I" alone is too ambiguous
_CLOSED = frozenset({"yes", "no", "not sure"})


def canon(text: str) -> str:
    """Lower-case, unify unicode, replace every non-alphanumeric run by one space, strip."""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    text = re.sub(r"[^0-9a-z]+", " ", text)
    return text.strip()


@dataclass(frozen=True)
class NormalizedAnswer:
    """The result of mapping one generated text onto a template's options."""

    answers: tuple[str, ...]
    """Options found, in the options' original spelling, sorted; empty when out of vocabulary."""
    method: str
    """How they were found: ``exact`` (whole text), ``scan`` (options inside the text), ``fuzzy`` or ``oov``."""
    raw: str = ""
    """The generated text."""

    @property
    def in_vocab(self) -> bool:
        return bool(self.answers)


@dataclass
class AnswerNormalizer:
    """Maps free text to answer sets for one template's options (build once per template and reuse)."""

    options: Sequence[str]
    """The template's answer options (``answers_for_each_template.csv``), original spelling."""
    code_aliases: dict[str, str] = field(default_factory=dict)
    """Extra alias -> option text (e.g. SCP code -> description); only aliases of present options are used."""
    fuzzy_cutoff: float = 0.85
    """Minimum ``difflib`` ratio of a fuzzy whole-answer match (set > 1 to disable fuzzy matching)."""

    def __post_init__(self) -> None:
        by_canon = {canon(o): o for o in self.options}
        phrases: dict[str, str] = dict(by_canon)  # canonical phrase -> option
        for target, syns in {**ANSWER_SYNONYMS, **EXTRA_ALIASES}.items():
            if canon(target) in by_canon:
                for s in syns:
                    phrases.setdefault(canon(s), by_canon[canon(target)])
        for alias, target in self.code_aliases.items():
            if canon(target) in by_canon and canon(alias):
                phrases.setdefault(canon(alias), by_canon[canon(target)])
        for lead in _LEAD_SHORT:
            if canon(f"lead {lead}") in by_canon:
                phrases.setdefault(canon(lead), by_canon[canon(f"lead {lead}")])
        # one-letter aliases ("y", "n") only count as the whole answer, never inside a sentence
        self._whole = dict(phrases)
        for target, syns in WHOLE_ANSWER_ALIASES.items():
            if canon(target) in by_canon:
                for syn in syns:
                    self._whole.setdefault(canon(syn), by_canon[canon(target)])
        self._scan = {p: o for p, o in phrases.items() if len(p) > 1 or p in by_canon}
        ordered = sorted(self._scan, key=len, reverse=True)
        self._pattern = (
            re.compile(r"\b(" + "|".join(re.escape(p) for p in ordered) + r")\b") if ordered else None
        )
        self._closed = set(map(canon, self.options)) <= {canon(c) for c in _CLOSED}
        self._by_canon = by_canon

    def __call__(self, text: str) -> NormalizedAnswer:
        c = canon(text)
        if c in self._whole:
            return NormalizedAnswer((self._whole[c],), "exact", text)
        hits: list[str] = []
        if self._pattern is not None:
            for m in self._pattern.finditer(c):  # regex alternation is longest-first: no overlaps
                option = self._scan[m.group(1)]
                if option not in hits:
                    hits.append(option)
                if self._closed:
                    break
        if hits:
            return NormalizedAnswer(tuple(sorted(hits)), "scan", text)
        if c and self.fuzzy_cutoff <= 1.0:
            best = difflib.get_close_matches(c, list(self._by_canon), n=1, cutoff=self.fuzzy_cutoff)
            if best:
                return NormalizedAnswer((self._by_canon[best[0]],), "fuzzy", text)
        return NormalizedAnswer((), "oov", text)


def normalize_answer(text: str, options: Sequence[str], *, use_scp_codes: bool = True) -> NormalizedAnswer:
    """One-shot convenience: map ``text`` onto ``options`` (see the module docstring for the rules)."""
    return _normalizer(tuple(options), use_scp_codes)(text)


@lru_cache(maxsize=512)
def _normalizer(options: tuple[str, ...], use_scp_codes: bool) -> AnswerNormalizer:
    return AnswerNormalizer(options, code_aliases=scp_code_aliases() if use_scp_codes else {})
