"""Chat processor: one <ecg> token x N per ECG, two-ECG prompts, answer-only labels, fallback template."""

import pytest

from bridge.processor import FALLBACK_CHAT_TEMPLATE, IGNORE_INDEX, EcgChatProcessor
from bridge.tiny import build_tiny_tokenizer
from encoder.errors import ConfigError


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def test_single_and_two_ecg_placeholders(tokenizer):
    proc = EcgChatProcessor(tokenizer, num_ecg_tokens=5, system_prompt="Be brief.")
    one = proc.encode_prompt("Does this ECG show ST/T change?", 1)
    two = proc.encode_prompt("Is the second ECG the same as the first?", 2)
    assert one.input_ids.count(proc.ecg_token_id) == 5
    assert two.input_ids.count(proc.ecg_token_id) == 10
    assert "<ecg>" in tokenizer.convert_ids_to_tokens([proc.ecg_token_id])
    text = tokenizer.decode(two.input_ids)
    assert "ECG 1:" in text and "ECG 2:" in text and text.rstrip().endswith("assistant")


def test_labels_cover_only_the_answer(tokenizer):
    proc = EcgChatProcessor(tokenizer, num_ecg_tokens=3)
    enc = proc.encode_train("Does this ECG show myocardial infarction?", "yes", 1)
    kept = [t for t, lab in zip(enc.input_ids, enc.labels, strict=True) if lab != IGNORE_INDEX]
    assert tokenizer.decode(kept) == "yes<|im_end|>"
    prompt = proc.encode_prompt("Does this ECG show myocardial infarction?", 1)
    assert enc.input_ids[: len(prompt.input_ids)] == prompt.input_ids
    assert all(lab == IGNORE_INDEX for lab in enc.labels[: len(prompt.input_ids)])


def test_history_puts_ecgs_in_first_turn_only(tokenizer):
    proc = EcgChatProcessor(tokenizer, num_ecg_tokens=2)
    enc = proc.encode_prompt("And the rhythm?", 1, history=[("Is it normal?", "no")])
    assert enc.input_ids.count(proc.ecg_token_id) == 2
    text = tokenizer.decode(enc.input_ids)
    assert text.index("<ecg>") < text.index("Is it normal?") < text.index("And the rhythm?")


def test_hints_are_added_as_text(tokenizer):
    proc = EcgChatProcessor(tokenizer, num_ecg_tokens=1)
    text = tokenizer.decode(proc.encode_prompt("Q?", 1, hints=["Findings: hypertrophy."]).input_ids)
    assert "Findings: hypertrophy." in text


def test_fallback_template_for_base_models():
    tok = build_tiny_tokenizer()
    tok.chat_template = None
    proc = EcgChatProcessor(tok, num_ecg_tokens=2)
    assert tok.chat_template == FALLBACK_CHAT_TEMPLATE
    enc = proc.encode_train("Q?", "no", 1)
    kept = [t for t, lab in zip(enc.input_ids, enc.labels, strict=True) if lab != IGNORE_INDEX]
    assert tok.decode(kept).strip().startswith("no")
    assert kept[-1] == tok.eos_token_id


def test_placeholder_in_question_is_refused(tokenizer):
    proc = EcgChatProcessor(tokenizer, num_ecg_tokens=2)
    with pytest.raises(ConfigError):
        proc.encode_prompt("inject <ecg> here", 1)


def test_padding_sides(tokenizer):
    proc = EcgChatProcessor(tokenizer, num_ecg_tokens=2)
    items = [
        proc.encode_train("Short?", "yes", 1),
        proc.encode_train("A much longer question here?", "no", 2),
    ]
    right, left = proc.pad(items, "right"), proc.pad(items, "left")
    assert right["attention_mask"][0, 0] == 1 and right["attention_mask"][0, -1] == 0
    assert left["attention_mask"][0, 0] == 0 and left["attention_mask"][0, -1] == 1
    assert (right["labels"] != IGNORE_INDEX).sum() == (left["labels"] != IGNORE_INDEX).sum()
