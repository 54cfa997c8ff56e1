"""A second LLM family: Gemma 3 (the architecture MedGemma builds on) as the stage-2 LLM.

- the multimodal wrapper ``Gemma3ForConditionalGeneration`` (MedGemma's class), tiny and random: its text model,
  embeddings and decoder layers are found from the model object, and LoRA stays out of the vision tower;
- the packaged Gemma 3 270M (GGUF from PyPI, converted once and cached): trained a few steps, saved, reloaded and
  answering (slow: the first conversion takes a minute or two, later loads seconds).
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from bridge.configuration import EcgLlmConfig
from bridge.llm import causal_text_model, find_lora_targets, load_llm, resolve_llm, text_model
from bridge.modeling import EcgLlm
from bridge.projector import ProjectorConfig
from bridge.tiny import build_tiny_tokenizer
from llm_finetune.testing import write_tiny_encoder, write_tiny_qa

TEXT_LINEARS = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return write_tiny_encoder(tmp_path_factory.mktemp("enc") / "encoder")


@pytest.fixture(scope="module")
def tiny_wrapper(tmp_path_factory):
    """A random Gemma3ForConditionalGeneration folder whose vision tower has MORE layers than its text model."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    tokenizer = build_tiny_tokenizer()
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,  # 4-bit packing needs at least 64 inputs per Linear layer
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        sliding_window=32,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
    )
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=1)
    torch.manual_seed(0)
    dest = tmp_path_factory.mktemp("gemma3-wrapper") / "llm"
    Gemma3ForConditionalGeneration(config).save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def test_wrapper_text_model_is_found_from_the_model_and_shared(tiny_wrapper):
    from transformers import Gemma3ForConditionalGeneration

    wrapper = Gemma3ForConditionalGeneration.from_pretrained(tiny_wrapper, dtype=torch.float32).eval()
    name, text = text_model(wrapper)
    assert name == "model.language_model" and text.get_input_embeddings() is wrapper.get_input_embeddings()
    # the longest layer stack of the whole model is the vision tower's (4 > 2): it must not be chosen
    assert find_lora_targets(wrapper) == TEXT_LINEARS
    llm, _ = load_llm(tiny_wrapper, dtype="float32")  # what stage 2 gets: the text-only causal LM
    assert type(llm).__name__ == "Gemma3ForCausalLM" and not any(
        "vision" in n for n, _ in llm.named_modules()
    )
    view = causal_text_model(wrapper)
    assert view.get_input_embeddings() is wrapper.get_input_embeddings()  # shared, not copied
    assert view.get_output_embeddings() is wrapper.get_output_embeddings()
    ids = torch.tensor([[1, 5, 9, 42, 7]])
    with torch.no_grad():
        assert torch.allclose(view(input_ids=ids).logits, wrapper(input_ids=ids).logits, atol=1e-6)
        assert torch.allclose(llm(input_ids=ids).logits, wrapper(input_ids=ids).logits, atol=1e-6)


def test_wrapper_trains_saves_and_reloads_as_stage2_llm(tiny_wrapper, encoder_dir, tmp_path):
    torch.manual_seed(0)
    cfg = EcgLlmConfig(
        llm=str(tiny_wrapper), projector=ProjectorConfig(num_tokens=2), lora_r=4, dtype="float32"
    )
    model = EcgLlm.build(cfg, encoder_dir)
    lora = [n for n, _ in model.llm.named_parameters() if "lora_A" in n]
    assert len(lora) == 2 * len(TEXT_LINEARS)  # 2 text layers x 7 Linear layers, none in a vision tower
    items = [model.processor.encode_train("Is this ECG normal?", "yes", n) for n in (1, 2)]
    batch, ecg = model.processor.pad(items), torch.randn(3, 12, 1000)
    model.train()
    out = model(batch["input_ids"], batch["attention_mask"], labels=batch["labels"], ecg=ecg)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.projector.parameters())
    with torch.no_grad():  # a non-trivial adapter, so the reload must restore it to match
        for n, p in model.llm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    model.eval()
    prompt = model.processor.pad([model.processor.encode_prompt("Is this ECG normal?", 1)], side="left")
    feats = model.encode_ecgs(ecg[:1])
    before = model.generate(prompt["input_ids"], prompt["attention_mask"], feats, max_new_tokens=4)
    reloaded = EcgLlm.from_pretrained(model.save_pretrained(tmp_path / "model"))
    after = reloaded.generate(prompt["input_ids"], prompt["attention_mask"], feats, max_new_tokens=4)
    assert torch.equal(before, after)


def test_wrapper_in_4bit_qlora_trains_and_generates(tiny_wrapper, encoder_dir):
    """MedGemma's recipe path (QLoRA, 4-bit NF4 via bitsandbytes, here on the CPU) through the text-only view."""
    torch.manual_seed(0)
    cfg = EcgLlmConfig(
        llm=str(tiny_wrapper), projector=ProjectorConfig(num_tokens=2), lora_r=4, quantization="4bit"
    )
    model = EcgLlm.build(cfg, encoder_dir)
    base = model.llm.get_base_model()
    assert type(base).__name__ == "Gemma3ForCausalLM" and base.is_loaded_in_4bit
    assert any(type(m).__name__ == "Linear4bit" for m in base.modules())
    batch = model.processor.pad([model.processor.encode_train("Is this ECG normal?", "yes", 1)])
    model.train()
    out = model(
        batch["input_ids"], batch["attention_mask"], labels=batch["labels"], ecg=torch.randn(1, 12, 1000)
    )
    out.loss.backward()
    assert torch.isfinite(out.loss) and any(
        p.grad is not None for n, p in model.llm.named_parameters() if "lora_A" in n
    )
    model.eval()
    prompt = model.processor.pad([model.processor.encode_prompt("Is this ECG normal?", 1)], side="left")
    ids = model.generate(
        prompt["input_ids"],
        prompt["attention_mask"],
        model.encode_ecgs(torch.randn(1, 12, 1000)),
        max_new_tokens=3,
    )
    assert ids.shape == (1, 3)


def test_a_missing_model_package_is_a_clear_error(tmp_path):
    from bridge.gguf import AssembledGguf, PackagedGguf
    from encoder.errors import ModelLoadError

    for source in (
        AssembledGguf("no_such_gguf_package", "m.gguf", "none", "no-such-gguf-package"),
        PackagedGguf("no_such_gguf_package", "m.gguf", "none", "no-such-gguf-package"),
    ):
        with pytest.raises(ModelLoadError, match="pip install .*no-such-gguf-package"):
            source.locate(tmp_path)


def _answer_loss(model: EcgLlm, ecgs: np.ndarray) -> float:
    """Answer-token loss on the tiny data's two question wordings (the comparison answer is always "no")."""
    pairs = [
        ("Does this ECG show symptoms of normal ECG?", "yes", 1),
        ("Does this ECG show symptoms of normal ECG?", "no", 1),
    ]
    pairs.append(("Is the second ECG the same as the first ECG?", "no", 2))
    batch = model.processor.pad([model.processor.encode_train(q, a, n) for q, a, n in pairs])
    feats = model.encode_ecgs(torch.from_numpy(ecgs[[0, 0, 0, 1]]))  # (4, 12, T) in prompt order
    with torch.no_grad():
        return float(model(batch["input_ids"], batch["attention_mask"], feats, labels=batch["labels"]).loss)


@pytest.mark.slow
def test_packaged_gemma3_270m_trains_saves_reloads_and_answers(encoder_dir, tmp_path):
    from llm_finetune.inference import EcgChat, answer_questions
    from llm_finetune.train import FinetuneConfig, run_finetune

    path = resolve_llm("packaged:gemma3-270m")  # converted once, then cached
    assert "Gemma" in (path / "SOURCE.txt").read_text()
    data = write_tiny_qa(tmp_path / "data")
    llm_cfg = EcgLlmConfig(
        llm="packaged:gemma3-270m", projector=ProjectorConfig(num_tokens=2), lora_r=4, dtype="float32"
    )
    cfg = FinetuneConfig(
        data_root=str(data), encoder=str(encoder_dir), output_dir=str(tmp_path / "run"), model=llm_cfg,
        max_steps=3, batch_size=4, lr=2e-3, projector_lr=2e-3,
        warmup_steps=1, checkpoint_every=3, max_eval_samples=0,
    )  # fmt: skip
    out = run_finetune(cfg)
    chat = EcgChat.from_pretrained(out)
    model = chat.model
    assert type(model.llm.get_base_model()).__name__ == "Gemma3ForCausalLM"
    ecgs = np.random.default_rng(0).standard_normal((2, 12, 1000)).astype(np.float32)
    text = chat.answer(ecgs[0], "Does this ECG show symptoms of normal ECG?", max_new_tokens=4).text
    assert text.lower() in ("yes", "no")  # a base model that learnt the answer format in 3 steps
    feats = chat.features(ecgs)
    questions = ["Does this ECG show symptoms of normal ECG?"] * 2
    chosen = answer_questions(model, questions, [1, 1], feats, options=[["yes", "no"]] * 2)
    assert set(chosen) <= {"yes", "no"} and len(chosen) == 2
    # the reloaded weights are the trained ones: a far lower answer loss than the run's first (untrained) step
    with open(tmp_path / "run" / "metrics.csv") as f:
        first = next(float(r["loss"]) for r in csv.DictReader(f) if r["split"] == "train")
    assert _answer_loss(model, ecgs) < first - 1.0, (_answer_loss(model, ecgs), first)
