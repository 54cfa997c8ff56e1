"""The quickstart's open-questions step: the VQA step's questions in held-out paraphrases plus descriptions, and
how its table is read."""

from __future__ import annotations

import json

from llm_finetune import quickstart
from llm_finetune.quickstart import QuickstartConfig, _open_questions_step
from llm_finetune.quickstart_report import _open_questions_section, wording_table


def test_open_questions_step_rewords_the_vqa_steps_own_sample_and_describes(tmp_path, monkeypatch):
    import llm_finetune.vqa.evaluate as vqa_eval

    seen = []
    monkeypatch.setattr(vqa_eval, "run_eval_vqa", lambda cfg: seen.append(cfg))
    cfg = QuickstartConfig(out_dir=str(tmp_path), open_questions=True, describe_ecgs=7)
    assert QuickstartConfig().open_questions is False  # asked for, not done by default
    paths = {s: tmp_path / s for s in quickstart.STEPS}
    _open_questions_step(cfg, paths, {}, upstream="x")
    (v,) = seen
    assert v.reword == "heldout" and v.describe == 7 and v.baselines == []
    assert v.sample_file == paths["vqa"] / "sample_ids.json" and v.split == "test"
    assert v.model_dir == paths["stage2"] / "model"


def _predictions(path, rows):
    path.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"sample_id": i, "question_type": t, "llm": {"correct": c}}) for i, t, c in rows]
    (path / "predictions.jsonl").write_text("\n".join(lines) + "\n")


def test_wording_table_compares_the_llm_on_common_questions(tmp_path):
    assert wording_table(tmp_path / "a.jsonl", tmp_path / "b.jsonl") is None
    _predictions(tmp_path / "vqa", [(1, "single-verify", True), (2, "single-verify", True),
                                    (3, "single-query", False), (4, "single-query", True)])  # fmt: skip
    _predictions(tmp_path / "open_questions", [(1, "single-verify", False), (2, "single-verify", True),
                                               (3, "single-query", True)])  # fmt: skip
    (tmp_path / "open_questions" / "report.json").write_text(json.dumps({"describe": {
        "n": 2, "llm_micro_f1": 0.5, "aux_head_micro_f1": 0.8, "ratio": 0.625,
        "examples": [{"generated": "sinus rhythm.", "truth": ["SR"]}]}}))  # fmt: skip
    text = "\n".join(_open_questions_section(tmp_path))
    rows = {
        ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]]
        for ln in text.splitlines()
        if ln.startswith("| ")
    }
    assert rows["single-verify (2)"] == ["100.0", "50.0", "-50.0"]
    assert rows["single-query (1)"] == ["0.0", "100.0", "+100.0"]  # question 4 was not asked again: left out
    assert rows["**overall** (3)"] == ["66.7", "66.7", "+0.0"]
    assert "LLM **0.500**" in text and "ratio **0.62**" in text and '"sinus rhythm."' in text
