"""Stage 2 on every question type: all 70 templates + describe + paraphrases train with an aux-head encoder, the
prompts carry each ECG's attribute lines, query answers decode as option subsets, descriptions are scored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bridge.configuration import EcgLlmConfig
from bridge.modeling import EcgLlm
from bridge.projector import ProjectorConfig
from encoder.configuration import EcgEncoderConfig
from encoder.ecgqa.attributes import AXIS_CLASSES, LEADS, NOISE_TYPES, NUMERIC_FEATURES, EcgAttributes
from encoder.modeling import EcgEncoder
from encoder.multitask import AUX_TASKS
from encoder.synth.questions import QaRecord, make_questions
from llm_finetune.data import QaDataset, load_qa_samples
from llm_finetune.features import FeatureStore
from llm_finetune.inference import EcgChat
from llm_finetune.testing import write_tiny_qa
from llm_finetune.train import FinetuneConfig, run_finetune
from llm_finetune.vqa.candidates import template_candidates
from llm_finetune.vqa.describe import evaluate_descriptions

LABELS = ["SR", "AFIB", "IMI", "NST_", "NORM"]


def _attributes(rng: np.random.Generator) -> EcgAttributes:
    mask = lambda p: tuple(bool(x) for x in rng.random(len(LEADS)) < p)  # noqa: E731
    return EcgAttributes(
        noise={t: mask(0.2) for t in NOISE_TYPES},
        extra_systoles=frozenset({"ventricular extrasystoles"} if rng.random() < 0.3 else ()),
        heart_axis=str(rng.choice(AXIS_CLASSES)),
        infarction_stage="old stage of myocardial infarction" if rng.random() < 0.3 else None,
        pacemaker=bool(rng.random() < 0.1),
        form_leads={"NST_": mask(0.3)},
        numeric_ms={
            f: (float(v), float(v) + 10)
            for f, v in zip(NUMERIC_FEATURES, rng.uniform(80, 900, 6), strict=True)
        },
        available=frozenset(AUX_TASKS),
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("all_questions")
    data = write_tiny_qa(root / "data", num_records=20)
    rng = np.random.default_rng(0)
    records = [
        QaRecord(e, 1000 + (e - 1) // 2, (e - 1) % 10 + 1, frozenset({"SR", "NST_"} if e % 2 else {"AFIB", "IMI"}),
                 attributes=_attributes(rng))
        for e in range(1, 21)
    ]  # fmt: skip
    questions = make_questions(records, questions_per_record=12, seed=0)
    for split, samples in questions.items():
        folder = data / "ecgqa" / "ptbxl" / "template" / split
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "0.json").write_text(json.dumps(samples))
    torch.manual_seed(0)
    enc = EcgEncoderConfig(widths=[8, 8, 8, 8], embed_dim=16, label_names=LABELS, aux_tasks=sorted(AUX_TASKS))
    EcgEncoder(enc).save_pretrained(root / "encoder")
    model = EcgLlmConfig(
        llm="packaged:tiny-random-llama", projector=ProjectorConfig(num_tokens=2), lora_r=4,
        findings_hint=True, findings_for_question=True, attribute_hint="asked",
    )  # fmt: skip
    cfg = FinetuneConfig(
        data_root=str(data), encoder=str(root / "encoder"), output_dir=str(root / "run"), model=model,
        max_steps=3, batch_size=4, warmup_steps=1, max_eval_samples=None, eval_split="valid", describe_samples=4, paraphrase_fraction=0.2,
        question_type_weights={"single-query": 2.0}, progress=False,
    )  # fmt: skip
    return cfg, run_finetune(cfg)


def test_all_question_types_train_with_their_attribute_lines(run):
    cfg, model_dir = run
    train = load_qa_samples(Path(cfg.data_root) / "ecgqa", "train")
    assert len({s.question_type for s in train}) == 7 and len({s.template_id for s in train}) > 40
    model = EcgLlm.from_pretrained(model_dir)
    ids = sorted({e for s in train for e in s.ecg_ids})
    store = FeatureStore(ids, model.encode_ecgs(torch.randn(len(ids), 12, 1000)))
    noise = [s for s in train if s.template_id == 34][:1] + [s for s in train if s.template_id == 50][:1]
    prompts = [model.tokenizer.decode(i.input_ids) for i in QaDataset(noise, model, store).items]
    assert "Noise:" in prompts[0] and "Intervals" not in prompts[0]
    assert "Intervals ECG 1:" in prompts[1] and "Intervals ECG 2:" in prompts[1]
    assert json.loads((model_dir / "config.json").read_text())["attribute_hint"] == "asked"
    report = json.loads(
        (Path(cfg.output_dir) / "eval.json").read_text()
    )  # valid split, query subsets decoded
    assert report["split"] == "valid" and any(t.endswith("-query") for t in report["by_type"])


def test_the_trained_model_answers_queries_and_descriptions(run):
    _, model_dir = run
    chat = EcgChat.from_pretrained(model_dir)
    ecgs = [np.random.default_rng(i).standard_normal((12, 1000)).astype(np.float32) for i in range(3)]
    cands = [template_candidates(34), template_candidates(42), template_candidates(20)]
    answers = chat.generate_batch(
        [[e] for e in ecgs],
        ["What leads are showing static noise?", "What numeric features of this ECG are considered abnormal values?",
         "Does this ECG show left axis deviation?"],
        allowed_answers=cands,
    )  # fmt: skip
    for a, c in zip(answers, cands, strict=True):
        assert set(a.split(", ")) <= set(c.options)
    free = chat.answer(ecgs[0], "Describe this ECG.", max_new_tokens=6)
    assert free.hints[0].startswith("Findings:") and len(free.hints) == 8  # an open question gets every line
    assert any(h.startswith("Intervals: rr interval ") for h in free.hints)
    out = evaluate_descriptions(chat, ecgs, [{"SR"}, {"AFIB", "IMI"}, {"NORM"}], max_new_tokens=8)
    assert out["n"] == 3 and 0.0 <= out["llm_micro_f1"] <= 1.0 and len(out["examples"]) == 3


def test_eval_json_scores_its_baselines_as_the_vqa_report_does(run):
    from encoder.datasets.ecgqa import load_answer_options, load_ecgqa
    from llm_finetune.vqa import evaluate_vqa
    from llm_finetune.vqa.signals import EcgArrays, build_source

    cfg, model_dir = run
    report = json.loads((Path(cfg.output_dir) / "eval.json").read_text())
    root = Path(cfg.data_root) / "ecgqa"
    valid, train = (load_ecgqa(root, split=s).to_list() for s in ("valid", "train"))
    chat = EcgChat.from_pretrained(model_dir)
    enc = chat.encoder_config
    rate = int(enc.sampling_rate)
    arrays = EcgArrays(build_source("ptbxl", cfg.data_root, rate), rate, int(enc.input_seconds * rate),
                       enc.input_normalization)  # fmt: skip
    harness = evaluate_vqa(
        None, valid, answer_options=load_answer_options(root), baselines=["majority"], majority_reference=train,
        n_boot=10,
    )["systems"]  # fmt: skip
    harness |= evaluate_vqa(
        chat, valid, answer_options=load_answer_options(root), ecg_arrays=arrays.for_record, baselines=["aux_head"],
        n_boot=10, decoding=["constrained"],
    )["systems"]  # fmt: skip
    assert report["n"] == len(valid) and report["constrained"]
    for name in (
        "majority",
        "aux_head",
        "model",
    ):  # the paraphrase / describe extras do not move the majority
        got = harness["llm_constrained" if name == "model" else name]
        assert report[name] == pytest.approx(got["overall"]["accuracy"]), name
        for qt, row in report["by_type"].items():
            assert row[name] == pytest.approx(got["by_question_type"][qt]["accuracy"]), (name, qt)
    assert (
        0 < harness["aux_head"]["overall"]["coverage"]
    )  # it answered something, so the comparison means something
