"""Golden prompts: training data, batch inference, constrained decoding and chat build byte-identical text.

The fixture ``tests/data/golden_prompts.json`` was written by the code before prompt building moved to
``bridge/prompting.py``; regenerate it only on a deliberate prompt change (``python tests/test_golden_prompts.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bridge.configuration import EcgLlmConfig
from bridge.modeling import EcgFeatures, EcgLlm
from bridge.projector import ProjectorConfig
from llm_finetune.data import QaDataset, QaSample
from llm_finetune.features import FeatureStore
from llm_finetune.inference import _prompts
from llm_finetune.testing import write_tiny_encoder

GOLDEN = Path(__file__).parent / "data" / "golden_prompts.json"
QUESTIONS = [
    ("Which rhythm does this ECG show, sinus tachycardia or atrial fibrillation?", [0]),
    ("Does this ECG show atrial fibrillation?", [1]),
    ("Do both ECGs show atrial fibrillation?", [0, 2]),
    ("What rhythm does this ECG show?", [2]),
]
PROBS = torch.tensor([[0.9, 0.35, 0.1], [0.2, 0.9, 0.8], [0.1, 0.2, 0.6]])  # (3 ECGs, SR/AFIB/STACH)
SETTINGS = {
    "grouped": dict(findings_hint=True, findings_top_k=1, findings_for_question=True),
    "per_label_shift": dict(
        findings_hint=True,
        findings_for_question=True,
        asked_format="per_label",
        verdict_prior_shift=True,
    ),
    "plain": dict(findings_hint=True, findings_superclass=False),
    "no_hint": dict(),
}


def _model(encoder_dir: Path, **kw) -> EcgLlm:
    torch.manual_seed(0)
    config = EcgLlmConfig(llm="packaged:tiny-random-llama", projector=ProjectorConfig(num_tokens=2), **kw)
    model = EcgLlm.build(config, encoder_dir)
    model.encoder.config.label_names = ["SR", "AFIB", "STACH"]
    model.encoder.config.label_thresholds = [0.5, 0.3, 0.5]
    if model.config.verdict_prior_shift:
        model.config.verdict_logit_shift = [None, -2.0, 1.5]  # fitted values (AFIB shifted down, STACH up)
    return model


def build_prompts(encoder_dir: Path) -> dict[str, dict[str, list[str]]]:
    out = {}
    feats = EcgFeatures(torch.zeros(3, 4, 8), torch.zeros(3, 8), PROBS)
    for name, kw in SETTINGS.items():
        model = _model(encoder_dir, **kw)
        decode = model.tokenizer.decode
        samples = [QaSample(ids, q, ["yes"]) for q, ids in QUESTIONS]
        train = QaDataset(samples, model, FeatureStore([0, 1, 2], feats))
        rows = [r for _, ids in QUESTIONS for r in ids]
        counts = [len(ids) for _, ids in QUESTIONS]
        batch_feats = feats.index(rows)
        infer = _prompts(model, [q for q, _ in QUESTIONS], counts, batch_feats)
        out[name] = {
            "train": [decode(item.input_ids) for item in train.items],
            "inference": [decode(p.input_ids) for p in infer],
        }
    return out


def test_prompts_match_the_golden_fixture(tmp_path):
    got = build_prompts(write_tiny_encoder(tmp_path / "encoder"))
    assert got == json.loads(GOLDEN.read_text())


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.write_text(
            json.dumps(build_prompts(write_tiny_encoder(Path(tmp) / "encoder")), indent=1) + "\n"
        )


def test_prompt_builder_hints_follow_the_rows_and_skip_text_only_questions():
    import pytest

    from bridge.prompting import PromptBuilder, PromptPolicy, consecutive_rows
    from encoder.errors import ConfigError

    builder = PromptBuilder(PromptPolicy(findings_hint=True, findings_top_k=1), ("SR", "AFIB", "STACH"))
    probs = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1]])
    assert consecutive_rows([1, 0, 1]) == [[0], [], [1]]
    assert builder.hints(["a?", "b?", "c?"], [[1], [], [0, 1]], probs) == [
        ["Findings: atrial fibrillation."],
        None,
        ["Findings ECG 1: sinus rhythm.", "Findings ECG 2: atrial fibrillation."],
    ]
    assert builder.hints(["a?"], [[0]], None) == [None]
    with pytest.raises(ConfigError, match="row lists"):
        builder.hints(["a?", "b?"], [[0]], probs)
