"""Benchmark: ECG-QA answers per second, measured side by side in one run.

    .venv/bin/python benchmarks/bench_vqa.py                                  # tiny random stage-2 model
    .venv/bin/python benchmarks/bench_vqa.py --model-dir runs/finetune/model  # a trained model

Rows: generation (``EcgChat.generate_batch``) free-form vs constrained to the template's options, with and
without the ECG (text-only baseline), at batch size 1 and ``--batch-size``; plus the aux-head answerer and the
CPU-only part of the harness (normalisation + scoring of the real ECG-QA shard's gold answers). Questions come
from the shipped real ECG-QA test shard (comparison questions, two ECGs each) and random model-ready arrays;
each row is the best of ``--repeats`` timed passes after one warm-up.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from timing import best_of

SHARD = Path(__file__).resolve().parents[1] / "tests" / "data" / "ecgqa" / "ptbxl"


def tiny_chat():
    from bridge.configuration import EcgLlmConfig
    from bridge.modeling import EcgLlm
    from encoder.configuration import EcgEncoderConfig
    from encoder.modeling import EcgEncoder
    from llm_finetune.inference import EcgChat

    torch.manual_seed(0)
    enc = EcgEncoder(EcgEncoderConfig(arch="resnet10", label_names=["NORM", "MI", "STTC", "CD", "HYP"]))
    model = EcgLlm.build(EcgLlmConfig(llm="packaged:tiny-random-llama"), enc)
    with tempfile.TemporaryDirectory() as tmp:  # save -> load, as an evaluation run does
        model.save_pretrained(Path(tmp) / "model")
        return EcgChat.from_pretrained(Path(tmp) / "model")


@torch.no_grad()
def full_prompt_choose(model, questions, counts, feats, options, chunk: int = 32) -> list[str]:
    """The earlier constrained decoding, kept as the baseline: every option runs its whole prompt again."""
    findings = model.findings(feats.probs)
    device = next(model.llm.parameters()).device
    pairs, row = [], 0
    for i, (q, n) in enumerate(zip(questions, counts, strict=True)):
        rows = list(range(row, row + n))
        hints = model.hint_lines([findings[r] for r in rows], q, feats.probs[rows])
        pairs += [(i, o, model.processor.encode_train(q, o, n, hints=hints), rows) for o in options[i]]
        row += n
    scores = []
    for s in range(0, len(pairs), chunk):
        part = pairs[s : s + chunk]
        batch = {k: v.to(device) for k, v in model.processor.pad([p[2] for p in part], side="right").items()}
        sub = feats.index([r for p in part for r in p[3]]).to(device)
        logits = model(batch["input_ids"], batch["attention_mask"], features=sub).logits[:, :-1]
        labels = batch["labels"][:, 1:]
        logp = torch.log_softmax(logits.float(), -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        scores += (logp * (labels != -100)).sum(-1).tolist()
    best: dict[int, tuple[float, str]] = {}
    for (i, o, _, _), sc in zip(pairs, scores, strict=True):
        if i not in best or sc > best[i][0]:
            best[i] = (sc, o)
    return [best[i][1] for i in range(len(questions))]


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model-dir", type=Path, default=None, help="stage-2 model dir (default: tiny random model)"
    )
    ap.add_argument("--questions", type=int, default=16, help="questions per timed pass")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return ap.parse_args()


def load_shard() -> tuple[list[dict], dict[int, list[str]]]:
    """The shipped real ECG-QA test shard and its templates' answer options."""
    shard = json.loads((SHARD / "template" / "test" / "80000.json").read_text())
    with open(SHARD / "answers_for_each_template.csv") as f:
        options = {int(r["template_id"]): ast.literal_eval(r["classes"]) for r in csv.DictReader(f)}
    return shard, options


def bench_generation(chat, ecgs, questions, allowed, args) -> None:
    """``generate_batch`` rows: batch size 1 and ``--batch-size``, with / without the ECG, free / constrained."""
    n = len(questions)

    def gen(bs: int, use_ecg: bool, constrained: bool):
        def run():
            for s in range(0, n, bs):
                chat.generate_batch(
                    ecgs[s : s + bs],
                    questions[s : s + bs],
                    use_ecg=use_ecg,
                    max_new_tokens=args.max_new_tokens,
                    allowed_answers=allowed[s : s + bs] if constrained else None,
                )

        return run

    for bs in sorted({1, args.batch_size}):
        for use_ecg in (True, False):
            for constrained in (False, True):
                name = f"generate bs={bs} {'ECG' if use_ecg else 'text-only'} {'constrained' if constrained else 'free'}"
                sec = best_of(gen(bs, use_ecg, constrained), args.repeats)
                print(f"{name:48s} {n / sec:10.2f}", flush=True)


def bench_constrained(chat, ecgs, questions, allowed, repeats: int) -> None:
    """Constrained decoding with the shared prompt cache vs the whole prompt per option (and whether they agree)."""
    from llm_finetune.inference import choose_answers

    n = len(questions)
    counts = [len(e) for e in ecgs]
    feats = chat.features(np.stack([a for e in ecgs for a in e]))
    n_opts = sum(map(len, allowed))
    shared = best_of(lambda: choose_answers(chat.model, questions, counts, feats, allowed), repeats)
    full = best_of(lambda: full_prompt_choose(chat.model, questions, counts, feats, allowed), repeats)
    same = choose_answers(chat.model, questions, counts, feats, allowed) == full_prompt_choose(
        chat.model, questions, counts, feats, allowed
    )
    print(f"{'constrained, one prompt pass, cache shared':48s} {n / shared:10.2f}")
    print(f"{'constrained, whole prompt per option (before)':48s} {n / full:10.2f}")
    print(
        f"  -> shared prompt cache {full / shared:.1f}x faster ({n_opts / n:.1f} options per question, "
        f"same answers: {same}; ECG features precomputed in both)"
    )


def bench_aux_head(chat, arrays: np.ndarray, options: dict[int, list[str]], repeats: int) -> None:
    """Aux-head probabilities of ``arrays`` (n, 12, T) (under inference mode) and the answerer on them."""
    from llm_finetune.vqa.baselines import AuxHeadAnswerer

    n = len(arrays)
    with torch.inference_mode():
        sec = best_of(lambda: chat.aux_probabilities(arrays), repeats)
    print(f"{'aux-head probabilities (one ECG each)':48s} {n / sec:10.2f}")
    aux = AuxHeadAnswerer(chat.label_names)
    probs = chat.aux_probabilities(arrays)
    single = {"question_type": "single-query", "question": "x", "attribute": None, "template_id": 3}
    sec = best_of(lambda: [aux.answer(single, options[3], p) for p in probs], repeats)
    print(f"{'aux-head answerer (from probabilities)':48s} {n / sec:10.0f}")


def bench_harness(shard: list[dict], options: dict[int, list[str]], repeats: int) -> None:
    """The CPU-only part of the harness: normalise + score the shard's gold answers written as free text."""
    from llm_finetune.vqa.normalize import AnswerNormalizer
    from llm_finetune.vqa.scoring import score_item, summarize

    norms = {tid: AnswerNormalizer(o) for tid, o in options.items()}
    texts = [", ".join(r["answer"]).upper() + "." for r in shard]

    def harness():
        preds = [norms[r["template_id"]](x).answers for r, x in zip(shard, texts, strict=True)]
        summarize([score_item(r, p) for r, p in zip(shard, preds, strict=True)], n_boot=200)

    sec = best_of(harness, repeats)
    print(f"{'normalise + score real shard (2,146 answers)':48s} {len(shard) / sec:10.0f}")


def main() -> None:
    args = _args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from llm_finetune.inference import EcgChat

    shard, options = load_shard()
    chat = EcgChat.from_pretrained(args.model_dir) if args.model_dir else tiny_chat()
    t = int(chat.encoder_config.input_samples)
    rng = np.random.default_rng(0)
    recs = shard[: args.questions]
    ecgs = [[rng.standard_normal((12, t)).astype(np.float32) for _ in r["ecg_id"]] for r in recs]
    questions = [r["question"] for r in recs]
    allowed = [options[r["template_id"]] for r in recs]
    print(
        f"model: {args.model_dir or 'tiny random Llama (packaged:tiny-random-llama)'}; torch threads {torch.get_num_threads()}"
    )
    print(
        f"{len(recs)} questions (2 ECGs each) per pass, max_new_tokens={args.max_new_tokens}, best of {args.repeats}\n"
    )
    print(f"{'what':48s} {'answers/s':>10s}")
    with torch.inference_mode():
        bench_generation(chat, ecgs, questions, allowed, args)
        bench_constrained(chat, ecgs, questions, allowed, args.repeats)
    bench_aux_head(chat, np.stack([e[0] for e in ecgs]), options, args.repeats)  # (n, 12, T): one ECG each
    bench_harness(shard, options, args.repeats)


if __name__ == "__main__":
    main()
