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


SIGNAL_PATH_SYSTEMS = (  # (column, folder under the quickstart run holding vqa/ and stage2/, system in predictions)
    ("LLM + findings hint", ".", "llm"),
    ("LLM, ECG tokens only (hint off)", "signal_path/tokens_only", "llm"),
    ("aux-head answerer", ".", "aux_head"),
    ("majority per template", ".", "majority"),
    ("question-only LLM (no ECG, no hint)", "signal_path/question_only", "llm"),
)


def _predictions(path: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {int(r["sample_id"]): r for r in rows}


def _steps(stage2: Path) -> str:
    import yaml

    path = stage2 / "config.yaml"
    return str((yaml.safe_load(path.read_text()) or {}).get("max_steps", "?")) if path.is_file() else "?"


def signal_path_table(out: Path) -> str | None:
    """Exact match % per question type of the five signal-path systems on the questions all of them answered
    (the signal-path runs' sample: the first N of the VQA step's); None until both signal-path runs exist."""
    preds = {}
    for column, folder, system in SIGNAL_PATH_SYSTEMS:
        path = out / folder / "vqa" / "predictions.jsonl"
        if not path.is_file():
            return None
        preds[column] = (_predictions(path), system, _steps(out / folder / "stage2"))
    common = sorted(set.intersection(*(set(p) for p, _, _ in preds.values())))
    first = preds[SIGNAL_PATH_SYSTEMS[0][0]][0]
    types = sorted({first[i]["question_type"] for i in common})
    head = [f"{c} ({s} steps)" if c.startswith(("LLM", "question")) else c for c, (_, _, s) in preds.items()]
    lines = ["| question type (n) | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for qtype in [*types, None]:
        ids = [i for i in common if qtype is None or first[i]["question_type"] == qtype]
        cells = [
            f"{100 * sum(bool(p[i][system]['correct']) for i in ids) / max(1, len(ids)):.1f}"
            for p, system, _ in preds.values()
        ]
        label = f"**overall** ({len(ids)})" if qtype is None else f"{qtype} ({len(ids)})"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return str(value)


def multitask_table(aux_metrics: Path) -> str | None:
    """Markdown table of stage 1's multi-task heads on the test fold (``aux_metrics.json``): one row per task,
    its metrics (AUROC, accuracy, MAE in ms, per noise type / feature where reported); None when absent."""
    if not aux_metrics.is_file():
        return None
    report = json.loads(aux_metrics.read_text())
    lines = ["| task | metrics (test fold; thresholds tuned on the validation fold) |", "|---|---|"]
    for task, metrics in report.items():
        lines.append(f"| {task} | " + "; ".join(f"{k}: {_fmt(v)}" for k, v in metrics.items()) + " |")
    return "\n".join(lines)


def _signal_path_section(out: Path) -> list[str]:
    signal = signal_path_table(out)
    if not signal:
        return []
    same = len({_steps(out / f / "stage2") for _, f, s in SIGNAL_PATH_SYSTEMS if s == "llm"}) == 1
    budget = (
        "All three LLMs train the same steps with the same schedule on the same training questions."
        if same
        else "The ECG-tokens-only and question-only LLMs train fewer steps than the hint model (see the "
        "header; `--signal_path_steps`): their gap to the hint model is partly budget."
    )
    return [
        "## What carries the answer: the signal path (same test questions)",
        "",
        "ECG-QA **test** split of the synthetic cohort (no setting here was chosen on it); exact match %, "
        f"the same questions for every column: the first questions of the VQA step's sample. {budget} "
        "Question-only: no ECG tokens, no hint (what the question alone gives away).",
        "",
        signal,
        "",
    ]


def wording_table(template: Path, reworded: Path) -> str | None:
    """Exact match % of the LLM per question type on the same questions in template wording and in held-out
    paraphrases (``predictions.jsonl`` of the two evaluations); None until both exist."""
    if not (template.is_file() and reworded.is_file()):
        return None
    a, b = _predictions(template), _predictions(reworded)
    common = sorted(set(a) & set(b))
    lines = [
        "| question type (n) | template wording | held-out paraphrase | difference |",
        "|---|---:|---:|---:|",
    ]
    for qtype in [*sorted({a[i]["question_type"] for i in common}), None]:
        ids = [i for i in common if qtype is None or a[i]["question_type"] == qtype]
        x, y = (100 * sum(bool(p[i]["llm"]["correct"]) for i in ids) / max(1, len(ids)) for p in (a, b))
        label = f"**overall** ({len(ids)})" if qtype is None else f"{qtype} ({len(ids)})"
        lines.append(f"| {label} | {x:.1f} | {y:.1f} | {y - x:+.1f} |")
    return "\n".join(lines)


def _open_questions_section(out: Path) -> list[str]:
    table = wording_table(out / "vqa" / "predictions.jsonl", out / "open_questions" / "predictions.jsonl")
    if not table:
        return []
    lines = [
        '## Open questions: held-out paraphrases and "describe this ECG"',
        "",
        "The VQA step's test questions asked again in wordings of the held-out paraphrase set "
        "(`llm_finetune/vqa/paraphrase.py`, never trained on); LLM exact match %:",
        "",
        table,
        "",
    ]
    report = out / "open_questions" / "report.json"
    describe = json.loads(report.read_text()).get("describe") if report.is_file() else None
    if describe:
        from llm_finetune.vqa.report import describe_section

        lines += describe_section(describe)[2:]
    return lines


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
    heads = multitask_table(stage1 / "aux_metrics.json")
    if heads:
        lines += ["### Multi-task heads (noise, extra systoles, axis, stage, pacemaker, leads, intervals)", "",
                  heads, ""]  # fmt: skip
    if curves:
        lines += ["## Training curves", "", "![training curves](training_curves.png)", ""]
    lines += ["## Stage 2 + ECG-QA evaluation (held-out test questions)", "", _read(vqa / "report.md"), ""]
    if (vqa / "accuracy_by_question_type.png").is_file():
        lines += ["![VQA by question type](vqa/accuracy_by_question_type.png)", ""]
    lines += _signal_path_section(out)
    lines += _open_questions_section(out)
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
