"""The quick held-out check at the end of ``finetune`` (``eval.json``); the full harness is ``llm_finetune.vqa``.

It answers, normalises and scores with the harness's own pieces (candidates, normaliser, ``score_item`` /
``summarize``, the majority and aux-head baselines), so ``eval.json`` and the VQA report agree on the same
questions.
"""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from bridge.modeling import EcgLlm
from encoder.errors import EcgLlmError
from llm_finetune.data import QaSample, answer_text
from llm_finetune.features import FeatureStore
from llm_finetune.vqa.baselines import AuxHeadAnswerer, fit_majority, majority_answer
from llm_finetune.vqa.candidates import Candidates, question_candidates
from llm_finetune.vqa.normalize import normalize_answer
from llm_finetune.vqa.scoring import score_item, summarize

BATCH = 16
"""Questions per generation batch."""


def _answer_set(text: str, options: list[str] | None) -> list[str]:
    """The answer set a text stands for: the full harness's normalizer when the template's options are known."""
    if options:
        return list(normalize_answer(text, options).answers)
    return [a for a in text.split(",") if a.strip()]


def template_options(cfg) -> dict[int, list[str]]:
    """template_id -> answer options from ``answers_for_each_template.csv`` (empty dict when absent)."""
    from encoder.datasets.ecgqa import load_answer_options

    try:
        return load_answer_options(cfg.ecgqa_root or Path(cfg.data_root) / "ecgqa")
    except EcgLlmError:
        return {}


def as_record(sample: QaSample) -> dict:
    """A sample as the ECG-QA record the ``vqa`` package scores and answers."""
    return {
        "question": sample.question,
        "answer": list(sample.answer),
        "question_type": sample.question_type,
        "template_id": sample.template_id,
        "attribute_type": sample.attribute_type,
        "attribute": sample.attribute,
        "ecg_id": list(sample.ecg_ids),
    }


def _generate(
    model: EcgLlm,
    heldout: list[QaSample],
    store: FeatureStore,
    options: list[Candidates | None],
    with_tokens: bool,
    max_new_tokens: int,
) -> dict[str, list[str]]:
    """Raw answer texts of the model without its ECG (``ecg_removed``; a question-only model's own answers) and,
    ``with_tokens``, with it (``model``); constrained questions and free ones are batched apart."""
    from llm_finetune.inference import answer_questions

    texts: dict[str, list[str]] = {"model": [""] * len(heldout)}
    if with_tokens:
        texts["ecg_removed"] = [""] * len(heldout)
    groups = [
        [i for i, o in enumerate(options) if o is not None],
        [i for i, o in enumerate(options) if o is None],
    ]
    for idx in groups:
        for start in tqdm(range(0, len(idx), BATCH), desc="eval", leave=False):
            part = idx[start : start + BATCH]
            samples = [heldout[i] for i in part]
            feats = store.features.index([store.rows[e] for s in samples for e in s.ecg_ids])
            # a group's questions all have options (decoded among them), or none has
            given = [o for o in (options[i] for i in part) if o is not None]
            opts = given if given else None
            qs = [s.question for s in samples]
            no_ecg = answer_questions(
                model, qs, [0] * len(samples), None, options=opts, max_new_tokens=max_new_tokens
            )
            with_ecg = (
                answer_questions(
                    model,
                    qs,
                    [len(s.ecg_ids) for s in samples],
                    feats,
                    options=opts,
                    max_new_tokens=max_new_tokens,
                )
                if with_tokens
                else no_ecg
            )
            for i, a, t in zip(part, with_ecg, no_ecg, strict=True):
                texts["model"][i] = a
                if with_tokens:
                    texts["ecg_removed"][i] = t
    return texts


def _aux_head_answers(
    model: EcgLlm, records: list[dict], store: FeatureStore, template: dict[int, list[str]]
) -> list[list[str] | None]:
    """:meth:`AuxHeadAnswerer.answer_all` of each record (``None``: abstained) from the stored label probabilities
    and decoded multi-task head outputs of its ECGs, as the harness's aux-head baseline answers."""
    answerer = AuxHeadAnswerer(model.label_names, model.encoder.config.label_thresholds)
    probs = store.features.probs.numpy()  # (M, L)
    rows = sorted({store.rows[e] for r in records for e in r["ecg_id"]})
    aux = store.features.index(rows).aux
    decoded = dict(zip(rows, model.prompts.attributes(aux), strict=True)) if aux else {}
    out = []
    for r in records:
        ecg_rows = [store.rows[e] for e in r["ecg_id"]]
        predicted = [decoded.get(k) for k in ecg_rows]
        out.append(answerer.answer_all(r, template.get(r["template_id"], []), probs[ecg_rows], predicted))
    return out


def _report(cfg, records: list[dict], answers: dict[str, list], texts: dict[str, list[str]]) -> dict:
    """``eval.json``: overall and per question type accuracy of each system, and the first 12 questions."""
    report: dict = {
        "split": cfg.eval_split,
        "ecg_input": getattr(cfg, "ecg_input", "tokens"),
        "n": len(records),
        "constrained": cfg.eval_constrained,
        "by_type": {},
    }
    for name, preds in answers.items():
        items = [score_item(r, p or [], answered=p is not None) for r, p in zip(records, preds, strict=True)]
        summary = summarize(items, n_boot=1)  # the report's accuracies (eval.json has no bootstrap CIs)
        report[name] = summary["overall"]["accuracy"]
        for qt, group in summary.get("by_question_type", {}).items():
            report["by_type"].setdefault(qt, {})[name] = group["accuracy"]
            report["by_type"][qt]["n"] = group["n"]
    report["by_type"] = dict(sorted(report["by_type"].items()))
    shown = {
        name: [", ".join(p) if p is not None else "(abstain)" for p in preds]
        for name, preds in answers.items()
    }
    report["examples"] = [
        {
            "question": r["question"],
            "answer": answer_text(r["answer"]),
            **{k: (texts[k] if k in texts else shown[k])[i] for k in answers},
        }
        for i, r in enumerate(records[:12])
    ]
    return report


def evaluate_heldout(
    model: EcgLlm, heldout: list[QaSample], store: FeatureStore, train: list[QaSample], cfg
) -> dict:
    """Exact match of answer sets per question type for: the model (with ECG; a question-only run,
    ``cfg.ecg_input == "none"``, answers without), the same model with its ECG removed (``ecg_removed``:
    prompts it never saw in training; not run for a question-only model), the majority answer of ``train`` (the
    ECG-QA training questions, without describe / paraphrase extras; :func:`fit_majority`), and the aux-head
    answerer (:meth:`AuxHeadAnswerer.answer_all`). ``split`` says which split was scored."""
    model.eval()
    template = template_options(cfg)
    options: list[Candidates | None] = [
        question_candidates(s.question_type, s.attribute, template.get(s.template_id))
        if cfg.eval_constrained
        else None
        for s in heldout
    ]
    with_tokens = getattr(cfg, "ecg_input", "tokens") == "tokens"
    texts = _generate(model, heldout, store, options, with_tokens, cfg.eval_max_new_tokens)
    answers: dict[str, list[list[str] | None]] = {
        name: [_answer_set(t, template.get(s.template_id)) for t, s in zip(got, heldout, strict=True)]
        for name, got in texts.items()
    }
    records = [as_record(s) for s in heldout]
    majority = fit_majority(as_record(s) for s in train)
    answers["majority"] = [majority_answer(majority, r) for r in records]
    answers["aux_head"] = _aux_head_answers(model, records, store, template)
    return _report(cfg, records, answers, texts)
