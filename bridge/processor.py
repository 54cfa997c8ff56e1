"""Prompt building and tokenisation for ECG chat: chat template + ``<ecg>`` x N placeholders + answer-only labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from encoder.errors import ConfigError

IGNORE_INDEX = -100

# Used only when the tokenizer has no chat template (base models such as Gemma 3 base).
FALLBACK_CHAT_TEMPLATE = (
    "{{ bos_token if bos_token else '' }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n' }}"
    "{% else %}{{ 'Assistant: ' + message['content'] + eos_token + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def add_ecg_token(tokenizer, ecg_token: str = "<ecg>") -> int:
    """Register the placeholder as a special token (idempotent); return its id. Sets a pad token if missing."""
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [ecg_token]}, replace_extra_special_tokens=False
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    token_id = tokenizer.convert_tokens_to_ids(ecg_token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise ConfigError(f"Could not add the placeholder token {ecg_token!r} to the tokenizer.")
    return int(token_id)


@dataclass
class Encoded:
    """One tokenised example (no padding)."""

    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX everywhere except the answer tokens
    num_ecgs: int


class EcgChatProcessor:
    """Turns (ECG count, question, optional answer, history, findings hint) into token ids.

    Each ECG is one ``<ecg>`` token repeated ``num_ecg_tokens`` times; comparison questions get two blocks.
    """

    def __init__(
        self, tokenizer, num_ecg_tokens: int, ecg_token: str = "<ecg>", system_prompt: str | None = None
    ) -> None:
        if num_ecg_tokens < 1:
            raise ConfigError("num_ecg_tokens must be >= 1.")
        self.tokenizer = tokenizer
        self.num_ecg_tokens = num_ecg_tokens
        self.ecg_token = ecg_token
        self.ecg_token_id = add_ecg_token(tokenizer, ecg_token)
        self.system_prompt = system_prompt

    # ----- text -------------------------------------------------------------------------------------------
    def ecg_block(self, num_ecgs: int) -> str:
        run = self.ecg_token * self.num_ecg_tokens
        if num_ecgs == 1:
            return f"ECG: {run}\n"
        return "".join(f"ECG {i + 1}: {run}\n" for i in range(num_ecgs))

    def user_content(self, question: str, num_ecgs: int, hints: list[str] | None = None) -> str:
        """ECG placeholders, then optional findings hint lines, then the question."""
        if self.ecg_token in question:
            raise ConfigError(f"The question must not contain the placeholder token {self.ecg_token!r}.")
        text = self.ecg_block(num_ecgs) if num_ecgs > 0 else ""
        if hints:
            text += "".join(f"{h}\n" for h in hints)
        return text + question

    def messages(
        self,
        question: str,
        num_ecgs: int,
        history: list[tuple[str, str]] | None = None,
        hints: list[str] | None = None,
    ) -> list[dict[str, str]]:
        """Chat messages; the ECG placeholders go into the first user turn."""
        msgs: list[dict[str, str]] = []
        if self.system_prompt:
            msgs.append({"role": "system", "content": self.system_prompt})
        history = list(history or [])
        for i, (user, assistant) in enumerate(history):
            content = self.user_content(user, num_ecgs, hints) if i == 0 else user
            msgs += [{"role": "user", "content": content}, {"role": "assistant", "content": assistant}]
        first = not history
        msgs.append(
            {
                "role": "user",
                "content": self.user_content(question, num_ecgs if first else 0, hints if first else None),
            }
        )
        return msgs

    def prompt_text(self, question: str, num_ecgs: int, history=None, hints=None) -> str:
        return self.tokenizer.apply_chat_template(
            self.messages(question, num_ecgs, history, hints), tokenize=False, add_generation_prompt=True
        )

    # ----- ids --------------------------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_prompt(self, question: str, num_ecgs: int, history=None, hints=None) -> Encoded:
        ids = self._ids(self.prompt_text(question, num_ecgs, history, hints))
        self._check_count(ids, num_ecgs)
        return Encoded(ids, [IGNORE_INDEX] * len(ids), num_ecgs)

    def encode_train(self, question: str, answer: str, num_ecgs: int, history=None, hints=None) -> Encoded:
        """Prompt + answer + end-of-turn; labels are IGNORE_INDEX except on the answer (and end-of-turn) tokens."""
        msgs = self.messages(question, num_ecgs, history, hints)
        prompt = self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        full = self.tokenizer.apply_chat_template(
            msgs + [{"role": "assistant", "content": answer}], tokenize=False, add_generation_prompt=False
        )
        if not full.startswith(prompt):
            raise ConfigError("The chat template does not extend the generation prompt with the answer.")
        completion = full[len(prompt) :].rstrip()  # answer + end-of-turn marker
        prompt_ids, answer_ids = self._ids(prompt), self._ids(completion)
        eos = self.tokenizer.eos_token_id
        if eos is not None and eos not in answer_ids:
            answer_ids.append(eos)
        self._check_count(prompt_ids, num_ecgs)
        return Encoded(prompt_ids + answer_ids, [IGNORE_INDEX] * len(prompt_ids) + answer_ids, num_ecgs)

    def _check_count(self, ids: list[int], num_ecgs: int) -> None:
        found = sum(1 for t in ids if t == self.ecg_token_id)
        if found != num_ecgs * self.num_ecg_tokens:
            raise ConfigError(
                f"Prompt has {found} {self.ecg_token} tokens, expected {num_ecgs} x {self.num_ecg_tokens}; "
                "the tokenizer split the placeholder or the chat template altered it."
            )

    # ----- batching ---------------------------------------------------------------------------------------
    def pad(self, items: list[Encoded], side: str = "right") -> dict[str, torch.Tensor]:
        """Pad to the longest item -> input_ids, attention_mask, labels (B, T)."""
        width = max(len(x.input_ids) for x in items)
        pad_id = self.tokenizer.pad_token_id
        ids = torch.full((len(items), width), pad_id, dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for i, x in enumerate(items):
            n = len(x.input_ids)
            sl = slice(width - n, width) if side == "left" else slice(0, n)
            ids[i, sl] = torch.tensor(x.input_ids)
            labels[i, sl] = torch.tensor(x.labels)
            mask[i, sl] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
