"""ECG-QA-format questions over a synthetic cohort, with answers that are true for the generated labels.

Samples follow ECG-QA's JSON fields (template_id, question_id, sample_id, question_type, attribute_type, question,
answer, ecg_id, attribute) and answer vocabulary (``answers.csv`` / ``answers_for_each_template.csv``). Template ids
are chosen by their answer-option sets in ``answers_for_each_template.csv``; the wording of templates 68-70 is
ECG-QA's own (as in the real test shard); the other wordings follow ECG-QA's style.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from encoder.synth.measurements import abnormal_features

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
    "LAO/LAE": "left atrial overload/enlargement", "QWAVE": "q waves present",
}  # fmt: skip
DIAGNOSTIC = (
    "1AVB",
    "CLBBB",
    "CRBBB",
    "IRBBB",
    "LAFB",
    "LVH",
    "IMI",
    "ASMI",
    "AMI",
    "ISC_",
    "NDT",
    "LNGQT",
    "LAO/LAE",
)
FORM = ("LVOLT", "VCLVH", "STD_", "STE_", "INVT", "NDT", "LOWT", "LNGQT", "PVC", "PAC", "QWAVE")
RHYTHM = ("SR", "SBRAD", "STACH", "SARRH", "AFIB", "AFLT")
SUPERCLASS_NAMES = {
    "CD": "conduction disturbance",
    "HYP": "hypertrophy",
    "MI": "myocardial infarction",
    "STTC": "st/t change",
}
SUPERCLASS_OF = {
    "1AVB": "CD", "CLBBB": "CD", "CRBBB": "CD", "IRBBB": "CD", "LAFB": "CD", "WPW": "CD", "LVH": "HYP", "LAO/LAE": "HYP",
    "IMI": "MI", "ASMI": "MI", "AMI": "MI", "ISC_": "STTC", "NDT": "STTC", "LNGQT": "STTC",
}  # fmt: skip
VERIFIABLE = tuple(ATTRIBUTE_NAMES)
SPLIT_FOLDS = {"train": tuple(range(1, 9)), "valid": (9,), "test": (10,)}


@dataclass
class QaRecord:
    """What the question writer needs to know about one generated record."""

    ecg_id: int
    patient_id: int
    strat_fold: int
    codes: frozenset[str]
    features: dict[str, float]
    has_p: bool


def _attrs(codes: frozenset[str], pool: tuple[str, ...]) -> list[str]:
    return [ATTRIBUTE_NAMES[c] for c in pool if c in codes]


def _superclasses(codes: frozenset[str]) -> list[str]:
    return sorted({SUPERCLASS_NAMES[SUPERCLASS_OF[c]] for c in codes if c in SUPERCLASS_OF})


def _or_none(items: list[str]) -> list[str]:
    return items if items else ["none"]


def _verify(rec: QaRecord, rng: np.random.Generator) -> dict:
    present = [c for c in VERIFIABLE if c in rec.codes]
    if present and rng.random() < 0.5:
        code, answer = str(rng.choice(present)), "yes"
    else:
        code, answer = str(rng.choice([c for c in VERIFIABLE if c not in rec.codes])), "no"
    attr = ATTRIBUTE_NAMES[code]
    if code in DIAGNOSTIC:
        return dict(template_id=1, question_type="single-verify", question=f"Does this ECG show symptoms of {attr}?",
                    answer=[answer], attribute=[attr])  # fmt: skip
    return dict(template_id=2, question_type="single-verify", question=f"Does this ECG show {attr}?",
                answer=[answer], attribute=[attr])  # fmt: skip


def _choose(rec: QaRecord, rng: np.random.Generator) -> dict:
    kind = str(rng.choice(["superclass", "diagnostic", "form", "rhythm"], p=[0.25, 0.35, 0.2, 0.2]))
    if kind == "superclass":
        pool, present = list(SUPERCLASS_NAMES.values()), _superclasses(rec.codes)
        tid, lead = 3, "Which diagnostic superclass does this ECG show"
    else:
        codes = {"diagnostic": DIAGNOSTIC, "form": FORM, "rhythm": RHYTHM}[kind]
        pool, present = [ATTRIBUTE_NAMES[c] for c in codes], _attrs(rec.codes, codes)
        tid, lead = {"diagnostic": (4, "Which symptom does this ECG show"),
                     "form": (6, "Which form-related symptom does this ECG show"),
                     "rhythm": (7, "Which rhythm does this ECG show")}[kind]  # fmt: skip
    first = str(rng.choice(present)) if present and rng.random() < 0.7 else str(rng.choice(pool))
    second = str(rng.choice([p for p in pool if p != first]))
    pair = [first, second] if rng.random() < 0.5 else [second, first]
    answer = _or_none([p for p in pair if p in present])
    return dict(template_id=tid, question_type="single-choose", question=f"{lead}, {pair[0]} or {pair[1]}?",
                answer=answer, attribute=pair)  # fmt: skip


def _query(rec: QaRecord, rng: np.random.Generator) -> dict:
    kind = str(rng.choice(["diagnostic", "form", "rhythm"]))
    codes = {"diagnostic": DIAGNOSTIC, "form": FORM, "rhythm": RHYTHM}[kind]
    tid, question = {"diagnostic": (8, "What diagnostic symptoms does this ECG show?"),
                     "form": (11, "What form-related symptoms does this ECG show?"),
                     "rhythm": (10, "What rhythm does this ECG show?")}[kind]  # fmt: skip
    answer = _or_none(_attrs(rec.codes, codes))
    return dict(
        template_id=tid, question_type="single-query", question=question, answer=answer, attribute=answer
    )


def _compare(a: QaRecord, b: QaRecord, consecutive: bool, rng: np.random.Generator) -> dict:
    qtype = "comparison_consecutive" if consecutive else "comparison_irrelevant"
    sa, sb = set(_attrs(a.codes, VERIFIABLE)), set(_attrs(b.codes, VERIFIABLE))
    if rng.random() < 0.5:  # verify
        pool = sorted(sa | sb) or [ATTRIBUTE_NAMES["SR"]]
        attr = (
            str(rng.choice(pool)) if rng.random() < 0.7 else str(rng.choice(list(ATTRIBUTE_NAMES.values())))
        )
        if rng.random() < 0.5:
            tid = 50 if consecutive else 64
            q, yes = f"Do both ECGs show symptoms of {attr}?", attr in sa and attr in sb
        else:
            tid = 51 if consecutive else 65
            q = f"Is {attr} newly detected in the second ECG as compared to the first ECG?"
            yes = attr in sb and attr not in sa
        return dict(template_id=tid, question_type=f"{qtype}-verify", attribute_type="scp_code", question=q,
                    answer=["yes" if yes else "no"])  # fmt: skip
    which = int(rng.integers(3))
    if which == 0:
        tid, q, ans = (
            47 if consecutive else 61,
            "What symptoms are newly detected in the second ECG as compared to the first ECG?",
            sb - sa,
        )
    elif which == 1:
        tid, q, ans = (
            48 if consecutive else 62,
            "What symptoms of the first ECG have disappeared in the second ECG?",
            sa - sb,
        )
    else:
        tid, q, ans = (
            49 if consecutive else 63,
            "What symptoms of the second ECG are still present as compared to the first ECG?",
            sa & sb,
        )
    return dict(template_id=tid, question_type=f"{qtype}-query", attribute_type="scp_code", question=q,
                answer=_or_none(sorted(ans)))  # fmt: skip


def _numeric(a: QaRecord, b: QaRecord, rng: np.random.Generator) -> dict:
    fa, fb = abnormal_features(a.features), abnormal_features(b.features)
    which = int(rng.integers(3))
    tid, q, ans = [
        (68, "What numeric features of the second ECG now have become normal as compared to the first ECG?", fa - fb),
        (69, "What numeric features of the second ECG are now considered abnormal values as compared to the first ECG?", fb - fa),
        (70, "What numeric features of the second ECG are still abnormal as compared to the first ECG?", fa & fb),
    ][which]  # fmt: skip
    return dict(template_id=tid, question_type="comparison_irrelevant-query", attribute_type="numeric_feature",
                question=q, answer=_or_none(sorted(ans)))  # fmt: skip


def make_questions(records: list[QaRecord], questions_per_record: float, seed: int) -> dict[str, list[dict]]:
    """ECG-QA samples per split ("train", "valid", "test"); a question only uses ECGs of its split's folds."""
    rng = np.random.default_rng([seed, 7])
    out: dict[str, list[dict]] = {}
    question_ids: dict[str, int] = {}
    sample_id = 0
    for split, folds in SPLIT_FOLDS.items():
        recs = [r for r in records if r.strat_fold in folds]
        samples: list[dict] = []
        n = int(round(questions_per_record * len(recs)))
        by_patient: dict[int, list[QaRecord]] = {}
        for r in recs:
            by_patient.setdefault(r.patient_id, []).append(r)
        pairs = [v for v in by_patient.values() if len(v) >= 2]
        with_p = [r for r in recs if r.has_p]
        for _ in range(n if len(recs) >= 2 else 0):
            kind = str(
                rng.choice(
                    ["verify", "choose", "query", "compare", "numeric"], p=[0.35, 0.2, 0.2, 0.17, 0.08]
                )
            )
            if kind == "compare":
                consecutive = bool(pairs) and rng.random() < 0.4
                if consecutive:
                    a, b = pairs[int(rng.integers(len(pairs)))][:2]
                else:
                    i, j = rng.choice(len(recs), 2, replace=False)
                    a, b = recs[int(i)], recs[int(j)]
                s, ids = _compare(a, b, consecutive, rng), [a.ecg_id, b.ecg_id]
                s["attribute"] = None
            elif kind == "numeric" and len(with_p) >= 2:
                i, j = rng.choice(len(with_p), 2, replace=False)
                a, b = with_p[int(i)], with_p[int(j)]
                s, ids = _numeric(a, b, rng), [a.ecg_id, b.ecg_id]
                s["attribute"] = None
            else:
                rec = recs[int(rng.integers(len(recs)))]
                fn = {"verify": _verify, "choose": _choose}.get(kind, _query)
                s, ids = fn(rec, rng), [rec.ecg_id]
                s["attribute_type"] = "scp_code"
            qid = question_ids.setdefault(s["question"], len(question_ids))
            samples.append(
                {
                    "template_id": s["template_id"],
                    "question_id": qid,
                    "sample_id": sample_id,
                    "question_type": s["question_type"],
                    "attribute_type": s["attribute_type"],
                    "question": s["question"],
                    "answer": s["answer"],
                    "ecg_id": ids,
                    "attribute": s["attribute"],
                }
            )
            sample_id += 1
        out[split] = samples
    return out
