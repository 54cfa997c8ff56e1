"""How well a stage-1 encoder can answer ECG-QA on its own: the aux-head answerer's exact-match accuracy.

The stage-2 LLM reads the aux head's findings, so this bounds what the findings hint can carry, and it takes
seconds instead of a stage-2 run: use it to compare stage-1 settings before fine-tuning. Majority per template
(fit on the train split) is printed beside it. All seven question types by default; a comparison question is
answered from the predictions of both its ECGs. Tables by question type and attribute type (``--by_template``: also
per template id), with coverage where the answerer abstained.

    python benchmarks/aux_head_vqa.py --data_root runs/quickstart/cohort \
        --encoders runs/quickstart/stage1/encoder runs/other/encoder

Settings are chosen on the **valid** split (the default); ``--splits test`` is for the one labelled headline
run of the chosen setting (docs/evaluation_protocol.md).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from encoder.datasets.ecgqa import load_answer_options, load_ecgqa
from encoder.ecgqa.attributes import EcgAttributes
from encoder.ecgqa.templates import QUESTION_TYPES
from encoder.modeling import EcgEncoder
from llm_finetune.data import load_qa_samples
from llm_finetune.features import ptbxl_reader
from llm_finetune.question_prior import fit_verdict_shifts
from llm_finetune.vqa.baselines import AuxHeadAnswerer, fit_majority, majority_answer
from llm_finetune.vqa.normalize import canon


def aux_predictions(
    encoder: EcgEncoder, data_root: Path, ecg_ids: list[int]
) -> dict[int, tuple[np.ndarray, EcgAttributes | None]]:
    """ecg_id -> (calibrated per-label probabilities (L,), decoded multi-task attributes or None without a head)."""
    cfg = encoder.config
    read = ptbxl_reader(data_root, cfg.sampling_rate, cfg.input_samples, cfg.input_normalization)
    out = {}
    for start in range(0, len(ecg_ids), 256):
        ids = ecg_ids[start : start + 256]
        x = torch.from_numpy(np.stack([read(e) for e in ids]))  # (b, 12, T)
        probs = encoder.predict_proba(x).numpy()  # (b, L)
        attrs = encoder.predict_attributes(x) if encoder.aux_head is not None else [None] * len(ids)
        out.update(zip(ids, zip(probs, attrs, strict=True), strict=True))
    return out


def aux_probabilities(encoder: EcgEncoder, data_root: Path, ecg_ids: list[int]) -> dict[int, np.ndarray]:
    """ecg_id -> calibrated per-label probabilities (L,) of the encoder's classifier."""
    return {e: p for e, (p, _) in aux_predictions(encoder, data_root, ecg_ids).items()}


def train_shifts(encoder: EcgEncoder, data_root: Path) -> list[float | None]:
    """Prior shifts fitted as ``finetune`` fits them: on the train questions and their ECGs' probabilities."""
    train = load_qa_samples(data_root / "ecgqa", "train")
    ids = sorted({e for s in train for e in s.ecg_ids})
    probs = aux_probabilities(encoder, data_root, ids)
    prevalence = np.mean([probs[e] for e in ids], axis=0)  # (L,)
    return fit_verdict_shifts(train, list(encoder.config.label_names), prevalence)


def same(a: list[str], b: list[str]) -> bool:
    return sorted(map(canon, a)) == sorted(map(canon, b))


def score(
    answerer: AuxHeadAnswerer, records: list[dict], options: dict, preds: dict
) -> list[tuple[bool, bool]]:
    """(answered, right) per question, each question answered from the predictions of all its ECGs."""
    out = []
    for r in records:
        ids = [int(e) for e in r["ecg_id"]]
        probs = np.stack([preds[e][0] for e in ids])  # (n_ecgs, L)
        got = answerer.answer_all(
            r, options.get(int(r["template_id"]), []), probs, [preds[e][1] for e in ids]
        )
        out.append((got is not None, got is not None and same(got, r["answer"])))
    return out


def table(title: str, key: str, records: list[dict], results: dict[str, list[tuple[bool, bool]]]) -> None:
    """Markdown table of exact match % (coverage where below 100 %) per value of ``key``."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        groups[str(r[key])].append(i)
    order = sorted(groups, key=lambda g: (int(g) if g.isdigit() else 0, g))
    print(f"\n| {title} | n | " + " | ".join(results) + " |")
    print("|---|---|" + "---|" * len(results))
    for g in [*order, "overall"]:
        idx = groups[g] if g != "overall" else list(range(len(records)))
        cells = []
        for res in results.values():
            answered, right = np.array([res[i] for i in idx], dtype=bool).T
            cov = "" if answered.all() else f" (cov {100 * answered.mean():.0f}%)"
            cells.append(f"{100 * right.mean():.1f}{cov}")
        label = f"**{g}**" if g == "overall" else g
        print(f"| {label} | {len(idx)} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data_root", type=Path, required=True, help="PTB-XL-format cohort with ecgqa/")
    ap.add_argument("--encoders", type=Path, nargs="+", required=True, help="stage-1 encoder folders")
    ap.add_argument(
        "--splits",
        nargs="+",
        default=["valid"],
        help="ECG-QA splits to score: valid chooses (default); test only for the one headline run",
    )
    ap.add_argument(
        "--types", nargs="+", default=list(QUESTION_TYPES), help="question types (default: all 7)"
    )
    ap.add_argument("--by_template", action="store_true", help="also print one row per template id")
    ap.add_argument(
        "--prior_shift",
        action="store_true",
        help="also score each encoder with its yes/no prior-shifted as stage 2's verdict_prior_shift does",
    )
    ap.add_argument(
        "--change_margins",
        nargs="+",
        type=float,
        default=[],
        help="also score each encoder with these AuxHeadAnswerer.change_margin values (consecutive comparisons)",
    )
    args = ap.parse_args()

    root = args.data_root / "ecgqa"
    records = [
        dict(r) for s in args.splits for r in load_ecgqa(root, split=s) if r["question_type"] in args.types
    ]
    options = load_answer_options(root)
    majority = fit_majority(dict(r) for r in load_ecgqa(root, split="train"))
    ecg_ids = sorted({int(e) for r in records for e in r["ecg_id"]})
    results = {"majority": [(True, same(majority_answer(majority, r), r["answer"])) for r in records]}
    for path in args.encoders:
        encoder = EcgEncoder.from_pretrained(path).eval()
        preds = aux_predictions(encoder, args.data_root, ecg_ids)
        names = list(encoder.config.label_names)
        answerers = {str(path): AuxHeadAnswerer(names, encoder.config.label_thresholds)}
        if args.prior_shift:
            answerers[f"{path} (prior shift)"] = AuxHeadAnswerer(
                names, encoder.config.label_thresholds, logit_shifts=train_shifts(encoder, args.data_root)
            )
        for margin in args.change_margins:
            answerers[f"{path} (change margin {margin:g})"] = AuxHeadAnswerer(
                names, encoder.config.label_thresholds, change_margin=margin
            )
        for name, answerer in answerers.items():
            results[name] = score(answerer, records, options, preds)
    role = "HEADLINE (test)" if "test" in args.splits else "selection (valid)"
    print(f"[{role}] ECG-QA {'+'.join(args.splits)} questions, exact match % (abstentions count as wrong)")
    table("question type", "question_type", records, results)
    table("attribute type", "attribute_type", records, results)
    if args.by_template:
        table("template", "template_id", records, results)


if __name__ == "__main__":
    main()
