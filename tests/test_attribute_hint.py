"""The hint's attribute lines: built in PromptBuilder from the decoded multi-task head, per ECG, carried by features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from bridge.configuration import EcgLlmConfig
from bridge.modeling import EcgFeatures, EcgLlm
from bridge.projector import ProjectorConfig
from bridge.prompting import PromptBuilder, PromptPolicy
from encoder.configuration import EcgEncoderConfig
from encoder.ecgqa.attributes import LEADS, NOISE_TYPES, EcgAttributes
from encoder.modeling import EcgEncoder
from encoder.multitask import AUX_TASKS, build_targets
from llm_finetune.data import QaDataset, QaSample
from llm_finetune.features import FeatureStore

ALL = frozenset(AUX_TASKS)


def _mask(*leads: str) -> tuple[bool, ...]:
    return tuple(lead in leads for lead in LEADS)


FIRST = EcgAttributes(
    noise={
        **{t: _mask() for t in NOISE_TYPES},
        "baseline drift": _mask("I", "aVF"),
        "static noise": _mask("V6"),
    },
    extra_systoles=frozenset({"ventricular extrasystoles"}),
    heart_axis="left axis deviation",
    infarction_stage="old stage of myocardial infarction",
    pacemaker=False,
    form_leads={"NST_": _mask("V5", "V6"), "INVT": _mask("V1")},
    numeric_ms={"rr interval": (810.0, 846.0), "qrs duration": (104.0, 126.0), "pr interval": (100.0, 110.0)},
    available=ALL,
)
SECOND = EcgAttributes(
    noise={t: _mask() for t in NOISE_TYPES},
    heart_axis="normal heart axis",
    pacemaker=True,
    numeric_ms={"rr interval": (700.0, 700.0)},
    available=ALL,
)
LABELS = ("SR", "NST_", "INVT")


def _builder(**policy) -> PromptBuilder:
    return PromptBuilder(PromptPolicy(findings_hint=True, findings_superclass=False, **policy), LABELS)


def test_lines_read_the_known_attributes():
    probs = torch.tensor([[0.9, 0.8, 0.1]])  # NST_ shown by the label head, INVT not
    lines = _builder().hint_lines([["SR"]], "What heart axis does this ECG show?", probs, [FIRST])
    assert lines == [
        "Findings: sinus rhythm.",
        "Noise: baseline drift in I, aVF; static noise in V6.",
        "Extra systoles: ventricular extrasystoles.",
        "Heart axis: left axis deviation.",
        "Infarction stage: old.",
        "Pacemaker: no.",
        "Intervals: rr interval 810-846 ms normal, pr interval 100-110 ms low, qrs duration 104-126 ms "
        "normal/high; abnormal: pr interval, qrs duration.",
        "Form leads: non-specific st changes in V5, V6.",
    ]


def test_each_ecg_of_a_pair_gets_its_own_lines():
    probs = torch.tensor([[0.9, 0.8, 0.9], [0.9, 0.1, 0.1]])
    lines = _builder(attribute_hint="asked").hint_lines(
        [["SR"], ["SR"]], "Does this ECG show any kind of noises in lead V6?", probs, [FIRST, SECOND]
    )
    assert lines[2:] == [
        "Noise ECG 1: baseline drift in I, aVF; static noise in V6.",
        "Form leads ECG 1: non-specific st changes in V5, V6; inverted t-waves in V1.",
        "Noise ECG 2: none.",
        "Form leads ECG 2: none.",
    ]


def test_asked_mode_keeps_the_lines_the_question_is_about():
    b = _builder(attribute_hint="asked")
    probs = torch.tensor([[0.9, 0.1, 0.1]])
    axis = b.hint_lines([["SR"]], "What heart axis does this ECG show?", probs, [SECOND])
    assert axis[1:] == ["Heart axis: normal heart axis."]
    # "leads" inside a label name is not a lead-specific question
    mi = b.hint_lines(
        [["SR"]], "Does this ECG show myocardial infarction in inferior leads?", probs, [SECOND]
    )
    assert mi[1:] == []
    describe = b.hint_lines([["SR"]], "Describe this ECG.", probs, [SECOND])
    assert len(describe) == 1 + 7
    assert _builder(attribute_hint="off").hint_lines([["SR"]], "x", probs, [FIRST]) == [
        "Findings: sinus rhythm."
    ]


def test_hints_decode_the_aux_outputs_with_the_encoders_thresholds():
    targets = build_targets([FIRST, SECOND], sorted(ALL))
    aux = {n: t for n, (t, _) in targets.items()}  # (2, K): the decoded values equal the attributes
    builder = PromptBuilder(PromptPolicy(findings_hint=True, findings_superclass=False), LABELS)
    hints = builder.hints(["Describe this ECG.", "Compare."], [[0], [0, 1]], torch.full((2, 3), 0.9), aux)
    assert "Heart axis: left axis deviation." in hints[0]
    assert "Pacemaker ECG 2: yes." in hints[1] and "Pacemaker ECG 1: no." in hints[1]
    assert "Noise ECG 1: baseline drift in I, aVF; static noise in V6." in hints[1]
    # a threshold above every output turns the pacemaker off
    strict = PromptBuilder(
        PromptPolicy(findings_hint=True, findings_superclass=False),
        LABELS,
        aux_thresholds={"pacemaker": [1.5]},
    )
    assert "Pacemaker: no." in strict.hints(["x"], [[1]], torch.full((2, 3), 0.9), aux)[0]
    assert builder.hints(["x"], [[1]], torch.full((2, 3), 0.9), {})[0] == [
        "Findings: sinus rhythm, non-specific st changes, inverted t-waves."
    ]


def _aux_encoder(path: Path) -> Path:
    torch.manual_seed(0)
    cfg = EcgEncoderConfig(widths=[8, 8, 8, 8], embed_dim=16, label_names=list(LABELS), aux_tasks=sorted(ALL))
    EcgEncoder(cfg).save_pretrained(path)
    return path


def test_features_carry_the_aux_outputs_into_training_prompts(tmp_path: Path):
    config = EcgLlmConfig(
        llm="packaged:tiny-random-llama", projector=ProjectorConfig(num_tokens=2), findings_hint=True
    )
    model = EcgLlm.build(config, _aux_encoder(tmp_path / "encoder"))
    feats = model.encode_ecgs(torch.randn(2, 12, 1000))
    assert set(feats.aux) == ALL and feats.aux["noise"].shape == (2, 60)
    store = FeatureStore([5, 7], feats)
    store.save(tmp_path / "f.safetensors")
    again = FeatureStore.load(tmp_path / "f.safetensors")
    torch.testing.assert_close(again.features.aux["heart_axis"], feats.aux["heart_axis"])
    torch.testing.assert_close(
        again.features.index([1]).aux["numeric_feature"], feats.aux["numeric_feature"][1:]
    )
    data = QaDataset([QaSample([7, 5], "Is the heart axis the same?", ["no"])], model, again)
    prompt = model.tokenizer.decode(data.items[0].input_ids)
    assert "Heart axis ECG 1:" in prompt and "Heart axis ECG 2:" in prompt
    model.config.attribute_hint = "off"
    off = QaDataset([QaSample([7], "Is the heart axis normal?", ["no"])], model, again)
    assert "Heart axis" not in model.tokenizer.decode(off.items[0].input_ids)
    plain = EcgFeatures(feats.tokens, feats.summary, feats.probs)  # features of an encoder without the head
    assert plain.index([0]).aux == {}


def test_models_saved_before_the_option_keep_their_prompts(tmp_path: Path):
    path = tmp_path / "config.json"
    EcgLlmConfig().save(path)
    data = json.loads(path.read_text())
    del data["attribute_hint"]
    path.write_text(json.dumps(data))
    assert EcgLlmConfig.load(path).attribute_hint == "off" and EcgLlmConfig().attribute_hint == "all"


def test_paraphrased_questions_get_the_same_lines_as_the_template_wording():
    from bridge.attribute_hint import relevant_groups
    from encoder.synth.questions import QaRecord, make_questions
    from llm_finetune.vqa.paraphrase import paraphrase

    records = [QaRecord(e, e, e % 10 + 1, frozenset({"SR", "NST_"}), attributes=FIRST) for e in range(60)]
    rng = np.random.default_rng(0)
    checked = set()
    for q in make_questions(records, 4, 0)["train"]:
        s = QaSample(q["ecg_id"], q["question"], q["answer"], q["question_type"], q["template_id"])
        for which in ("train", "heldout"):
            p = paraphrase(s, which, rng)
            assert p is not None and relevant_groups(p.question) == relevant_groups(s.question), p.question
        checked.add(s.template_id)
    assert len(checked) > 50
