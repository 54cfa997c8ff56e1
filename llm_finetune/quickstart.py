"""``ecgllm quickstart``: the whole pipeline offline on 2 CPU cores, then a report.

synthetic cohort -> stage-1 pretraining -> stage-1 evaluation -> stage-2 fine-tuning with the packaged small LLM
-> ECG-QA evaluation with baselines -> the signal-path comparison (the same LLM trained without the findings hint,
and a question-only LLM, each scored on the same test questions) -> ``report.md``. Each finished step leaves a marker holding the hash of its
settings; re-running skips finished steps and redoes a step whose settings changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encoder.config_io import atomic_write_json, load_config, save_resolved_config, to_plain

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_OUT_DIR = "runs/quickstart"
MARKER = ".step_done.json"


@dataclass
class QuickstartConfig:
    """The offline end-to-end run."""

    out_dir: str = DEFAULT_OUT_DIR
    """Run folder: cohort/, stage1/, stage2/, vqa/, report.md."""
    num_records: int = 8000
    """Synthetic ECG records to generate (10 s, 100 and 500 Hz)."""
    seed: int = 0
    """Seed of the cohort, both trainings and the evaluation."""
    train_electrode_problems: float = field(default=0.0, metadata={"ge": 0.0, "le": 1.0})
    """The cohort's ``train_electrode_problems``: share of training-fold records given electrode problems (the
    real table's 0.14 % leaves the noise head about ten examples); valid and test folds keep the real rate. 0.03
    was tried and not adopted (docs/results.md)."""
    pretrain_config: str = str(CONFIG_DIR / "quickstart" / "pretrain.yaml")
    """Stage-1 YAML (data_dir / out_dir are set by the quickstart)."""
    finetune_config: str = str(CONFIG_DIR / "quickstart" / "finetune.yaml")
    """Stage-2 YAML (data / encoder / output paths are set by the quickstart)."""
    vqa_sample: int | None = 400
    """Held-out questions scored by the VQA evaluation (seeded sample; None = the whole test split)."""
    signal_path: bool = False
    """Also train the ECG-tokens-only LLM (findings hint off) and the question-only LLM (``ecg_input: none``) and
    score both on the same test questions as the hint model (``signal_path/``); off by default because it
    trains two more LLMs (see docs/results.md for its time)."""
    signal_path_steps: int | None = field(default=None, metadata={"ge": 1})
    """Optimizer steps of each of those two LLMs; None = the hint model's steps and warm-up (a fair comparison).
    Fewer steps are cheaper, and the report then says the comparison is partly budget."""
    signal_path_questions: int = field(default=200, metadata={"ge": 1})
    """The first N of the VQA step's sampled test questions, scored by all five systems of the comparison."""
    open_questions: bool = False
    """Also ask the VQA step's test questions again in held-out paraphrases (never trained on) and ask the LLM to
    describe ``describe_ecgs`` of their ECGs, scored by the labels it names (``open_questions/``); off by default
    (a few more minutes of generation)."""
    describe_ecgs: int = field(default=100, metadata={"ge": 1})
    """ECGs described in the open-questions step."""
    force: list[str] = field(default_factory=list)
    """Steps to redo even if finished: any of cohort, stage1, stage1_eval, stage2, vqa, tokens_only,
    question_only, open_questions (or all)."""


STEPS = ("cohort", "stage1", "stage1_eval", "stage2", "vqa")
SIGNAL_PATH: dict[str, dict[str, Any]] = {
    "tokens_only": {"model.findings_hint": False},
    "question_only": {"ecg_input": "none"},
}
"""The signal-path LLMs: stage-2 config overrides of each (trained ``signal_path_steps`` steps)."""


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(to_plain(obj), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _run_step(
    name: str,
    step_dir: Path,
    settings: Any,
    fn: Callable[[], Any],
    cfg: QuickstartConfig,
    timings: dict[str, float],
    upstream: str = "",
) -> str:
    """Run ``fn`` unless ``step_dir`` holds a marker for the same settings and the same upstream steps.

    Returns this step's key; pass it as ``upstream`` to the steps that read this one's output, so that a redone
    step (e.g. a cohort from a new generator version) redoes everything built on it."""
    marker = step_dir / MARKER
    key = _hash([settings, upstream])
    redo = name in cfg.force or "all" in cfg.force
    if not redo and marker.is_file() and json.loads(marker.read_text()).get("hash") == key:
        print(f"[quickstart] {name}: done earlier, reusing {step_dir}")
        timings[name] = json.loads(marker.read_text()).get("seconds", 0.0)
        return key
    if marker.is_file() or (redo and step_dir.is_dir()):
        # Our own finished step whose settings changed, or a step the user forces: redo it from scratch.
        shutil.rmtree(step_dir)
    print(f"[quickstart] {name}: running ...")
    t0 = time.perf_counter()
    fn()
    timings[name] = round(time.perf_counter() - t0, 1)
    atomic_write_json(marker, {"hash": key, "seconds": timings[name]})
    print(f"[quickstart] {name}: finished in {timings[name]:.0f} s")
    return key


def run_quickstart(cfg: QuickstartConfig) -> Path:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved_config(cfg, out)
    timings: dict[str, float] = {}
    paths = {step: out / step for step in STEPS}
    stage1_key = _stage1_steps(cfg, paths, timings)
    vqa_key = _stage2_steps(cfg, paths, timings, stage1_key)
    if cfg.signal_path:
        for name, overrides in SIGNAL_PATH.items():
            _signal_path_step(name, overrides, cfg, paths, timings, vqa_key)
    if cfg.open_questions:
        _open_questions_step(cfg, paths, timings, vqa_key)

    from llm_finetune.quickstart_report import write_report

    report = write_report(out, timings, cfg.seed)
    print(f"\n[quickstart] report: {report}")
    print(f"[quickstart] chat with the model:  .venv/bin/ecgllm demo --model_dir {paths['stage2'] / 'model'}")
    return report


def _stage1_steps(cfg: QuickstartConfig, paths: dict[str, Path], timings: dict[str, float]) -> str:
    """cohort -> stage1 -> stage1_eval; returns stage 1's step key."""
    from encoder.datasets.synthetic import GENERATOR_VERSION, SyntheticConfig, generate_cohort
    from encoder.evaluate import EvaluateConfig, run_evaluate
    from encoder.train import PretrainConfig, run_pretrain

    synth = SyntheticConfig(
        out_dir=str(paths["cohort"]), num_records=cfg.num_records, seed=cfg.seed,
        train_electrode_problems=cfg.train_electrode_problems,
    )  # fmt: skip
    cohort_key = _run_step(
        "cohort", paths["cohort"], [synth, GENERATOR_VERSION], lambda: generate_cohort(synth), cfg, timings
    )

    pretrain = load_config(
        PretrainConfig,
        cfg.pretrain_config,
        data_dir=str(paths["cohort"]),
        out_dir=str(paths["stage1"]),
        seed=cfg.seed,
        resume=True,
    )
    stage1_key = _run_step(
        "stage1", paths["stage1"], pretrain, lambda: run_pretrain(pretrain), cfg, timings, upstream=cohort_key
    )

    evaluate = EvaluateConfig(run_dir=str(paths["stage1"]), out_dir=str(paths["stage1_eval"]), seed=cfg.seed)
    _run_step(
        "stage1_eval",
        paths["stage1_eval"],
        evaluate,
        lambda: run_evaluate(evaluate),
        cfg,
        timings,
        upstream=stage1_key,
    )
    return stage1_key


def _stage2_steps(
    cfg: QuickstartConfig, paths: dict[str, Path], timings: dict[str, float], stage1_key: str
) -> str:
    """stage2 -> vqa; returns the VQA step's key."""
    from llm_finetune.train import FinetuneConfig, run_finetune
    from llm_finetune.vqa.evaluate import EvalVqaConfig, run_eval_vqa

    finetune = load_config(
        FinetuneConfig,
        cfg.finetune_config,
        data_root=str(paths["cohort"]),
        encoder=str(paths["stage1"] / "encoder"),
        output_dir=str(paths["stage2"]),
        seed=cfg.seed,
    )
    stage2_key = _run_step(
        "stage2",
        paths["stage2"],
        finetune,
        lambda: run_finetune(finetune),
        cfg,
        timings,
        upstream=stage1_key,
    )

    vqa = EvalVqaConfig(
        model_dir=paths["stage2"] / "model",
        ecgqa_root=paths["cohort"] / "ecgqa",
        out_dir=paths["vqa"],
        sample=cfg.vqa_sample,
        seed=cfg.seed,
        leakage_run_dirs=[paths["stage1"]],
        baselines=["majority", "aux_head"],
    )
    vqa_key = _run_step(
        "vqa", paths["vqa"], vqa, lambda: run_eval_vqa(vqa), cfg, timings, upstream=stage2_key
    )
    return vqa_key


def _signal_path_step(
    name: str, overrides: dict[str, Any], cfg: QuickstartConfig, paths: dict[str, Path],
    timings: dict[str, float], upstream: str,
) -> None:  # fmt: skip
    """Train one signal-path LLM on the hint model's training questions (its steps and warm-up, or
    ``signal_path_steps`` steps with a fifth of them warm-up) and score it on the first ``signal_path_questions``
    of the VQA step's test questions, in ``signal_path/<name>/``."""
    from llm_finetune.train import FinetuneConfig, run_finetune
    from llm_finetune.vqa.evaluate import EvalVqaConfig, run_eval_vqa
    from llm_finetune.vqa.sampling import read_sample_file, write_sample_file

    root = Path(cfg.out_dir) / "signal_path" / name
    steps = cfg.signal_path_steps
    budget = {} if steps is None else {"max_steps": steps, "warmup_steps": max(1, steps // 5)}
    finetune = load_config(
        FinetuneConfig, cfg.finetune_config, data_root=str(paths["cohort"]),
        encoder=str(paths["stage1"] / "encoder"), output_dir=str(root / "stage2"), seed=cfg.seed,
        **budget, **overrides,
    )  # fmt: skip
    vqa = EvalVqaConfig(
        model_dir=root / "stage2" / "model", ecgqa_root=paths["cohort"] / "ecgqa", out_dir=root / "vqa",
        sample_file=root / "sample_ids.json", seed=cfg.seed, leakage_run_dirs=[paths["stage1"]], baselines=[],
    )  # fmt: skip

    def run() -> None:
        root.mkdir(parents=True, exist_ok=True)
        ids = read_sample_file(paths["vqa"] / "sample_ids.json")[: cfg.signal_path_questions]
        write_sample_file(root / "sample_ids.json", ids, first_of=str(paths["vqa"] / "sample_ids.json"))
        cached = (
            paths["stage2"] / "features.safetensors"
        )  # keyed on the encoder's weights: reused only if valid
        if cached.is_file():
            (root / "stage2").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cached, root / "stage2" / "features.safetensors")
        run_finetune(finetune)
        run_eval_vqa(vqa)

    settings = [finetune, vqa, cfg.signal_path_questions]
    _run_step(name, root, settings, run, cfg, timings, upstream=upstream)


def _open_questions_step(
    cfg: QuickstartConfig, paths: dict[str, Path], timings: dict[str, float], upstream: str
) -> None:
    """The VQA step's questions in held-out paraphrases, and "describe this ECG" on some of their ECGs, in
    ``open_questions/``."""
    from llm_finetune.vqa.evaluate import EvalVqaConfig, run_eval_vqa

    root = Path(cfg.out_dir) / "open_questions"
    vqa = EvalVqaConfig(
        model_dir=paths["stage2"] / "model", ecgqa_root=paths["cohort"] / "ecgqa", out_dir=root,
        sample_file=paths["vqa"] / "sample_ids.json", seed=cfg.seed, leakage_run_dirs=[paths["stage1"]],
        baselines=[], reword="heldout", describe=cfg.describe_ecgs,
    )  # fmt: skip
    _run_step("open_questions", root, vqa, lambda: run_eval_vqa(vqa), cfg, timings, upstream=upstream)
