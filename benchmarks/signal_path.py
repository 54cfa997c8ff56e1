"""How fast stage 2 learns through each path: ECG tokens only, ECG tokens with the label-embedding summary token,
and the aux head's findings as a text hint — held-out exact match (constrained answers) after N steps.

    python benchmarks/signal_path.py --data_root runs/quickstart/cohort \
        --encoder runs/quickstart/stage1/encoder --steps 100 300 --eval_samples 200 --out_dir runs/signal_path

Starts from configs/quickstart/finetune.yaml (SmolLM2-135M-Instruct, batch 8). On 2 CPU cores each 100 steps take
~5 min; on a GPU seconds. Prints one table (majority and aux-head answerer beside each run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from encoder.config_io import load_config
from encoder.errors import DatasetError
from llm_finetune.train import FinetuneConfig, run_finetune

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "quickstart" / "finetune.yaml"
VARIANTS: dict[str, dict] = {
    "ecg_tokens": {"findings_hint": False, "label_embedding_init": False},
    "ecg_tokens+label_init": {"findings_hint": False, "label_embedding_init": True},
    "findings_hint": {"findings_hint": True, "label_embedding_init": False},
    "findings_hint+label_init": {"findings_hint": True, "label_embedding_init": True},
}
TYPES = ("single-verify", "single-choose")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data_root", required=True)
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--out_dir", default="runs/signal_path")
    ap.add_argument("--steps", type=int, nargs="+", default=[100, 300])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--eval_samples", type=int, default=300)
    ap.add_argument("--llm", default=None, help="override the config's LLM (e.g. packaged:tiny-random-llama)")
    ap.add_argument("--dtype", default="auto", help="LLM dtype (auto: bf16 on a GPU, else fp32)")
    args = ap.parse_args()
    rows = []
    for steps in args.steps:
        for name in args.variants:
            out = Path(args.out_dir) / f"{name}_{steps}"
            cfg = load_config(
                FinetuneConfig,
                str(CONFIG),
                data_root=args.data_root,
                encoder=args.encoder,
                output_dir=str(out),
                max_steps=steps,
                checkpoint_every=steps,
                max_eval_samples=args.eval_samples,
            )
            cfg.model.findings_hint = VARIANTS[name]["findings_hint"]
            cfg.model.projector.label_embedding_init = VARIANTS[name]["label_embedding_init"]
            cfg.model.dtype = args.dtype
            if args.llm:
                cfg.model.llm = args.llm
            settings = {"llm": cfg.model.llm, "dtype": args.dtype, "eval_samples": args.eval_samples,
                        "encoder": args.encoder, "data_root": args.data_root}  # fmt: skip
            done = out / "eval.json"
            saved = out / "signal_path_settings.json"
            if not done.is_file() or not saved.is_file() or json.loads(saved.read_text()) != settings:
                run_finetune(cfg)  # (re)train: no result yet, or one made with other settings
                saved.write_text(json.dumps(settings))
            if not done.is_file():
                raise DatasetError(
                    f"No held-out {'/'.join(TYPES)} questions were scored in {out}: check that {args.data_root} "
                    "has ECG-QA test questions (ecgqa/ptbxl/template/test)."
                )
            report = json.loads(done.read_text())
            rows.append((name, steps, report))
            print(f"[signal_path] {name} {steps} steps: model {report['model']:.3f}", flush=True)
    header = " | ".join(f"{t} model / aux / majority" for t in TYPES)
    print(f"\n| path | steps | {header} | all types model |")
    print("|---|---|" + "---|" * len(TYPES) + "---|")
    for name, steps, report in rows:
        cells = []
        for t in TYPES:
            r = report["by_type"].get(t, {})
            cells.append(
                f"{100 * r.get('model', float('nan')):.1f} / {100 * r.get('aux_head', float('nan')):.1f} / "
                f"{100 * r.get('majority', float('nan')):.1f}"
            )
        print(f"| {name} | {steps} | " + " | ".join(cells) + f" | {100 * report['model']:.1f} |")


if __name__ == "__main__":
    main()
