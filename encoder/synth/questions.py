"""ECG-QA-format questions for all 70 templates, with answers that are true for each record's labels and attributes.

Samples follow ECG-QA's JSON fields (template_id, question_id, sample_id, question_type, attribute_type, question,
answer, ecg_id, attribute); ids, types, wordings and options come from :mod:`encoder.ecgqa.templates`. A template
whose attribute group (``EcgAttributes.available``) is unknown for a record is not written for it, and counted.
Query samples never carry their gold answer in ``attribute``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from encoder.ecgqa.attributes import (
    AXIS_CLASSES,
    EXTRA_SYSTOLE_TYPES,
    INFARCTION_STAGES,
    LEADS,
    NOISE_TYPES,
    NUMERIC_FEATURES,
    EcgAttributes,
)
from encoder.ecgqa.rules import COMPARISON_RULES, ComparisonRule, any_of_statements
from encoder.ecgqa.templates import TEMPLATES, template_ids

# SCP code -> ECG-QA attribute string (lower-cased SCP description, as in ECG-QA's answers.csv).
ATTRIBUTE_NAMES: dict[str, str] = {
    "SR": "sinus rhythm", "SBRAD": "sinus bradycardia", "STACH": "sinus tachycardia", "SARRH": "sinus arrhythmia",
    "AFIB": "atrial fibrillation", "AFLT": "atrial flutter", "1AVB": "first degree av block",
    "CLBBB": "complete left bundle branch block", "CRBBB": "complete right bundle branch block",
    "IRBBB": "incomplete right bundle branch block", "LAFB": "left anterior fascicular block",
    "LVH": "left ventricular hypertrophy", "VCLVH": "voltage criteria (qrs) for left ventricular hypertrophy",
    "LVOLT": "low qrs voltages in the frontal and horizontal leads", "IMI": "myocardial infarction in inferior leads",
    "ASMI": "myocardial infarction in anteroseptal leads", "AMI": "myocardial infarction in anterior leads",
    "ISC_": "non-specific ischemic", "STD_": "non-specific st depression", "STE_": "non-specific st elevation",
    "INVT": "inverted t-waves", "NDT": "non-diagnostic t abnormalities", "LOWT": "low amplitude t-wave",
    "LNGQT": "long qt-interval", "PVC": "ventricular premature complex", "PAC": "atrial premature complex",
    "LAO/LAE": "left atrial overload/enlargement", "QWAVE": "q waves present", "DIG": "digitalis effect",
    "NST_": "non-specific st changes", "NT_": "non-specific t-wave changes", "HVOLT": "high qrs voltage",
    "TAB_": "t-wave abnormality", "PACE": "normal functioning artificial pacemaker",
}  # fmt: skip
SUPERCLASS_NAMES = {"CD": "conduction disturbance", "HYP": "hypertrophy", "MI": "myocardial infarction",
                    "STTC": "st/t change"}  # fmt: skip
SUPERCLASS_OF = {
    "1AVB": "CD", "CLBBB": "CD", "CRBBB": "CD", "IRBBB": "CD", "LAFB": "CD", "WPW": "CD", "LVH": "HYP", "LAO/LAE": "HYP",
    "IMI": "MI", "ASMI": "MI", "AMI": "MI", "ISC_": "STTC", "NDT": "STTC", "LNGQT": "STTC", "DIG": "STTC",
    "NST_": "STTC",
}  # fmt: skip
SPLIT_FOLDS = {"train": tuple(range(1, 9)), "valid": (9,), "test": (10,)}
NOT_SURE_LIKELIHOOD = (15.0, 80.0)
"""PTB-XL likelihood range (inclusive) that ECG-QA answers "not sure" in template 1."""


def _pool(template_id: int) -> tuple[str, ...]:
    """SCP codes whose attribute string is an answer option of the template."""
    options = set(TEMPLATES[template_id].options)
    return tuple(c for c, n in ATTRIBUTE_NAMES.items() if n in options)


DIAGNOSTIC, FORM, RHYTHM, FORM_LEAD = _pool(4), _pool(6), _pool(7), _pool(18)
VERIFIABLE = tuple(ATTRIBUTE_NAMES)
GROUP_OF_ATTRIBUTE_TYPE = {"noise": "noise", "extra_systole": "extra_systole", "heart_axis": "heart_axis",
                           "stage_of_infarction": "stage_of_infarction", "numeric_feature": "numeric_feature"}  # fmt: skip
GROUP_OF_TEMPLATE = {15: "pacemaker", 17: "form_leads", 18: "form_leads", 19: "form_leads"}


@dataclass
class QaRecord:
    """What the question writer needs to know about one record."""

    ecg_id: int
    patient_id: int
    strat_fold: int
    codes: frozenset[str]
    features: dict[str, float] = field(default_factory=dict)
    """Unused by the writer (numeric questions read ``attributes.numeric_ms``); kept for old callers."""
    has_p: bool = True
    attributes: EcgAttributes = field(default_factory=EcgAttributes)
    likelihoods: dict[str, float] = field(default_factory=dict)
    """SCP code -> PTB-XL likelihood (0-100); a code without one counts as certain."""


def required_group(template_id: int) -> str | None:
    """The ``EcgAttributes.available`` group a template needs (None: SCP codes only)."""
    t = TEMPLATES[template_id]
    return GROUP_OF_TEMPLATE.get(template_id, GROUP_OF_ATTRIBUTE_TYPE.get(t.attribute_type))


Q = tuple[dict, list | None, list[str]]  # (format fields, attribute, answer)
Writer = Callable[[tuple[QaRecord, ...], np.random.Generator], Q | None]


def _names(codes: frozenset[str], pool: tuple[str, ...]) -> list[str]:
    return [ATTRIBUTE_NAMES[c] for c in pool if c in codes]


def _or_none(items: list[str], none: str = "none") -> list[str]:
    return list(items) if items else [none]


def _yn(truth: bool) -> list[str]:
    return ["yes" if truth else "no"]


def _pick(
    rng: np.random.Generator, present: list[str] | tuple[str, ...], pool: list[str] | tuple[str, ...]
) -> str:
    """Half the time one of ``present`` (when any), else any of ``pool``."""
    return (
        str(rng.choice(list(present))) if len(present) and rng.random() < 0.5 else str(rng.choice(list(pool)))
    )


def _pair(rng: np.random.Generator, present: list[str], pool: list[str]) -> list[str]:
    first = _pick(rng, present, pool)
    second = str(rng.choice([p for p in pool if p != first]))
    return [first, second] if rng.random() < 0.5 else [second, first]


def _choose(rng: np.random.Generator, present: list[str], pool: list[str], **fmt: str) -> Q:
    present = [p for p in present if p in pool]
    pair = _pair(rng, present, pool)
    return dict(attr1=pair[0], attr2=pair[1], **fmt), pair, _or_none([p for p in pair if p in present])


def _superclass_codes(name: str) -> list[str]:
    return [c for c in DIAGNOSTIC if SUPERCLASS_NAMES.get(SUPERCLASS_OF.get(c, "")) == name]


def _superclasses(codes: frozenset[str]) -> list[str]:
    return sorted({SUPERCLASS_NAMES[SUPERCLASS_OF[c]] for c in codes if c in SUPERCLASS_OF})


# --- SCP codes, one ECG ---------------------------------------------------------------------------------------


def _t1(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q | None:
    rec = r[0]
    code = _pick(rng, [c for c in DIAGNOSTIC if c in rec.codes], DIAGNOSTIC)
    lik = rec.likelihoods.get(code, 100.0)
    lo, hi = NOT_SURE_LIKELIHOOD
    if code in rec.codes and 0 < lik < lo:
        return None  # too unlikely to call present, too stated to call absent
    answer = ["no"] if code not in rec.codes else ["not sure"] if lo <= lik <= hi else ["yes"]
    return dict(attr=ATTRIBUTE_NAMES[code]), [ATTRIBUTE_NAMES[code]], answer


def _t2(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    pool = FORM + RHYTHM
    code = _pick(rng, [c for c in pool if c in r[0].codes], pool)
    return dict(attr=ATTRIBUTE_NAMES[code]), [ATTRIBUTE_NAMES[code]], _yn(code in r[0].codes)


def _choose_scp(pool: tuple[str, ...]) -> Writer:
    def write(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
        return _choose(rng, _names(r[0].codes, pool), [ATTRIBUTE_NAMES[c] for c in pool])

    return write


def _t3(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    return _choose(rng, _superclasses(r[0].codes), list(SUPERCLASS_NAMES.values()))


def _t5(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    sup = str(rng.choice([s for s in SUPERCLASS_NAMES.values() if len(_superclass_codes(s)) >= 2]))
    pool = tuple(_superclass_codes(sup))
    return _choose(rng, _names(r[0].codes, pool), [ATTRIBUTE_NAMES[c] for c in pool], superclass=sup)


def _query_scp(pool: tuple[str, ...]) -> Writer:
    def write(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
        return {}, None, _or_none(_names(r[0].codes, pool))

    return write


def _t9(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    sup = str(rng.choice(list(SUPERCLASS_NAMES.values())))
    return dict(superclass=sup), [sup], _or_none(_names(r[0].codes, tuple(_superclass_codes(sup))))


def _t12(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    sup = _pick(rng, _superclasses(r[0].codes), list(SUPERCLASS_NAMES.values()))
    return dict(superclass=sup), [sup], _yn(sup in _superclasses(r[0].codes))


def _any_of(template_id: int) -> Writer:
    pool = set(any_of_statements(template_id))

    def write(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
        return {}, None, _yn(bool(pool & set(_names(r[0].codes, VERIFIABLE))))

    return write


def _t15(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    return {}, None, _yn(r[0].attributes.pacemaker)


def _form_leads(rec: QaRecord) -> dict[str, list[str]]:
    """Form statement (attribute string) -> its leads, for the record's lead-localised form statements."""
    return {ATTRIBUTE_NAMES[c]: [LEADS[i] for i, on in enumerate(m) if on]
            for c, m in rec.attributes.form_leads.items() if c in FORM_LEAD}  # fmt: skip


def _t17(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    located = _form_leads(r[0])
    name = _pick(rng, [n for n, leads in located.items() if leads], [ATTRIBUTE_NAMES[c] for c in FORM_LEAD])
    lead = _pick(rng, located.get(name, []), LEADS)
    return dict(attr=name, lead=lead), [name], _yn(lead in located.get(name, []))


def _t18(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    located, lead = _form_leads(r[0]), str(rng.choice(LEADS))
    return dict(lead=lead), None, _or_none([n for n, leads in located.items() if lead in leads])


def _t19(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    located = _form_leads(r[0])
    name = _pick(rng, list(located), [ATTRIBUTE_NAMES[c] for c in FORM_LEAD])
    return dict(attr=name), [name], _or_none([f"lead {x}" for x in located.get(name, [])])


# --- heart axis, infarction stage, extra systoles (one ECG) ---------------------------------------------------


def _class_writers(get: Callable[[EcgAttributes], list[str] | None], verify_pool: tuple[str, ...],
                   choose_pool: tuple[str, ...], none: str = "none") -> tuple[Writer, Writer, Writer]:  # fmt: skip
    """Verify / choose / query writers for an attribute with a set of classes (``get`` -> None = undetermined)."""

    def verify(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q | None:
        present = get(r[0].attributes)
        if present is None:
            return None
        name = _pick(rng, [p for p in present if p in verify_pool], verify_pool)
        return dict(attr=name), [name], _yn(name in present)

    def choose(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q | None:
        present = get(r[0].attributes)
        return None if present is None else _choose(rng, present, list(choose_pool))

    def query(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q | None:
        present = get(r[0].attributes)
        return None if present is None else ({}, None, _or_none(sorted(present), none))

    return verify, choose, query


def _axis(a: EcgAttributes) -> list[str] | None:
    return None if a.heart_axis is None else [a.heart_axis]


def _stage(a: EcgAttributes) -> list[str]:
    return [] if a.infarction_stage is None else [a.infarction_stage]


def _extra(a: EcgAttributes) -> list[str]:
    return sorted(a.extra_systoles)


_AXIS = _class_writers(_axis, AXIS_CLASSES, AXIS_CLASSES)
_STAGE = _class_writers(
    _stage, INFARCTION_STAGES, INFARCTION_STAGES[:3], none="none of myocardial infarction"
)
_EXTRA = _class_writers(_extra, EXTRA_SYSTOLE_TYPES, EXTRA_SYSTOLE_TYPES)


def _t36(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    return {}, None, _yn(bool(r[0].attributes.extra_systoles))


# --- noise (one ECG) ------------------------------------------------------------------------------------------


def _noise_in(a: EcgAttributes, lead: str | None) -> list[str]:
    """Noise types in the lead (any lead when None), in :data:`NOISE_TYPES` order."""
    idx = None if lead is None else LEADS.index(lead)
    return [t for t in NOISE_TYPES if any(m for i, m in enumerate(a.noisy_leads(t)) if idx in (None, i))]


def _noisy_lead(rng: np.random.Generator, a: EcgAttributes, noise_type: str | None) -> str:
    return _pick(rng, [x for x, on in zip(LEADS, a.noisy_leads(noise_type), strict=True) if on], LEADS)


def _t26(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    a = r[0].attributes
    kind = _pick(rng, _noise_in(a, None), NOISE_TYPES)
    lead = _noisy_lead(rng, a, kind)
    return dict(attr=kind, lead=lead), [kind], _yn(kind in _noise_in(a, lead))


def _t27(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    kind = _pick(rng, _noise_in(r[0].attributes, None), NOISE_TYPES)
    return dict(attr=kind), [kind], _yn(kind in _noise_in(r[0].attributes, None))


def _t28(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    lead = _noisy_lead(rng, r[0].attributes, None)
    return dict(lead=lead), ["any kind of noises"], _yn(bool(_noise_in(r[0].attributes, lead)))


def _t29(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    return {}, ["any kind of noises"], _yn(bool(_noise_in(r[0].attributes, None)))


def _t30(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    return _choose(rng, _noise_in(r[0].attributes, None), list(NOISE_TYPES))


def _t31(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    lead = _noisy_lead(rng, r[0].attributes, None)
    return _choose(rng, _noise_in(r[0].attributes, lead), list(NOISE_TYPES), lead=lead)


def _t32(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    return {}, None, _or_none(_noise_in(r[0].attributes, None))


def _t33(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    lead = _noisy_lead(rng, r[0].attributes, None)
    return dict(lead=lead), None, _or_none(_noise_in(r[0].attributes, lead))


def _t34(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
    a = r[0].attributes
    kind = _pick(rng, _noise_in(a, None), NOISE_TYPES)
    leads = [f"lead {x}" for x, on in zip(LEADS, a.noisy_leads(kind), strict=True) if on]
    return dict(attr=kind), [kind], _or_none(leads)


# --- numeric features -----------------------------------------------------------------------------------------


def _measured(*recs: QaRecord) -> list[str]:
    return [f for f in NUMERIC_FEATURES if all(r.attributes.numeric_classes(f) for r in recs)]


def _abnormal(rec: QaRecord, feature: str) -> bool:
    return feature in rec.attributes.abnormal_features()


RANGES = ("below the normal range", "within the normal range", "above the normal range")


def _t39(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q | None:
    if not _measured(r[0]):
        return None
    feature = str(rng.choice(_measured(r[0])))
    classes = r[0].attributes.numeric_classes(feature)
    rng_name = _pick(rng, sorted(classes), RANGES)
    return dict(feature=feature, range=rng_name), [feature, rng_name], _yn(rng_name in classes)


def _t40(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q | None:
    if not _measured(r[0]):
        return None
    feature = str(rng.choice(_measured(r[0])))
    return _choose(rng, sorted(r[0].attributes.numeric_classes(feature)), list(RANGES), feature=feature)


def _t41(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q | None:
    if not _measured(r[0]):
        return None
    feature = str(rng.choice(_measured(r[0])))
    return dict(feature=feature), [feature], sorted(r[0].attributes.numeric_classes(feature))


def _t42(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q | None:
    if len(_measured(r[0])) < len(NUMERIC_FEATURES):
        return None  # an unmeasured feature might be abnormal
    return {}, None, _or_none([f for f in NUMERIC_FEATURES if _abnormal(r[0], f)])


# --- comparisons of two ECGs (first, second); the relations are encoder.ecgqa.rules' -------------------------


def _scp_compare_verify(rule: ComparisonRule) -> Writer:
    def write(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
        sa, sb = _names(r[0].codes, VERIFIABLE), _names(r[1].codes, VERIFIABLE)
        name = _pick(rng, sorted(set(sa) | set(sb)), list(ATTRIBUTE_NAMES.values()))
        return dict(attr=name), [name], _yn(rule.holds(name in sa, name in sb))

    return write


def _scp_changed(rule: ComparisonRule) -> Writer:
    def write(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
        sa, sb = set(_names(r[0].codes, VERIFIABLE)), set(_names(r[1].codes, VERIFIABLE))
        return {}, None, _yn(any(rule.holds(n in sa, n in sb) for n in sa | sb))

    return write


def _scp_compare_query(rule: ComparisonRule) -> Writer:
    def write(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q:
        options = set(TEMPLATES[rule.template_id].options)
        sa, sb = set(_names(r[0].codes, VERIFIABLE)), set(_names(r[1].codes, VERIFIABLE))
        names = [
            n
            for n in sorted(sa | sb | options)
            if n in options and rule.holds(n in sa, n in sb) and n != "none"
        ]
        return {}, None, _or_none(names)

    return write


def _num_compare_verify(rule: ComparisonRule) -> Writer:
    def write(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q | None:
        both = _measured(r[0], r[1])
        if not both:
            return None
        feature = str(rng.choice(both))
        return (
            dict(feature=feature),
            [feature],
            _yn(rule.holds(_abnormal(r[0], feature), _abnormal(r[1], feature))),
        )

    return write


def _num_compare_query(rule: ComparisonRule) -> Writer:
    def write(r: tuple[QaRecord, ...], rng: np.random.Generator) -> Q | None:
        if len(_measured(r[0], r[1])) < len(NUMERIC_FEATURES):
            return None
        return (
            {},
            None,
            _or_none([f for f in NUMERIC_FEATURES if rule.holds(_abnormal(r[0], f), _abnormal(r[1], f))]),
        )

    return write


_COMPARISON_WRITERS: dict[tuple[str, str], Callable[[ComparisonRule], Writer]] = {
    ("scp", "verify"): _scp_compare_verify,
    ("scp", "changed"): _scp_changed,
    ("scp", "query"): _scp_compare_query,
    ("numeric", "verify"): _num_compare_verify,
    ("numeric", "query"): _num_compare_query,
}
"""(rule attribute, rule kind) -> writer of a comparison template from its :class:`ComparisonRule`."""


WRITERS: dict[int, Writer] = {
    1: _t1, 2: _t2, 3: _t3, 4: _choose_scp(DIAGNOSTIC), 5: _t5, 6: _choose_scp(FORM), 7: _choose_scp(RHYTHM),
    8: _query_scp(DIAGNOSTIC), 9: _t9, 10: _query_scp(RHYTHM), 11: _query_scp(FORM), 12: _t12,
    13: _any_of(13), 14: _any_of(14), 15: _t15, 16: _any_of(16),
    17: _t17, 18: _t18, 19: _t19, 20: _AXIS[0], 21: _AXIS[1], 22: _AXIS[2], 23: _STAGE[0], 24: _STAGE[1],
    25: _STAGE[2], 26: _t26, 27: _t27, 28: _t28, 29: _t29, 30: _t30, 31: _t31, 32: _t32, 33: _t33, 34: _t34,
    35: _EXTRA[0], 36: _t36, 37: _EXTRA[1], 38: _EXTRA[2], 39: _t39, 40: _t40, 41: _t41, 42: _t42,
    **{t: _COMPARISON_WRITERS[(rule.attribute, rule.kind)](rule) for t, rule in COMPARISON_RULES.items()},
}  # fmt: skip
"""Template id -> writer of (wording fields, attribute, answer) for one ECG or a (first, second) pair."""


def write_sample(
    template_id: int, recs: tuple[QaRecord, ...], rng: np.random.Generator, skipped: Counter | None = None
) -> dict | None:
    """One sample of the template about ``recs`` (one record, or first and second), without ids.

    None (counted in ``skipped`` under ``(template_id, reason)``) when an attribute group it needs is unavailable
    for one of the records ("unavailable") or the record leaves the answer undetermined ("undetermined").
    """
    group = required_group(template_id)
    if group is not None and any(group not in r.attributes.available for r in recs):
        if skipped is not None:
            skipped[(template_id, "unavailable")] += 1
        return None
    out = WRITERS[template_id](recs, rng)
    if out is None:
        if skipped is not None:
            skipped[(template_id, "undetermined")] += 1
        return None
    fields, attribute, answer = out
    t = TEMPLATES[template_id]
    return {
        "template_id": template_id,
        "question_type": t.question_type,
        "attribute_type": t.attribute_type,
        "question": t.wording.format(**fields),
        "answer": list(answer),
        "ecg_id": [r.ecg_id for r in recs],
        "attribute": attribute,
    }


def _records_for(
    template_id: int, recs: list[QaRecord], pairs: list[tuple[QaRecord, QaRecord]], rng: np.random.Generator
) -> tuple[QaRecord, ...] | None:
    qtype = TEMPLATES[template_id].question_type
    if qtype.startswith("single"):
        return (recs[int(rng.integers(len(recs)))],)
    if qtype.startswith("comparison_consecutive"):
        return pairs[int(rng.integers(len(pairs)))] if pairs else None
    for _ in range(10):
        i, j = rng.choice(len(recs), 2, replace=False)
        if recs[int(i)].patient_id != recs[int(j)].patient_id:
            return recs[int(i)], recs[int(j)]
    return None


def _consecutive_pairs(recs: list[QaRecord]) -> list[tuple[QaRecord, QaRecord]]:
    by_patient: dict[int, list[QaRecord]] = {}
    for r in recs:
        by_patient.setdefault(r.patient_id, []).append(r)
    pairs = []
    for group in by_patient.values():
        group = sorted(group, key=lambda r: r.ecg_id)
        pairs += list(zip(group[:-1], group[1:], strict=True))
    return pairs


def make_questions(
    records: list[QaRecord],
    questions_per_record: float,
    seed: int,
    subset: Literal["ptbxl", "mimic-iv-ecg"] = "ptbxl",
    skipped: Counter | None = None,
) -> dict[str, list[dict]]:
    """ECG-QA samples per split ("train", "valid", "test"); a question only uses ECGs of its split's folds.

    Templates are drawn uniformly from ``subset`` (all 70, or the 60 of MIMIC-IV-ECG); a draw that cannot be
    written (see :func:`write_sample`, or no consecutive pair in the split: reason "no_pair") is counted in
    ``skipped`` and redrawn, up to 20 draws per sample.
    """
    rng = np.random.default_rng([seed, 7])
    ids = template_ids(subset)
    out: dict[str, list[dict]] = {}
    question_ids: dict[str, int] = {}
    sample_id = 0
    for split, folds in SPLIT_FOLDS.items():
        recs = [r for r in records if r.strat_fold in folds]
        pairs = _consecutive_pairs(recs)
        n = int(round(questions_per_record * len(recs))) if len(recs) >= 2 else 0
        samples: list[dict] = []
        for _ in range(20 * n):
            if len(samples) >= n:
                break
            tid = int(rng.choice(ids))
            chosen = _records_for(tid, recs, pairs, rng)
            if chosen is None:
                if skipped is not None:
                    skipped[(tid, "no_pair")] += 1
                continue
            s = write_sample(tid, chosen, rng, skipped)
            if s is None:
                continue
            qid = question_ids.setdefault(s["question"], len(question_ids))
            samples.append({"template_id": tid, "question_id": qid, "sample_id": sample_id, **s})
            sample_id += 1
        out[split] = [{k: s[k] for k in _FIELDS} for s in samples]
    return out


_FIELDS = ("template_id", "question_id", "sample_id", "question_type", "attribute_type", "question", "answer",
           "ecg_id", "attribute")  # fmt: skip
