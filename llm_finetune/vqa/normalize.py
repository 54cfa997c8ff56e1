"""Free-form LLM text -> a set of answers from the question template's answer options.

ECG-QA scores a prediction by exact match of the answer *set*, so the generated text must first be
mapped onto the template's vocabulary (``answers_for_each_template.csv``). The rules, in order:

1. Canonicalise text and options: lower case, unicode dashes/quotes unified, every non-alphanumeric
   run replaced by one space (so ``"First-degree AV block."`` == ``"first degree av block"``).
2. The whole answer equals one option (or an alias of one) -> that option.
3. Otherwise scan the text for options and aliases as whole words, longest first, without overlaps
   (``"myocardial infarction in inferior leads"`` wins over ``"myocardial infarction"``). For
   yes/no templates only the first hit counts ("No, there is no ..." -> ``{"no"}``).
   Negation: outside yes/no templates, a hit right after a negation cue (``no``, ``not``,
   ``without``, ``absence of``, ``negative for`` ..., optionally followed by filler such as
   ``evidence of``) is dropped, and so is a hit joined to a negated one by ``or``/``nor``/``and``
   ("no atrial fibrillation or flutter"). A negated finding is never turned into the positive option.
4. Nothing found -> a fuzzy match (``difflib``, ratio >= ``fuzzy_cutoff``) of the whole answer to one
   option, refused when the text holds a negation cue or when a second option scores within
   ``fuzzy_margin`` of the best (complete vs incomplete bundle branch block); else the answer is out
   of vocabulary (empty set, scored wrong).

Aliases: yes/no/none/not-sure synonyms, PTB-XL SCP codes -> their descriptions (``"AFIB"`` ->
``"atrial fibrillation"``), bare lead names (``"aVF"`` -> ``"lead aVF"``), infarction stages by their first word
(``"old"`` -> ``"old stage of myocardial infarction"``; ``"none"`` -> ``"none of myocardial infarction"`` where the
template has no plain ``none``). An alias is only used when its target is one of the template's options.
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
WHOLE_ANSWER_ALIASES: dict[str, tuple[str, ...]] = {
    "none": ("no", "nope", "no findings"),
    "none of myocardial infarction": ("no", "nope"),
}
# Extra wording of a few ECG-QA answers.
EXTRA_ALIASES: dict[str, tuple[str, ...]] = {
    "first degree av block": ("1st degree av block", "first degree atrioventricular block"),
    "sinus rhythm": ("normal sinus rhythm", "nsr"),
    "normal heart axis": ("normal axis",),
    "early stage of myocardial infarction": ("early", "early stage", "early infarction"),
    "middle stage of myocardial infarction": ("middle", "middle stage", "evolving infarction"),
    "old stage of myocardial infarction": ("old", "old stage", "old infarction"),
    "unknown stage of myocardial infarction": ("unknown", "unknown stage"),
    # the stage query's "no infarction" answer: its template has no plain "none" option
    "none of myocardial infarction": (*ANSWER_SYNONYMS["none"], "no infarction", "no myocardial infarction"),
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
# Words that negate the finding right after them, and filler allowed between cue and finding.
NEGATION_CUES = frozenset(
    {"no", "not", "without", "absent", "absence", "negative", "free", "nor", "neither", "excluded"}
)
NEGATION_FILLER = frozenset(
    {
        "of",
        "for",
        "any",
        "a",
        "an",
        "the",
        "evidence",
        "signs",
        "sign",
        "features",
        "definite",
        "clear",
        "obvious",
        "is",
        "are",
        "there",
        "shows",
        "show",
        "present",
        "seen",
        "ecg",
        "this",
    }
)
_NEGATION_JOINERS = frozenset({"or", "nor", "and"})


def _is_negated(before: str) -> bool:
    """Whether the canonical text right before a hit ends with a negation cue (filler skipped)."""
    words = before.split()
    while words and words[-1] in NEGATION_FILLER and words[-1] not in NEGATION_CUES:
        words.pop()
    return bool(words) and words[-1] in NEGATION_CUES


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
    negated: tuple[str, ...] = ()
    """Options seen only in negated form ("no atrial fibrillation"); never part of ``answers``."""

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
    fuzzy_margin: float = 0.05
    """A fuzzy match is refused when the second-best option's ratio is within this of the best."""

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
        hits, negated = self._scan_hits(c)
        if hits:
            return NormalizedAnswer(tuple(sorted(hits)), "scan", text, tuple(sorted(negated)))
        has_cue = bool(NEGATION_CUES & set(c.split())) and not self._closed
        if c and self.fuzzy_cutoff <= 1.0 and not negated and not has_cue:
            best = self._fuzzy(c)
            if best is not None:
                return NormalizedAnswer((best,), "fuzzy", text)
        return NormalizedAnswer((), "oov", text, tuple(sorted(negated)))

    def _scan_hits(self, c: str) -> tuple[list[str], list[str]]:
        """Options found as whole words in ``c`` (longest first), split into affirmed and negated."""
        hits: list[str] = []
        negated: list[str] = []
        if self._pattern is None:
            return hits, negated
        prev_end, prev_negated = 0, False
        for m in self._pattern.finditer(c):  # regex alternation is longest-first: no overlaps
            option = self._scan[m.group(1)]
            if self._closed:
                return [option], []
            gap = c[prev_end : m.start()].split()
            joined = prev_negated and all(w in _NEGATION_JOINERS for w in gap)
            is_neg = joined or _is_negated(c[prev_end : m.start()])
            target = negated if is_neg else hits
            if option not in target:
                target.append(option)
            prev_end, prev_negated = m.end(), is_neg
        return [h for h in hits if h not in negated], negated

    def _fuzzy(self, c: str) -> str | None:
        """The one option within ``fuzzy_cutoff`` of ``c`` that no other option comes close to."""
        scored = sorted(
            ((difflib.SequenceMatcher(None, c, k).ratio(), k) for k in self._by_canon), reverse=True
        )
        if not scored or scored[0][0] < self.fuzzy_cutoff:
            return None
        if len(scored) > 1 and scored[1][0] >= scored[0][0] - self.fuzzy_margin:
            return None  # ambiguous: two options nearly as close
        return self._by_canon[scored[0][1]]


def normalize_answer(text: str, options: Sequence[str], *, use_scp_codes: bool = True) -> NormalizedAnswer:
    """One-shot convenience: map ``text`` onto ``options`` (see the module docstring for the rules)."""
    return _normalizer(tuple(options), use_scp_codes)(text)


@lru_cache(maxsize=512)
def _normalizer(options: tuple[str, ...], use_scp_codes: bool) -> AnswerNormalizer:
    return AnswerNormalizer(options, code_aliases=scp_code_aliases() if use_scp_codes else {})
