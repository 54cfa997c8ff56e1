"""Inference API: ``EcgChat.from_pretrained(dir)`` -> ``answer`` / ``generate_batch`` / ``aux_probabilities``.

The functions at the bottom (``greedy_answers``, ``choose_answers``) work on an ``EcgLlm`` plus (cached) encoder
features; training-time evaluation and ``EcgChat`` both use them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

import numpy as np
import torch

from bridge.modeling import EcgFeatures, EcgLlm
from bridge.processor import Encoded
from bridge.prompting import consecutive_rows
from encoder.errors import ConfigError, EcgInputError
from encoder.record import Ecg
from llm_finetune.vqa.candidates import Candidates


@dataclass
class ChatAnswer:
    """An answer with the aux head's evidence: one label -> probability dict per ECG (high first)."""

    text: str
    evidence: list[dict[str, float]]
    findings: list[list[str]]
    hints: list[str] | None = None
    """The evidence lines the prompt carried (findings, asked verdicts, attribute lines); None: hint off."""


class EcgChat:
    """Question answering about one or two ECGs with a trained stage-2 model."""

    def __init__(self, model: EcgLlm) -> None:
        self.model = model.eval()

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | os.PathLike,
        *,
        device: str | torch.device | None = None,
        llm: str | None = None,
        quantization: str | None = None,
        dtype: str | None = None,
    ) -> EcgChat:
        """Load a ``run_finetune`` result (``<run>/model``); ``llm`` overrides where the base LLM lives."""
        return cls(
            EcgLlm.from_pretrained(model_dir, llm=llm, quantization=quantization, dtype=dtype, device=device)
        )

    # ----- ECG side ---------------------------------------------------------------------------------------
    @property
    def label_names(self) -> list[str]:
        return self.model.label_names

    @property
    def encoder_config(self):
        """Encoder config: ``sampling_rate`` and ``input_samples`` feed ``encoder.preprocess.model_input``."""
        return self.model.encoder.config

    def prepare(self, ecgs: Ecg | str | Path | np.ndarray | Sequence) -> np.ndarray:
        """Records, paths or model-ready (12, T) arrays -> model-ready batch (n, 12, T)."""
        from encoder.preprocess import model_input

        items = list(ecgs) if isinstance(ecgs, (list, tuple)) else [ecgs]
        if not 1 <= len(items) <= 2:
            raise EcgInputError(f"Ask about one or two ECGs at a time, got {len(items)}.")
        cfg = self.encoder_config
        out = []
        for item in items:
            if isinstance(item, (str, Path)):
                from encoder.io import read_ecg

                item = read_ecg(item)
            if isinstance(item, Ecg):
                item = model_input(
                    item, cfg.sampling_rate, cfg.input_samples, normalization=cfg.input_normalization
                )
            arr = np.asarray(item, dtype=np.float32)
            if arr.shape != (12, cfg.input_samples):
                raise EcgInputError(
                    f"A model-ready array must have shape (12, {cfg.input_samples}); got {arr.shape}. "
                    "Pass an Ecg or a file path to have it resampled/cropped/normalised."
                )
            if not np.isfinite(arr).all():
                raise EcgInputError("The ECG array contains NaN/inf values.")
            out.append(arr)
        return np.stack(out)

    def features(self, arrays: np.ndarray) -> EcgFeatures:
        return self.model.encode_ecgs(torch.from_numpy(np.asarray(arrays, dtype=np.float32)))

    def aux_probabilities(self, ecg_arrays: np.ndarray) -> np.ndarray:
        """Calibrated aux-head probabilities (n, L) of model-ready arrays (n, 12, T)."""
        return self.features(ecg_arrays).probs.cpu().numpy()

    def aux_attributes(self, ecg_arrays: np.ndarray) -> list | None:
        """ECG-QA attributes (``EcgAttributes`` per ECG) the encoder's multi-task head predicts for model-ready
        arrays (n, 12, T); ``None`` when the encoder has no such head."""
        encoder = self.model.encoder
        if getattr(encoder, "aux_head", None) is None:
            return None
        return encoder.predict_attributes(torch.from_numpy(np.asarray(ecg_arrays, dtype=np.float32)))

    def _evidence(self, probs: torch.Tensor) -> list[dict[str, float]]:
        names = self.label_names
        return [
            dict(sorted(zip(names, map(float, row), strict=True), key=lambda kv: -kv[1]))
            for row in probs.cpu().tolist()
        ]

    # ----- chat -------------------------------------------------------------------------------------------
    @overload
    def answer(
        self,
        ecgs: Ecg | str | Path | np.ndarray | list,
        question: str,
        history: list[tuple[str, str]] | None = None,
        stream: Literal[False] = False,
        max_new_tokens: int = 64,
    ) -> ChatAnswer: ...

    @overload
    def answer(
        self,
        ecgs: Ecg | str | Path | np.ndarray | list,
        question: str,
        history: list[tuple[str, str]] | None = None,
        *,
        stream: Literal[True],
        max_new_tokens: int = 64,
    ) -> Iterator[ChatAnswer]: ...

    @overload
    def answer(
        self,
        ecgs: Ecg | str | Path | np.ndarray | list,
        question: str,
        history: list[tuple[str, str]] | None = None,
        stream: bool = False,
        max_new_tokens: int = 64,
    ) -> ChatAnswer | Iterator[ChatAnswer]: ...

    def answer(
        self,
        ecgs: Ecg | str | Path | np.ndarray | list,
        question: str,
        history: list[tuple[str, str]] | None = None,
        stream: bool = False,
        max_new_tokens: int = 64,
    ) -> ChatAnswer | Iterator[ChatAnswer]:
        """Greedy answer about 1-2 ECGs; ``stream=True`` yields ChatAnswers with growing text."""
        if not question or not question.strip():
            raise ConfigError("The question is empty.")
        feats = self.features(self.prepare(ecgs))
        findings = self.model.findings(feats.probs)
        evidence = self._evidence(feats.probs)
        rows = [list(range(len(feats)))]
        hints = self.model.prompts.hints([question], rows, feats.probs, feats.aux)[0]
        enc = self.model.processor.encode_prompt(question.strip(), len(feats), history=history, hints=hints)
        batch = self.model.processor.pad([enc], side="left")
        if not stream:
            ids = self.model.generate(
                batch["input_ids"], batch["attention_mask"], feats, max_new_tokens=max_new_tokens
            )
            text = self.model.tokenizer.decode(ids[0], skip_special_tokens=True).strip()
            return ChatAnswer(text, evidence, findings, hints)
        return self._stream(batch, feats, evidence, findings, hints, max_new_tokens)

    def _stream(self, batch, feats, evidence, findings, hints, max_new_tokens) -> Iterator[ChatAnswer]:
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.model.tokenizer, skip_prompt=False, skip_special_tokens=True)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                self.model.generate(
                    batch["input_ids"],
                    batch["attention_mask"],
                    feats,
                    max_new_tokens=max_new_tokens,
                    streamer=streamer,
                )
            except BaseException as err:  # surfaced to the caller below
                errors.append(err)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        text = ""
        for piece in streamer:
            text += piece
            yield ChatAnswer(text.strip(), evidence, findings, hints)
        thread.join()
        if errors:
            raise errors[0]

    def generate_batch(
        self,
        ecg_batches: list[list[np.ndarray]],
        questions: list[str],
        *,
        use_ecg: bool = True,
        max_new_tokens: int = 16,
        allowed_answers: list[list[str] | Candidates] | None = None,
        batch_size: int = 16,
    ) -> list[str]:
        """Greedy answers for many questions (left-padded batches). ``use_ecg=False``: text-only baseline (no ECG
        tokens, no findings hint). ``allowed_answers``: per question, pick the most likely of these strings, or
        of a :class:`Candidates` (a query question's option subsets)."""
        if len(ecg_batches) != len(questions):
            raise ConfigError(f"{len(ecg_batches)} ECG lists for {len(questions)} questions.")
        if allowed_answers is not None and len(allowed_answers) != len(questions):
            raise ConfigError("allowed_answers needs one option list per question.")
        answers: list[str] = []
        for start in range(0, len(questions), batch_size):
            sl = slice(start, start + batch_size)
            qs, ecgs = questions[sl], ecg_batches[sl]
            feats, counts = None, [0] * len(qs)
            if use_ecg:
                counts = [len(e) for e in ecgs]
                arrays = np.stack([np.asarray(a, dtype=np.float32) for e in ecgs for a in e])  # (M, 12, T)
                feats = self.features(arrays)
            options = allowed_answers[sl] if allowed_answers is not None else None
            answers += answer_questions(
                self.model, qs, counts, feats, options=options, max_new_tokens=max_new_tokens
            )
        return answers


# ----- batch helpers on an EcgLlm + features ----------------------------------------------------------------
def _prompts(
    model: EcgLlm, questions: Sequence[str], counts: Sequence[int], feats: EcgFeatures | None
) -> list[Encoded]:
    hints = model.prompts.hints(questions, consecutive_rows(counts), *_probs(feats))
    return [
        model.processor.encode_prompt(q, n, hints=h) for q, n, h in zip(questions, counts, hints, strict=True)
    ]


def _probs(feats: EcgFeatures | None) -> tuple[torch.Tensor | None, dict[str, torch.Tensor] | None]:
    """What the hint is built from: label probabilities and multi-task outputs (None without ECGs)."""
    return (feats.probs, feats.aux) if feats is not None else (None, None)


@torch.no_grad()
def answer_questions(
    model: EcgLlm,
    questions: Sequence[str],
    counts: Sequence[int],
    feats: EcgFeatures | None,
    *,
    options: Sequence[Sequence[str] | Candidates] | None = None,
    max_new_tokens: int = 16,
) -> list[str]:
    """Free-form greedy answers, or the most likely option per question when ``options`` is given (a list of
    answer strings, or :class:`Candidates`: option subsets of query questions are decoded item by item).

    ``counts[i]`` ECGs belong to question i; ``feats`` holds them in order (None / counts 0 = text only).
    """
    if options is not None:
        cands = [o if isinstance(o, Candidates) else Candidates(tuple(o)) for o in options]
        return subset_answers(model, questions, counts, feats, cands)
    prompts = _prompts(model, questions, counts, feats)
    batch = model.processor.pad(prompts, side="left")
    device = next(model.llm.parameters()).device
    ids = model.generate(
        batch["input_ids"].to(device),
        batch["attention_mask"].to(device),
        feats,
        max_new_tokens=max_new_tokens,
    )
    return [t.strip() for t in model.tokenizer.batch_decode(ids, skip_special_tokens=True)]


@torch.no_grad()
def choose_answers(
    model: EcgLlm,
    questions: Sequence[str],
    counts: Sequence[int],
    feats: EcgFeatures | None,
    options: Sequence[Sequence[str]],
    chunk: int = 8,
    max_option_rows: int = 64,
) -> list[str]:
    """Constrained decoding: the option with the highest total log-likelihood (answer + end-of-turn tokens).

    Each prompt runs once (at most ``chunk`` questions and ``max_option_rows`` options per pass); its key/value
    cache is then shared by all of that question's options, which only run their few answer tokens.
    """
    items: list[tuple[Encoded, list[list[int]], list[int]]] = []  # prompt, answer ids per option, ECG rows
    all_rows = consecutive_rows(counts)
    all_hints = model.prompts.hints(questions, all_rows, *_probs(feats))
    for i, (q, n, rows, hints) in enumerate(zip(questions, counts, all_rows, all_hints, strict=True)):
        if not options[i]:
            raise ConfigError(f"Question {i} has an empty list of allowed answers.")
        prompt = model.processor.encode_prompt(q, n, hints=hints)
        k = len(prompt.input_ids)
        answers = [model.processor.encode_train(q, opt, n, hints=hints).input_ids[k:] for opt in options[i]]
        if not all(answers):
            raise ConfigError(
                f"An allowed answer of question {i} tokenizes to nothing: {list(options[i])!r}."
            )
        items.append((prompt, answers, rows))
    choices: list[str] = []
    start = 0
    while start < len(items):
        stop, rows_used = start, 0
        while stop < len(items) and stop - start < chunk:
            rows_used += len(items[stop][1])
            if rows_used > max_option_rows and stop > start:
                break
            stop += 1
        scores = iter(_option_scores(model, items[start:stop], feats))
        for qi in range(start, stop):
            mine = [next(scores) for _ in options[qi]]
            choices.append(options[qi][int(np.argmax(mine))])
        start = stop
    return choices


def subset_answers(
    model: EcgLlm,
    questions: Sequence[str],
    counts: Sequence[int],
    feats: EcgFeatures | None,
    candidates: Sequence[Candidates],
) -> list[str]:
    """Constrained answers: one option each (:func:`choose_answers`), or for ``subsets`` candidates a greedy
    search over complete answers: the best single option, then while a longer answer (one more later option)
    scores higher than the current one as a whole, take it."""
    if len(candidates) != len(questions):
        raise ConfigError(f"{len(candidates)} candidate lists for {len(questions)} questions.")
    rows = consecutive_rows(counts)
    items: list[tuple[int, ...]] = [()] * len(questions)
    active = list(range(len(questions)))
    while active:
        steps = [
            candidates[i].extensions(items[i])
            if candidates[i].subsets
            else [(k,) for k in range(len(candidates[i].options))]
            for i in active
        ]
        ecg_rows = [r for i in active for r in rows[i]]
        picks = choose_answers(
            model,
            [questions[i] for i in active],
            [counts[i] for i in active],
            feats.index(ecg_rows) if feats is not None and ecg_rows else None,
            [[candidates[i].text(s) for s in step] for i, step in zip(active, steps, strict=True)],
        )
        still = []
        for i, step, pick in zip(active, steps, picks, strict=True):
            chosen = next(s for s in step if candidates[i].text(s) == pick)
            grows = chosen != items[i] and len(candidates[i].extensions(chosen)) > 1
            if candidates[i].subsets and grows:
                still.append(i)
            items[i] = chosen
        active = still
    return [c.text(s) for c, s in zip(candidates, items, strict=True)]


def _option_scores(
    model: EcgLlm, part: list[tuple[Encoded, list[list[int]], list[int]]], feats: EcgFeatures | None
) -> list[float]:
    """Total log-likelihood of every option of every question in ``part``, in order (shared prompt cache)."""
    device = next(model.llm.parameters()).device
    batch = model.processor.pad([p for p, _, _ in part], side="left")
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)  # (B, T)
    rows = [r for _, _, rs in part for r in rs]
    sub = feats.index(rows).to(device) if feats is not None and rows else None
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens count from 0
    out = model.llm(
        inputs_embeds=model.embed(ids, sub),
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
    )
    if out.cache is None:
        raise ConfigError(
            "Constrained decoding needs the LLM's key/value cache; call model.eval() first (gradient "
            "checkpointing in training mode switches the cache off)."
        )
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (B, V): the first answer token
    owner = torch.tensor(
        [q for q, (_, answers, _) in enumerate(part) for _ in answers], device=device
    )  # (O,)
    answers = [a for _, ans, _ in part for a in ans]
    width = max(len(a) for a in answers)
    pad_id = model.tokenizer.pad_token_id
    cont = torch.full((len(answers), width), pad_id, dtype=torch.long, device=device)  # (O, A)
    cont_mask = torch.zeros_like(cont)
    for j, a in enumerate(answers):
        cont[j, : len(a)] = torch.tensor(a, device=device)
        cont_mask[j, : len(a)] = 1
    cache = out.cache
    cache.batch_select_indices(owner)  # one copy of the prompt cache per option
    logp_first = first[owner, cont[:, 0]]  # (O,)
    if width == 1:
        return logp_first.tolist()
    cont_positions = mask.sum(-1)[owner].unsqueeze(-1) + torch.arange(width, device=device)  # (O, A)
    rest = model.llm(
        input_ids=cont,
        attention_mask=torch.cat([mask[owner], cont_mask], dim=1),
        position_ids=cont_positions,
        cache=cache,
    ).logits[:, :-1]  # (O, A-1, V): predicts answer tokens 2..A
    logp = torch.log_softmax(rest.float(), dim=-1).gather(-1, cont[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (logp_first + (logp * cont_mask[:, 1:]).sum(-1)).tolist()
