"""Write an evaluation's results: JSON (machine), Markdown tables (paper), bar charts (PNG), predictions.

Every report records how to reproduce it: the exact command, the resolved config, the seed, sha256 of
every model weight file, library versions and the git commit of the code.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from encoder.config_io import atomic_write_json, atomic_write_text, to_plain
from llm_finetune.vqa.scoring import ATTRIBUTE_TYPES, QUESTION_TYPES

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".model")
SYSTEM_ORDER = ("llm", "llm_constrained", "ecg_removed", "aux_head", "majority")
SYSTEM_TITLES = {
    "llm": "LLM (ECG, free text)",
    "llm_constrained": "LLM (ECG, constrained)",
    "ecg_removed": "Trained LLM, ECG removed (unseen prompts)",
    "aux_head": "Aux-head answerer",
    "majority": "Majority per template",
}


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def model_hashes(model_dir: str | Path | None) -> dict[str, str]:
    """sha256 of every weight file under ``model_dir`` (relative path -> hex digest)."""
    if model_dir is None or not Path(model_dir).is_dir():
        return {}
    root = Path(model_dir)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    return {str(p.relative_to(root)): sha256_file(p) for p in files}


def environment() -> dict:
    """Versions and code revision, for the provenance block."""
    import numpy
    import torch
    import transformers

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "git_commit": commit or None,
    }


def _systems(results: dict) -> list[str]:
    present = results["systems"]
    return [s for s in SYSTEM_ORDER if s in present] + [s for s in present if s not in SYSTEM_ORDER]


def _cell(m: dict | None) -> str:
    if not m or m.get("n", 0) == 0:
        return "–"
    lo, hi = m["ci95"]
    text = f"{100 * m['accuracy']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
    if "coverage" in m:
        answered = m.get("accuracy_answered")
        acc = f", {100 * answered:.1f} on answered" if answered is not None and answered == answered else ""
        text += f" (cov {100 * m['coverage']:.0f}%{acc})"
    return text


def markdown_table(results: dict, by: str = "question_type") -> str:
    """Exact-match accuracy (%) [95 % CI] per group (rows) and system (columns)."""
    systems = _systems(results)
    groups = _ordered_groups(results, by)
    head = f"| {by.replace('_', ' ')} | n | " + " | ".join(SYSTEM_TITLES.get(s, s) for s in systems) + " |"
    lines = [head, "|" + "---|" * (len(systems) + 2)]
    first = results["systems"][systems[0]]
    for g in groups:
        n = first[f"by_{by}"].get(g, {}).get("n", 0)
        cells = [_cell(results["systems"][s][f"by_{by}"].get(g)) for s in systems]
        lines.append(f"| {g} | {n} | " + " | ".join(cells) + " |")
    cells = [_cell(results["systems"][s]["overall"]) for s in systems]
    lines.append(f"| **overall** | {first['overall']['n']} | " + " | ".join(f"**{c}**" for c in cells) + " |")
    return "\n".join(lines)


def prf_table(results: dict) -> str:
    """Set precision / recall / F1 (%) of query question types."""
    systems = _systems(results)
    first = results["systems"][systems[0]]["by_question_type"]
    qtypes = [
        q
        for q in _ordered_groups(results, "question_type")
        if q.endswith("query") and "f1" in first.get(q, {})
    ]
    if not qtypes:
        return ""
    lines = ["| question type | " + " | ".join(SYSTEM_TITLES.get(s, s) for s in systems) + " |"]
    lines.append("|" + "---|" * (len(systems) + 1))
    for q in qtypes:
        cells = []
        for s in systems:
            m = results["systems"][s]["by_question_type"].get(q, {})
            cells.append(
                f"{100 * m['precision']:.1f} / {100 * m['recall']:.1f} / {100 * m['f1']:.1f}"
                if "f1" in m
                else "–"
            )
        lines.append(f"| {q} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ordered_groups(results: dict, by: str) -> list[str]:
    keys: set[str] = set()
    for s in results["systems"].values():
        keys |= set(s.get(f"by_{by}", {}))
    known = {"question_type": QUESTION_TYPES, "attribute_type": ATTRIBUTE_TYPES}.get(by, ())
    return [k for k in known if k in keys] + sorted(k for k in keys if k not in known)


def bar_chart(results: dict, path: str | Path, by: str = "question_type") -> Path:
    """Grouped bars: accuracy per group and system, with 95 % CI error bars; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    systems = _systems(results)
    groups = _ordered_groups(results, by)
    width = 0.8 / max(1, len(systems))
    x = np.arange(len(groups))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(groups) + 2), 4.8))
    for k, s in enumerate(systems):
        ms = [results["systems"][s][f"by_{by}"].get(g) for g in groups]
        acc = np.array([m["accuracy"] if m else np.nan for m in ms])
        lo = np.array([m["ci95"][0] if m else np.nan for m in ms])
        hi = np.array([m["ci95"][1] if m else np.nan for m in ms])
        err = np.nan_to_num(np.stack([acc - lo, hi - acc]) * 100)
        ax.bar(
            x + (k - (len(systems) - 1) / 2) * width,
            acc * 100,
            width,
            yerr=err,
            capsize=2,
            label=SYSTEM_TITLES.get(s, s),
        )
    ax.set_xticks(x, [g.replace("comparison_", "cmp_") for g in groups], rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("exact-match accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"ECG-QA accuracy by {by.replace('_', ' ')} (95% bootstrap CI)")
    ax.legend(fontsize=7, ncol=len(systems), loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def type_breakdown(items: list) -> dict[str, dict[str, dict[str, float]]]:
    """Question type -> attribute type -> ``n`` / ``accuracy`` / ``coverage`` of scored items (ScoredItem)."""
    groups: dict[tuple[str, str], list] = {}
    for it in items:
        groups.setdefault((it.question_type, it.attribute_type), []).append(it)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (qtype, atype), g in groups.items():
        out.setdefault(qtype, {})[atype] = {
            "n": len(g),
            "accuracy": sum(it.correct for it in g) / len(g),
            "coverage": sum(it.answered for it in g) / len(g),
        }
    return out


def breakdown_table(results: dict, system: str) -> str:
    """Accuracy (%) of one system per question type (rows) × attribute type (columns); ``n`` and coverage."""
    table = results["systems"][system].get("by_question_x_attribute")
    if not table:
        return ""
    qtypes = [q for q in QUESTION_TYPES if q in table] + sorted(q for q in table if q not in QUESTION_TYPES)
    present = {a for row in table.values() for a in row}
    atypes = [a for a in ATTRIBUTE_TYPES if a in present] + sorted(present - set(ATTRIBUTE_TYPES))
    lines = ["| question type | " + " | ".join(a.replace("_", " ") for a in atypes) + " |"]
    lines.append("|" + "---|" * (len(atypes) + 1))
    for q in qtypes:
        cells = []
        for a in atypes:
            m = table[q].get(a)
            cov = f", cov {100 * m['coverage']:.0f}%" if m and m["coverage"] < 1 else ""
            cells.append(f"{100 * m['accuracy']:.1f} (n={m['n']}{cov})" if m else "–")
        lines.append(f"| {q} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe_section(d: dict) -> list[str]:
    """Markdown lines of the "describe this ECG" scores and a few examples."""
    parts = [
        '## "Describe this ECG"',
        "",
        f"{d['n']} ECGs; SCP codes the description names (parsed back) against the record's codes: label micro-F1 "
        f"LLM **{d['llm_micro_f1']:.3f}**, aux head's own verdicts {d['aux_head_micro_f1']:.3f}, ratio "
        f"**{d['ratio']:.2f}**.",
        "",
    ]
    for ex in d.get("examples", [])[:4]:
        parts.append(f'- truth {", ".join(ex["truth"]) or "(none)"}: "{ex["generated"].strip()}"')
    return [*parts, ""]


def markdown_report(results: dict) -> str:
    """The whole human-readable report."""
    prov = results.get("provenance", {})
    parts = ["# ECG-QA evaluation", ""]
    if prov:
        parts += [
            f"- command: `{prov.get('command', '')}`",
            f"- seed: {prov.get('seed')}",
            f"- created: {prov.get('created')}",
        ]
        for name, digest in prov.get("model_sha256", {}).items():
            parts.append(f"- sha256 `{name}`: `{digest}`")
    parts += [
        "",
        f"Questions: {results['n_questions']}. Cells: exact-match accuracy (%) [95 % bootstrap CI].",
        "",
    ]
    if results.get("wording", "template") != "template":
        parts += [f"Wording: {results['wording']} (the same questions as the template-worded report).", ""]
    parts += ["## By question type", "", markdown_table(results, "question_type"), ""]
    parts += ["## By attribute type", "", markdown_table(results, "attribute_type"), ""]
    for system in _systems(results):
        table = breakdown_table(results, system)
        if table:
            title = SYSTEM_TITLES.get(system, system)
            parts += [f"## {title}: question type × attribute type (accuracy %)", "", table, ""]
    prf = prf_table(results)
    if prf:
        parts += ["## Query questions: set precision / recall / F1 (%)", "", prf, ""]
    if results.get("normalization"):
        parts += [
            "## Answer normalisation",
            "",
            "| system | exact | found in text | fuzzy | out of vocabulary |",
            "|---|---|---|---|---|",
        ]
        for s, st in results["normalization"].items():
            parts.append(
                f"| {s} | {100 * st['exact']:.1f}% | {100 * st['scan']:.1f}% | {100 * st['fuzzy']:.1f}% | {100 * st['oov']:.1f}% |"
            )
        parts.append("")
    if results.get("throughput"):
        parts += ["## Throughput", ""]
        for s, t in results["throughput"].items():
            rate = f", {t['answers_per_s']:.2f} answers/s in generate_batch" if "answers_per_s" in t else ""
            if "answers_per_s_incl_ecg_reading" in t:
                rate += f" ({t['answers_per_s_incl_ecg_reading']:.2f} answers/s incl. reading ECGs)"
            parts.append(f"- {s}: {t['answers']} answers in {t['seconds']:.1f} s{rate}")
        parts.append("")
    if results.get("agreement"):
        parts += ["## LLM vs aux-head agreement (hallucination flag)", ""]
        for s, a in results["agreement"].items():
            parts.append(
                f"- {s}: "
                + ", ".join(f"{k} = {v:.3f}" if isinstance(v, float) else f"{k} = {v}" for k, v in a.items())
            )
        parts.append("")
    if results.get("describe"):
        parts += describe_section(results["describe"])
    if results.get("leakage"):
        parts += ["## Leakage check", ""]
        for stage in ("stage1", "stage2"):
            e = results["leakage"].get(stage)
            if e:
                frac = f" ({100 * e['fraction']:.1f}%)" if e.get("fraction") is not None else ""
                parts.append(
                    f"- {stage}: overlap {e.get('n_overlap')}{frac} of {results['leakage']['n_eval_ecgs']} ECGs — {e['source']}"
                )
        parts.append("")
    if results.get("majority_note"):
        parts += [f"Majority baseline: {results['majority_note']}.", ""]
    return "\n".join(parts)


def write_report(
    results: dict,
    out_dir: str | Path,
    *,
    cfg=None,
    command: str = "",
    model_dir: str | Path | None = None,
    seed=None,
) -> dict[str, Path]:
    """Write ``report.json``, ``report.md``, ``accuracy_by_{question,attribute}_type.png``, ``predictions.jsonl``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = dict(results)
    results["provenance"] = {
        "command": command,
        "config": to_plain(cfg) if cfg is not None else None,
        "seed": seed if seed is not None else getattr(cfg, "seed", None),
        "model_dir": str(model_dir) if model_dir is not None else None,
        "model_sha256": model_hashes(model_dir),
        "environment": environment(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    sample_file = getattr(cfg, "sample_file", None)
    if sample_file is not None and Path(sample_file).is_file():
        results["provenance"]["sample_file"] = {"path": str(sample_file), "sha256": sha256_file(sample_file)}
    predictions = results.pop("predictions", [])
    paths = {
        "json": out / "report.json",
        "markdown": out / "report.md",
        "png_question_type": out / "accuracy_by_question_type.png",
        "png_attribute_type": out / "accuracy_by_attribute_type.png",
        "predictions": out / "predictions.jsonl",
    }
    atomic_write_json(paths["json"], results)
    atomic_write_text(paths["markdown"], markdown_report(results))
    atomic_write_text(paths["predictions"], "".join(json.dumps(to_plain(r)) + "\n" for r in predictions))
    bar_chart(results, paths["png_question_type"], "question_type")
    bar_chart(results, paths["png_attribute_type"], "attribute_type")
    return paths
