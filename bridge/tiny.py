"""A tiny randomly initialised Llama + a byte-level BPE tokenizer trained on the fly (offline, seconds).

For smoke configs and tests only: it learns the ECG-QA answer format quickly but knows no language.
Available as ``packaged:tiny-random-llama``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from bridge.llm import embedding_weight

EMBED_SCALE = 25.0
"""Embedding std 0.02 -> 0.5. With frozen RMSNorm and tied embeddings at std 0.02, the largest reachable logit is
about 2.6 and the loss cannot fall below ~4.3 nats, whatever LoRA learns."""
BUILD_VERSION = 2
"""Bump when the tiny model changes, so cached copies are rebuilt."""

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _corpus() -> list[str]:
    """Training text for the tokenizer: ECG-QA answer vocabulary shipped with the encoder package + prompts."""
    root = resources.files("encoder") / "resources" / "ecgqa" / "ptbxl"
    lines = []
    for name in ("answers.csv", "answers_for_each_template.csv"):
        path = root / name
        if path.is_file():
            lines += path.read_text().splitlines()
    lines += [
        "You are an ECG assistant. Answer briefly.",
        "Does this ECG show symptoms of myocardial infarction? Which of these are present? yes no none",
        "What is the heart rate? Findings: normal ECG, ST/T change, conduction disturbance, hypertrophy.",
        "Is the first ECG different from the second ECG? Compare ECG 1 and ECG 2.",
    ]
    return lines


def build_tiny_tokenizer(vocab_size: int = 1024):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<|im_start|>", "<|im_end|>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
        pad_token="<pad>",
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_llm(
    dest: str | Path, hidden: int = 64, layers: int = 2, heads: int = 4, seed: int = 0
) -> Path:
    """Write a tiny random LlamaForCausalLM + tokenizer into ``dest`` (a normal HF folder)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger (tied) embeddings: LoRA alone can then reach confident output logits
        embedding_weight(model.get_input_embeddings()).mul_(EMBED_SCALE)
    dest = Path(dest)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest
