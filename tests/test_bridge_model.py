"""EcgLlm: masked_scatter placement and count check, frozen encoder, LoRA targets, save/load, merge, QLoRA on CPU."""

import pytest
import torch

from bridge.configuration import EcgLlmConfig
from bridge.llm import find_lora_targets, load_llm
from bridge.modeling import EcgLlm, EcgTokenCountError
from bridge.projector import ProjectorConfig
from encoder.errors import ConfigError
from llm_finetune.testing import write_tiny_encoder

TINY = "packaged:tiny-random-llama"


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return write_tiny_encoder(tmp_path_factory.mktemp("enc") / "encoder")


def _model(encoder_dir, **kw) -> EcgLlm:
    torch.manual_seed(0)
    return EcgLlm.build(EcgLlmConfig(llm=TINY, projector=ProjectorConfig(num_tokens=3), **kw), encoder_dir)


def _batch(model, n_ecgs=(1, 2)):
    items = [model.processor.encode_train(f"Question {i}?", "yes", n) for i, n in enumerate(n_ecgs)]
    return model.processor.pad(items), torch.randn(sum(n_ecgs), 12, 1000)


def test_masked_scatter_places_projected_tokens(encoder_dir):
    model = _model(encoder_dir)
    batch, ecg = _batch(model)
    feats = model.encode_ecgs(ecg)
    embeds = model.embed(batch["input_ids"], feats)
    projected = model.project(feats).reshape(-1, embeds.shape[-1])  # (M*K, H) in prompt order
    mask = batch["input_ids"] == model.ecg_token_id
    assert torch.allclose(embeds[mask], projected)
    plain = model.llm.get_input_embeddings()(batch["input_ids"])
    assert torch.equal(embeds[~mask], plain[~mask])


def test_count_mismatch_raises(encoder_dir):
    model = _model(encoder_dir)
    batch, ecg = _batch(model)
    with pytest.raises(EcgTokenCountError, match="placeholders"):
        model(batch["input_ids"], batch["attention_mask"], ecg=ecg[:2])  # 3 ECGs in the prompts
    with pytest.raises(EcgTokenCountError):
        model(batch["input_ids"], batch["attention_mask"], features=None)


def test_encoder_frozen_and_in_eval_mode(encoder_dir):
    model = _model(encoder_dir)
    model.train()
    assert not model.encoder.training and model.projector.training
    assert not any(p.requires_grad for p in model.encoder.parameters())
    batch, ecg = _batch(model)
    out = model(batch["input_ids"], batch["attention_mask"], labels=batch["labels"], ecg=ecg)
    out.loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.projector.parameters())
    lora = [p for n, p in model.llm.named_parameters() if "lora_B" in n]
    assert lora and all(p.grad is not None for p in lora)


def test_lora_targets_found_by_scanning(encoder_dir):
    llm, _ = load_llm(TINY)
    assert find_lora_targets(llm) == [
        "down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="lora_targets"):
        _model(encoder_dir, lora_targets=["not_a_layer"])


def test_save_load_reproduces_greedy_answer_and_uses_safetensors(encoder_dir, tmp_path):
    model = _model(encoder_dir, findings_hint=True).eval()
    with torch.no_grad():  # make LoRA non-trivial so the adapter must be reloaded to match
        for n, p in model.llm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    ecg = torch.randn(1, 12, 1000)
    prompt = model.processor.pad([model.processor.encode_prompt("Is this ECG normal?", 1)], side="left")
    feats = model.encode_ecgs(ecg)
    before = model.generate(prompt["input_ids"], prompt["attention_mask"], feats, max_new_tokens=6)
    logits = model(prompt["input_ids"], prompt["attention_mask"], features=feats).logits
    out = model.save_pretrained(tmp_path / "m")
    files = [p.name for p in out.rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert {"config.json", "projector.safetensors", "adapter_model.safetensors"} <= set(files)
    loaded = EcgLlm.from_pretrained(out)
    assert loaded.config.findings_hint and loaded.projector.num_tokens == model.projector.num_tokens
    feats2 = loaded.encode_ecgs(ecg)
    assert torch.allclose(feats2.tokens, feats.tokens)
    after = loaded.generate(prompt["input_ids"], prompt["attention_mask"], feats2, max_new_tokens=6)
    assert torch.equal(before, after)
    assert torch.allclose(
        loaded(prompt["input_ids"], prompt["attention_mask"], features=feats2).logits, logits, atol=1e-5
    )
    # merged deployment copy gives the same logits
    loaded.merge_lora()
    merged_dir = loaded.save_pretrained(tmp_path / "merged")
    assert (merged_dir / "llm").is_dir()
    merged = EcgLlm.from_pretrained(merged_dir)
    assert torch.allclose(
        merged(prompt["input_ids"], prompt["attention_mask"], features=feats2).logits, logits, atol=1e-4
    )


def test_qlora_4bit_on_cpu_trains_a_step(encoder_dir):
    import bitsandbytes as bnb

    model = _model(encoder_dir, quantization="4bit", gradient_checkpointing=True)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.llm.modules())
    model.train()
    batch, ecg = _batch(model)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in params.items()}
    opt = torch.optim.AdamW(params.values(), lr=1e-2)
    out = model(batch["input_ids"], batch["attention_mask"], labels=batch["labels"], ecg=ecg)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    opt.step()
    changed = [n for n, p in params.items() if not torch.equal(p, before[n])]
    assert any("lora" in n for n in changed) and any(n.startswith("projector") for n in changed)
    with pytest.raises(ConfigError, match="quantized"):
        model.merge_lora()


def test_label_embedding_init_puts_findings_in_the_llm_vocabulary(encoder_dir):
    from bridge.modeling import label_description

    torch.manual_seed(0)
    cfg = EcgLlmConfig(llm=TINY, projector=ProjectorConfig(num_tokens=2, label_embedding_init=True))
    model = EcgLlm.build(cfg, encoder_dir)
    names = model.label_names
    table = model.llm.get_input_embeddings().weight
    feats = model.encode_ecgs(torch.randn(len(names), 12, 1000))
    feats.summary[:, -len(names) :] = torch.eye(len(names))  # ECG k: only label k present
    summary_tokens = model.project(feats)[:, -1]  # (L, H): the summary token of each ECG
    for k, code in enumerate(names):
        ids = model.tokenizer(" " + label_description(code), add_special_tokens=False)["input_ids"]
        assert torch.allclose(summary_tokens[k], table[ids].mean(0), atol=1e-5)
    # the MLP part is a zero residual at the start but trains
    batch = model.processor.pad([model.processor.encode_train("Q?", "yes", 1)])
    model(
        batch["input_ids"], batch["attention_mask"], features=feats.index([0]), labels=batch["labels"]
    ).loss.backward()
    assert model.projector.summary[-1].weight.grad.abs().sum() > 0
    assert model.projector.label_tokens.weight.grad.abs().sum() > 0


def test_label_embedding_init_needs_a_summary_token(encoder_dir):
    cfg = EcgLlmConfig(llm=TINY, projector=ProjectorConfig(summary_token=False, label_embedding_init=True))
    with pytest.raises(ConfigError, match="label_embedding_init"):
        EcgLlm.build(cfg, encoder_dir)


def test_findings_hint_names_superclasses_for_scp_code_labels(encoder_dir):
    model = _model(encoder_dir, findings_hint=True)
    # superclass labels already are superclasses: no extra part
    assert model.hint_lines([["MI", "CD"]]) == ["Findings: myocardial infarction, conduction disturbance."]
    model.encoder.config.label_names = ["SR", "IMI", "CLBBB", "NDT"]
    assert model.hint_lines([["SR", "IMI"], ["SR"]]) == [
        "Findings ECG 1: sinus rhythm, myocardial infarction in inferior leads; superclass: myocardial infarction.",
        "Findings ECG 2: sinus rhythm; superclass: none.",
    ]
    model.config.findings_superclass = False
    assert model.hint_lines([["CLBBB"]]) == ["Findings: complete left bundle branch block."]


def test_findings_hint_uses_the_heads_own_superclass_labels(encoder_dir):
    model = _model(encoder_dir, findings_hint=True, findings_top_k=2)
    model.encoder.config.label_names = ["SR", "IMI", "NDT", "MI", "STTC"]  # an all+superdiagnostic head
    model.encoder.config.label_thresholds = [0.5] * 5
    probs = torch.tensor([[0.9, 0.4, 0.8, 0.7, 0.6], [0.9, 0.1, 0.1, 0.2, 0.1]])
    findings = model.findings(probs)
    assert findings == [["SR", "NDT", "MI", "STTC"], ["SR"]]  # top-2 codes, then every superclass above 0.5
    # IMI is below its threshold but the MI head is not: the hint trusts the superclass head
    assert model.hint_lines(findings) == [
        "Findings ECG 1: sinus rhythm, non-diagnostic t abnormalities; superclass: myocardial infarction, st/t change.",
        "Findings ECG 2: sinus rhythm; superclass: none.",
    ]


def test_models_saved_before_the_superclass_hint_keep_their_prompts(tmp_path):
    import json

    path = tmp_path / "config.json"
    EcgLlmConfig(findings_hint=True).save(path)
    assert EcgLlmConfig.load(path).findings_superclass  # saved with the option: kept
    data = json.loads(path.read_text())
    del data["findings_superclass"]
    path.write_text(json.dumps(data))
    del data["findings_for_question"]
    path.write_text(json.dumps(data))
    old = EcgLlmConfig.load(path)
    assert not old.findings_superclass and not old.findings_for_question  # older folders: their old hint


def test_labels_in_question_takes_the_longest_name():
    from bridge.modeling import labels_in_question

    names = ["SR", "IMI", "MI", "CLBBB", "STACH", "SARRH", "LVH", "VCLVH", "STTC"]
    pick = lambda q: [names[j] for j in labels_in_question(q, names)]  # noqa: E731
    assert pick("Which symptom does this ECG show, myocardial infarction in inferior leads or complete left "
                "bundle branch block?") == ["IMI", "CLBBB"]  # fmt: skip
    assert pick("Which rhythm does this ECG show, sinus tachycardia or sinus arrhythmia?") == [
        "STACH",
        "SARRH",
    ]
    assert pick("Which diagnostic superclass does this ECG show, st/t change or myocardial infarction?") == [
        "STTC",
        "MI",
    ]
    assert pick("Does it show voltage criteria (qrs) for left ventricular hypertrophy?") == ["VCLVH"]
    assert pick("What rhythm does this ECG show?") == []


def _rhythm_model(encoder_dir, thresholds: list[float], asked_format: str = "grouped") -> EcgLlm:
    """A model whose head reads SR / AFIB / STACH, with the question's verdicts in the hint (top-1 findings)."""
    model = _model(
        encoder_dir,
        findings_hint=True,
        findings_top_k=1,
        findings_for_question=True,
        asked_format=asked_format,
    )
    model.encoder.config.label_names = ["SR", "AFIB", "STACH"]
    model.encoder.config.label_thresholds = thresholds
    return model


def test_findings_hint_answers_the_labels_the_question_names(encoder_dir):
    model = _rhythm_model(encoder_dir, [0.5, 0.3, 0.5], asked_format="per_label")
    probs = torch.tensor([[0.9, 0.35, 0.1]])  # AFIB is above its threshold but not in the top-1 findings
    findings = model.findings(probs)
    q = "Which rhythm does this ECG show, sinus tachycardia or atrial fibrillation?"
    assert model.hint_lines(findings, q, probs) == [
        "Findings: sinus rhythm; asked: sinus tachycardia no, atrial fibrillation yes."
    ]
    assert model.hint_lines(findings, "What rhythm does this ECG show?", probs) == ["Findings: sinus rhythm."]
    two = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1]])
    assert model.hint_lines(model.findings(two), "Do both ECGs show atrial fibrillation?", two) == [
        "Findings ECG 1: sinus rhythm; asked: atrial fibrillation no.",
        "Findings ECG 2: atrial fibrillation; asked: atrial fibrillation yes.",
    ]
    model.config.findings_for_question = False
    assert model.hint_lines(findings, q, probs) == ["Findings: sinus rhythm."]


def test_grouped_asked_format_puts_the_choose_answer_verbatim_in_the_hint(encoder_dir):
    model = _rhythm_model(encoder_dir, [0.5, 0.3, 0.5])
    q = "Which rhythm does this ECG show, sinus tachycardia or atrial fibrillation?"
    probs = torch.tensor([[0.9, 0.35, 0.1]])
    assert model.hint_lines(model.findings(probs), q, probs) == [
        "Findings: sinus rhythm; asked shown: atrial fibrillation; asked not shown: sinus tachycardia."
    ]
    both = torch.tensor([[0.2, 0.9, 0.8]])
    assert model.hint_lines(model.findings(both), q, both) == [
        "Findings: atrial fibrillation; asked shown: sinus tachycardia, atrial fibrillation; asked not shown: none."
    ]
    neither = torch.tensor([[0.9, 0.1, 0.1]])
    assert model.hint_lines(model.findings(neither), q, neither)[0].endswith(
        "asked shown: none; asked not shown: sinus tachycardia, atrial fibrillation."
    )


def test_unknown_asked_format_is_a_config_error():
    with pytest.raises(ConfigError, match="asked_format"):
        EcgLlmConfig(asked_format="bullets")


def test_models_saved_before_asked_format_keep_per_label_verdicts(tmp_path):
    import json

    path = tmp_path / "config.json"
    EcgLlmConfig(findings_hint=True, findings_for_question=True, asked_format="grouped").save(path)
    assert EcgLlmConfig.load(path).asked_format == "grouped"
    data = json.loads(path.read_text())
    del data["asked_format"]
    path.write_text(json.dumps(data))
    assert EcgLlmConfig.load(path).asked_format == "per_label"


def test_verdict_uses_the_shift_where_fitted(encoder_dir):
    model = _rhythm_model(encoder_dir, [0.5, 0.5, 0.5], asked_format="per_label")
    probs = torch.tensor([[0.9, 0.2, 0.2]])
    q = "Which rhythm does this ECG show, sinus tachycardia or atrial fibrillation?"
    assert model.hint_lines(model.findings(probs), q, probs) == [
        "Findings: sinus rhythm; asked: sinus tachycardia no, atrial fibrillation no."
    ]
    # AFIB: logit(0.2) + 2 > 0 -> yes; STACH has no shift and keeps its 0.5 threshold
    model.config.verdict_logit_shift = [None, 2.0, None]
    assert model.hint_lines(model.findings(probs), q, probs) == [
        "Findings: sinus rhythm; asked: sinus tachycardia no, atrial fibrillation yes."
    ]


def test_verdict_shifts_must_match_the_encoder_labels(encoder_dir):
    from encoder.errors import CheckpointError

    with pytest.raises(CheckpointError, match="verdict_logit_shift"):
        _model(encoder_dir, verdict_logit_shift=[0.0] * 1000)
