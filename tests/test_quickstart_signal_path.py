"""The quickstart's signal-path comparison: which LLMs it trains, on which questions, and how the table is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llm_finetune import quickstart
from llm_finetune.quickstart import QuickstartConfig, _signal_path_step
from llm_finetune.quickstart_report import SIGNAL_PATH_SYSTEMS, signal_path_table
from llm_finetune.testing import write_tiny_encoder, write_tiny_qa


def test_signal_path_llms_train_the_same_short_budget_on_the_first_vqa_questions(tmp_path, monkeypatch):
    import llm_finetune.train as train
    import llm_finetune.vqa.evaluate as vqa_eval

    seen: dict[str, list] = {"finetune": [], "vqa": []}
    monkeypatch.setattr(train, "run_finetune", lambda cfg: seen["finetune"].append(cfg))
    monkeypatch.setattr(vqa_eval, "run_eval_vqa", lambda cfg: seen["vqa"].append(cfg))
    (tmp_path / "vqa").mkdir()
    (tmp_path / "vqa" / "sample_ids.json").write_text(json.dumps({"sample_ids": [9, 4, 7, 1, 3]}))
    cfg = QuickstartConfig(out_dir=str(tmp_path), signal_path_steps=7, signal_path_questions=3)
    paths = {s: tmp_path / s for s in quickstart.STEPS}
    for name, overrides in quickstart.SIGNAL_PATH.items():
        _signal_path_step(name, overrides, cfg, paths, {}, upstream="x")
    hint_off, question_only = seen["finetune"]
    assert hint_off.max_steps == question_only.max_steps == 7
    assert hint_off.warmup_steps == question_only.warmup_steps == 1
    assert hint_off.model.findings_hint is False and hint_off.ecg_input == "tokens"
    assert (
        question_only.ecg_input == "none" and question_only.model.findings_hint is True
    )  # none drops the hint
    assert hint_off.question_types == question_only.question_types  # the hint model's training questions
    for v in seen["vqa"]:
        assert json.loads(Path(v.sample_file).read_text())["sample_ids"] == [9, 4, 7]
        assert v.baselines == [] and v.split == "test"


def test_signal_path_llms_train_the_hint_models_steps_by_default(tmp_path, monkeypatch):
    import llm_finetune.train as train
    import llm_finetune.vqa.evaluate as vqa_eval
    from encoder.config_io import load_config
    from llm_finetune.train import FinetuneConfig

    seen: list = []
    monkeypatch.setattr(train, "run_finetune", lambda cfg: seen.append(cfg))
    monkeypatch.setattr(vqa_eval, "run_eval_vqa", lambda cfg: None)
    (tmp_path / "vqa").mkdir()
    (tmp_path / "vqa" / "sample_ids.json").write_text(json.dumps({"sample_ids": [1, 2]}))
    cfg = QuickstartConfig(out_dir=str(tmp_path))
    assert cfg.signal_path is False  # two more LLM trainings: asked for, not done by default
    paths = {s: tmp_path / s for s in quickstart.STEPS}
    for name, overrides in quickstart.SIGNAL_PATH.items():
        _signal_path_step(name, overrides, cfg, paths, {}, upstream="x")
    hint = load_config(FinetuneConfig, cfg.finetune_config)
    assert hint.max_steps > 30  # the quickstart's own config, not a short budget
    for run in seen:
        assert (run.max_steps, run.warmup_steps, run.lr) == (hint.max_steps, hint.warmup_steps, hint.lr)


def _write_predictions(path: Path, rows: list[tuple[int, str, dict[str, bool]]]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"sample_id": i, "question_type": t, **{s: {"correct": c} for s, c in sys.items()}})
        for i, t, sys in rows
    ]
    (path / "predictions.jsonl").write_text("\n".join(lines) + "\n")


def test_signal_path_table_scores_each_system_from_its_own_run_on_common_questions(tmp_path):
    assert signal_path_table(tmp_path) is None  # nothing run yet
    main = [
        (1, "single-verify", {"llm": True, "aux_head": True, "majority": False}),
        (2, "single-verify", {"llm": True, "aux_head": False, "majority": False}),
        (3, "single-choose", {"llm": False, "aux_head": True, "majority": True}),
        (4, "single-choose", {"llm": True, "aux_head": True, "majority": True}),  # not asked of the others
    ]
    _write_predictions(tmp_path / "vqa", main)
    _write_predictions(tmp_path / "signal_path/tokens_only/vqa",
                       [(1, "single-verify", {"llm": False}), (2, "single-verify", {"llm": True}),
                        (3, "single-choose", {"llm": True})])  # fmt: skip
    _write_predictions(tmp_path / "signal_path/question_only/vqa",
                       [(1, "single-verify", {"llm": False}), (2, "single-verify", {"llm": False}),
                        (3, "single-choose", {"llm": False})])  # fmt: skip
    for folder, steps in ((".", 150), ("signal_path/tokens_only", 40), ("signal_path/question_only", 40)):
        (tmp_path / folder / "stage2").mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "stage2" / "config.yaml").write_text(yaml.safe_dump({"max_steps": steps}))
    table = signal_path_table(tmp_path)
    assert (
        "LLM + findings hint (150 steps)" in table
        and "question-only LLM (no ECG, no hint) (40 steps)" in table
    )
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in table.splitlines()[2:]
    }
    # columns: hint, tokens only, aux head, majority, question-only; question 4 is left out (not asked of all)
    assert rows["single-verify (2)"] == ["100.0", "50.0", "50.0", "0.0", "0.0"]
    assert rows["single-choose (1)"] == ["0.0", "100.0", "100.0", "100.0", "0.0"]
    assert rows["**overall** (3)"] == ["66.7", "66.7", "66.7", "33.3", "0.0"]
    assert len(SIGNAL_PATH_SYSTEMS) == 5


@pytest.fixture(scope="module")
def question_only_run(tmp_path_factory):
    from bridge.configuration import EcgLlmConfig
    from bridge.projector import ProjectorConfig
    from llm_finetune.train import FinetuneConfig, run_finetune

    root = tmp_path_factory.mktemp("qonly")
    write_tiny_qa(root / "data")
    write_tiny_encoder(root / "encoder")
    model = EcgLlmConfig(llm="packaged:tiny-random-llama", projector=ProjectorConfig(num_tokens=2), lora_r=4)
    cfg = FinetuneConfig(
        data_root=str(root / "data"), encoder=str(root / "encoder"), output_dir=str(root / "run"), model=model,
        ecg_input="none", max_steps=2, batch_size=4, warmup_steps=1, max_eval_samples=0,
    )  # fmt: skip
    return run_finetune(cfg), root


def test_a_question_only_run_records_ecg_input_and_is_asked_without_its_ecg(question_only_run, monkeypatch):
    from llm_finetune.inference import EcgChat
    from llm_finetune.vqa.evaluate import EvalVqaConfig, run_eval_vqa

    model_dir, root = question_only_run
    assert yaml.safe_load((model_dir.parent / "config.yaml").read_text())["ecg_input"] == "none"
    asked: list[bool] = []
    original = EcgChat.generate_batch

    def spy(self, ecgs, questions, *, use_ecg=True, **kw):
        asked.append(use_ecg)
        return original(self, ecgs, questions, use_ecg=use_ecg, **kw)

    monkeypatch.setattr(EcgChat, "generate_batch", spy)
    cfg = EvalVqaConfig(
        model_dir=model_dir, ecgqa_root=root / "data" / "ecgqa", out_dir=root / "vqa", split="valid",
        baselines=["ecg_removed", "majority"], limit=4, n_boot=10, max_new_tokens=2,
    )  # fmt: skip
    out = run_eval_vqa(cfg)
    report = json.loads((out / "report.json").read_text())
    assert asked and not any(asked)  # every generation without the ECG tokens
    assert report["ecg_input"] == "none" and "ecg_removed" not in report["systems"]
