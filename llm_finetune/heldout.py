"""The quick held-out check at the end of ``finetune`` (``eval.json``); the full harness is ``llm_finetune.vqa``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from bridge.modeling import EcgLlm
from encoder.errors import EcgLlmError
from llm_finetune.data import QaSample, answer_text
from llm_finetune.features import FeatureStore
from llm_finetune.vqa.candidates import Candidates, candidate_answers
from llm_finetune.vqa.normalize import normalize_answer
from llm_finetune.vqa.scoring import exact_match


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


def evaluate_heldout(
    model: EcgLlm, heldout: list[QaSample], store: FeatureStore, train: list[QaSample], cfg
) -> dict:
    """Exact match of answer sets per question type for: the model (with ECG; a question-only run,
    ``cfg.ecg_input == "none"``, answers without), the same model with its ECG removed (``ecg_removed``:
    prompts it never saw in training; not run for a question-only model), the train-majority answer per
    template, and the aux-head answerer (stage-1 probabilities). ``split`` says which split was scored."""
    from collections import Counter, defaultdict

    from llm_finetune.inference import answer_questions
    from llm_finetune.vqa.baselines import AuxHeadAnswerer

    model.eval()
    template = template_options(cfg)
    options = [
        (
            Candidates(tuple(template[s.template_id]), subsets=True)  # query: option subsets
            if s.question_type.endswith("-query") and template.get(s.template_id)
            else candidate_answers(s.question_type, s.attribute, template.get(s.template_id), max_options=6)
        )
        if cfg.eval_constrained
        else None
        for s in heldout
    ]
    majority = {
        t: Counter(answer_text(s.answer) for s in train if s.template_id == t).most_common(1)[0][0]
        for t in {s.template_id for s in train}
    }
    rows = store.rows
    with_tokens = getattr(cfg, "ecg_input", "tokens") == "tokens"
    preds: dict[str, list[str]] = {"model": [""] * len(heldout)}
    if with_tokens:
        preds["ecg_removed"] = [""] * len(heldout)
    groups = [
        [i for i, o in enumerate(options) if o is not None],
        [i for i, o in enumerate(options) if o is None],
    ]
    for idx in groups:
        for start in tqdm(range(0, len(idx), 16), desc="eval", leave=False):
            part = idx[start : start + 16]
            samples = [heldout[i] for i in part]
            feats = store.features.index([rows[e] for s in samples for e in s.ecg_ids])
            opts = [options[i] for i in part] if options[part[0]] is not None else None
            qs = [s.question for s in samples]
            kw = dict(options=opts, max_new_tokens=cfg.eval_max_new_tokens)
            no_ecg = answer_questions(model, qs, [0] * len(samples), None, **kw)
            if with_tokens:
                with_ecg = answer_questions(model, qs, [len(s.ecg_ids) for s in samples], feats, **kw)
                for i, a, t in zip(part, with_ecg, no_ecg, strict=True):
                    preds["model"][i], preds["ecg_removed"][i] = a, t
            else:
                for i, a in zip(part, no_ecg, strict=True):
                    preds["model"][i] = a
    preds["majority"] = [majority.get(s.template_id, "no") for s in heldout]
    aux = AuxHeadAnswerer(model.label_names, model.encoder.config.label_thresholds)
    probs = store.features.probs.numpy()
    aux_answers = []
    for s, o in zip(heldout, options, strict=True):
        record = {"question_type": s.question_type, "question": s.question, "attribute": s.attribute}
        got = aux.answer(record, o or template.get(s.template_id, []), probs[rows[s.ecg_ids[0]]])
        aux_answers.append(", ".join(got) if got else "(abstain)")
    preds["aux_head"] = aux_answers
    report: dict = {
        "split": cfg.eval_split,
        "ecg_input": getattr(cfg, "ecg_input", "tokens"),
        "n": len(heldout),
        "constrained": cfg.eval_constrained,
        "by_type": defaultdict(dict),
    }
    for name, answers in preds.items():
        hits = [
            exact_match(_answer_set(a, template.get(s.template_id)), s.answer)
            for a, s in zip(answers, heldout, strict=True)
        ]
        report[name] = float(np.mean(hits))
        for qt in sorted({s.question_type for s in heldout}):
            sel = [h for h, s in zip(hits, heldout, strict=True) if s.question_type == qt]
            report["by_type"][qt][name] = float(np.mean(sel))
            report["by_type"][qt]["n"] = len(sel)
    report["by_type"] = dict(report["by_type"])
    report["examples"] = [
        {"question": s.question, "answer": answer_text(s.answer), **{k: v[i] for k, v in preds.items()}}
        for i, s in enumerate(heldout[:12])
    ]
    return report
