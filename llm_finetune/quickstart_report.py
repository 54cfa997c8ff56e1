"""``report.md`` of a quickstart run: headline numbers, tables and plots from every step's outputs."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from encoder.config_io import atomic_write_text  # noqa: E402

EXAMPLE_QUESTION = "Does this ECG show atrial fibrillation?"


def _read(path: Path) -> str:
    return path.read_text().strip() if path.is_file() else f"_(missing: {path.name})_"


def plot_training_curves(stage1_csv: Path, stage2_csv: Path, out_png: Path) -> Path | None:
    """Stage-1 loss + validation macro AUROC and stage-2 loss against the optimizer step."""
    if not stage1_csv.is_file() and not stage2_csv.is_file():
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    if stage1_csv.is_file():
        s1 = pd.read_csv(stage1_csv)
        train = s1[s1["split"] == "train"] if "split" in s1 else s1
        for col in ("loss", "contrastive", "bce"):
            if col in train and train[col].notna().any():
                axes[0].plot(train["step"], train[col], label=col)
        axes[0].set(title="Stage 1: training loss", xlabel="step")
        axes[0].legend()
        if "val_macro_auroc" in s1 and s1["val_macro_auroc"].notna().any():
            val = s1[s1["val_macro_auroc"].notna()]
            axes[1].plot(val["step"], val["val_macro_auroc"], marker="o")
        axes[1].set(title="Stage 1: validation macro AUROC", xlabel="step", ylim=(0.4, 1.0))
    if stage2_csv.is_file():
        s2 = pd.read_csv(stage2_csv)
        if "loss" in s2:
            axes[2].plot(s2["step"], s2["loss"], alpha=0.35, label="loss")
            axes[2].plot(s2["step"], s2["loss"].rolling(20, min_periods=1).mean(), label="20-step mean")
            axes[2].legend()
        axes[2].set(title="Stage 2: answer-token loss", xlabel="step", yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png


def _codes(scp_codes: object) -> dict:
    """PTB-XL's scp_codes cell (a dict, or its string form) -> {code: likelihood}."""
    import ast

    return scp_codes if isinstance(scp_codes, dict) else ast.literal_eval(str(scp_codes) or "{}")


def example_record(test_rows: list[int], seed: int) -> int:
    """The record the report shows: a seeded draw from the test fold, chosen without looking at any label."""
    import numpy as np

    return int(test_rows[int(np.random.default_rng([seed, 17]).integers(len(test_rows)))])


def plot_example_answer(
    cohort: Path, model_dir: Path, out_png: Path, seed: int = 0
) -> tuple[Path, str, str] | None:
    """Ask the trained model about one test-fold record (drawn blind to labels) and draw it with its answer."""
    from encoder.datasets.ptbxl import PtbXl
    from encoder.plotting import plot_12lead
    from llm_finetune.inference import EcgChat

    if not model_dir.is_dir():
        return None
    data = PtbXl(cohort, sampling_rate=500)
    test = data.split_indices("test")
    index = example_record(list(test), seed)
    ecg = data.read(index)
    chat = EcgChat.from_pretrained(model_dir)
    reply = chat.answer(ecg, EXAMPLE_QUESTION, max_new_tokens=16)
    top = ", ".join(f"{k} {v:.2f}" for k, v in list(reply.evidence[0].items())[:3])
    truth = ", ".join(sorted(_codes(data.table.iloc[index].get("scp_codes", {}))))
    answer = f"Q: {EXAMPLE_QUESTION}  A: {reply.text.strip()}  (aux head: {top}; true codes: {truth})"
    fig = plot_12lead(
        ecg, title=f"Synthetic test record ecg_id {int(data.table.iloc[index]['ecg_id'])}", answer=answer
    )
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png, reply.text.strip(), truth


def write_report(out: Path, timings: dict[str, float], seed: int = 0) -> Path:
    """Assemble ``<out>/report.md`` from the step folders of a quickstart run."""
    cohort, stage1, stage1_eval, stage2, vqa = (
        out / s for s in ("cohort", "stage1", "stage1_eval", "stage2", "vqa")
    )
    curves = plot_training_curves(stage1 / "metrics.csv", stage2 / "metrics.csv", out / "training_curves.png")
    example = plot_example_answer(cohort, stage2 / "model", out / "example_answer.png", seed)
    stage2_eval = json.loads((stage2 / "eval.json").read_text()) if (stage2 / "eval.json").is_file() else None

    total = sum(timings.values())
    lines = [
        "# ecg-llm quickstart report",
        "",
        f"Machine: {platform.machine()}, {platform.processor() or platform.system()}, "
        f"Python {platform.python_version()}. Everything below was computed offline on the synthetic cohort.",
        "",
        "| step | seconds |",
        "| --- | ---: |",
        *[f"| {name} | {sec:.0f} |" for name, sec in timings.items()],
        f"| **total** | **{total:.0f}** |",
        "",
        "## Stage 1: Jaccard-SigLIP encoder (test fold)",
        "",
        _read(stage1_eval / "results.md"),
        "",
        "![per-label AUROC](stage1_eval/per_label_auroc.png)",
        "",
    ]
    if curves:
        lines += ["## Training curves", "", "![training curves](training_curves.png)", ""]
    lines += ["## Stage 2 + ECG-QA evaluation (held-out test questions)", "", _read(vqa / "report.md"), ""]
    if (vqa / "accuracy_by_question_type.png").is_file():
        lines += ["![VQA by question type](vqa/accuracy_by_question_type.png)", ""]
    if stage2_eval:
        lines += [
            f"Fine-tuning's own held-out check ({stage2_eval.get('split', 'held-out')} split):",
            "",
            "```json",
            json.dumps(stage2_eval, indent=2)[:3000],
            "```",
            "",
        ]
    if example:
        png, answer, truth = example
        lines += [
            "## Example",
            "",
            f"Question: *{EXAMPLE_QUESTION}* Model: **{answer}** (true codes: {truth})",
            "",
            f"![example]({png.name})",
            "",
        ]
    lines += [
        "## Next",
        "",
        f"Chat with the model: `.venv/bin/ecgllm demo --model_dir {stage2 / 'model'}`",
        "",
        "Research software, not for diagnosis.",
    ]
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    return report
