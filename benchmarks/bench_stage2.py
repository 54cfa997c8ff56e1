"""Stage-2 speed: training step time, answers/s (free-form and constrained), peak memory.

    python benchmarks/bench_stage2.py --llm packaged:smollm2-135m-instruct --steps 5 --batch 8
    python benchmarks/bench_stage2.py --llm packaged:tiny-random-llama         # seconds

Uses a random tiny stage-1 encoder and random ECGs (speed does not depend on the weights). Prints one table.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bridge.configuration import EcgLlmConfig
from bridge.modeling import EcgLlm
from bridge.projector import ProjectorConfig
from llm_finetune.inference import EcgChat
from llm_finetune.testing import write_tiny_encoder

QUESTIONS = [
    "Does this ECG show symptoms of non-diagnostic t abnormalities?",
    "Which rhythm does this ECG show, atrial flutter or sinus rhythm?",
    "Does this ECG show low amplitude t-wave?",
    "Which diagnostic superclass does this ECG show, myocardial infarction or hypertrophy?",
]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llm", default="packaged:tiny-random-llama")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--quantization", default="none", choices=["none", "4bit", "8bit"])
    ap.add_argument("--findings_hint", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--dtype", default="auto", help="LLM dtype: auto (bf16 on a GPU), float32, bfloat16")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-stage2-"))
    cfg = EcgLlmConfig(
        llm=args.llm,
        projector=ProjectorConfig(num_tokens=4),
        quantization=args.quantization,
        dtype=args.dtype,
        findings_hint=args.findings_hint,
    )
    t0 = time.perf_counter()
    model = EcgLlm.build(cfg, write_tiny_encoder(tmp / "encoder"))
    model.to(args.device)
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    ecg = torch.from_numpy(rng.standard_normal((args.batch, 12, 1000)).astype(np.float32))
    feats = model.encode_ecgs(ecg)
    items = [model.processor.encode_train(QUESTIONS[i % 4], "yes", 1) for i in range(args.batch)]
    batch = model.processor.pad(items)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    model.train()
    times = []
    for _ in range(args.steps + 1):
        t = time.perf_counter()
        inputs = {k: batch[k].to(args.device) for k in ("input_ids", "attention_mask", "labels")}
        loss = model(
            inputs["input_ids"], inputs["attention_mask"], features=feats, labels=inputs["labels"]
        ).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    step_s = float(np.median(times[1:]))
    chat = EcgChat(model.eval())
    arrays = ecg.numpy()
    n = 2 * args.batch
    ecgs = [[arrays[i % args.batch]] for i in range(n)]
    qs = [QUESTIONS[i % 4] for i in range(n)]
    t = time.perf_counter()
    chat.generate_batch(ecgs, qs, max_new_tokens=8, batch_size=args.batch)
    free_aps = n / (time.perf_counter() - t)
    t = time.perf_counter()
    chat.generate_batch(ecgs, qs, allowed_answers=[["yes", "no"]] * n, batch_size=args.batch)
    constrained_aps = n / (time.perf_counter() - t)
    print(
        "| llm | batch | tokens/seq | load s | train step s | answers/s (free, 8 tok) | answers/s (yes/no scored) | peak RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.llm} ({args.quantization}, {args.dtype}, {args.device}) | {args.batch} | {batch['input_ids'].shape[1]} | {load_s:.1f} | {step_s:.2f} | "
        f"{free_aps:.2f} | {constrained_aps:.2f} | {peak_rss_mib():.0f} |"
    )
    if torch.cuda.is_available():
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
