"""Terminal chat about one or two ECG records with a trained stage-2 model (``ecgllm chat``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from encoder.errors import ConfigError, EcgLlmError


@dataclass
class ChatConfig:
    model: str = "runs/finetune-synthetic/model"
    """Stage-2 model directory (``<finetune run>/model``)."""
    records: list[str] = field(default_factory=list)
    """One or two ECG files (WFDB .hea/.dat, .npy with fs, .csv); two for comparison questions."""
    question: str | None = None
    """Ask this one question and exit (otherwise an interactive prompt; empty line or 'exit' quits)."""
    max_new_tokens: int = 64
    """Longest answer in tokens."""
    stream: bool = True
    """Print the answer as it is generated."""
    top_findings: int = 5
    """Aux-head findings printed per ECG."""
    llm: str | None = None
    """Override where the base LLM is found (a local folder) if it moved since training."""


def _print_evidence(evidence: list[dict[str, float]], top: int, out) -> None:
    for i, ev in enumerate(evidence, 1):
        items = ", ".join(f"{k} {v:.2f}" for k, v in list(ev.items())[:top])
        print(f"  aux head, ECG {i}: {items}", file=out)


def run_chat(cfg: ChatConfig, ask: Callable[[str], str] = input, out=None) -> list[tuple[str, str]]:
    """Load the model, then answer questions about ``cfg.records``; returns the (question, answer) history."""
    from llm_finetune.inference import EcgChat

    out = out or sys.stdout
    if not 1 <= len(cfg.records) <= 2:
        raise ConfigError("Give one or two ECG files with --records.")
    chat = EcgChat.from_pretrained(cfg.model, llm=cfg.llm)
    arrays = chat.prepare(list(cfg.records))  # read + validate once
    history: list[tuple[str, str]] = []
    first = True
    while True:
        if cfg.question is not None:
            question = cfg.question if first else ""
        else:
            try:
                question = ask("you> ").strip()
            except EOFError:
                question = ""
        first = False
        if not question or question.lower() in {"exit", "quit"}:
            return history
        try:
            if cfg.stream:
                text, shown, answer = "", 0, None
                print("ecg-llm> ", end="", file=out, flush=True)
                for answer in chat.answer(
                    list(arrays), question, history, stream=True, max_new_tokens=cfg.max_new_tokens
                ):
                    print(answer.text[shown:], end="", file=out, flush=True)
                    shown = len(answer.text)
                print(file=out)
                text = answer.text if answer else ""
                evidence = answer.evidence if answer else []
            else:
                answer = chat.answer(list(arrays), question, history, max_new_tokens=cfg.max_new_tokens)
                text, evidence = answer.text, answer.evidence
                print(f"ecg-llm> {text}", file=out)
        except EcgLlmError as err:
            print(f"error: {err}", file=out)
            continue
        _print_evidence(evidence, cfg.top_findings, out)
        history.append((question, text))
