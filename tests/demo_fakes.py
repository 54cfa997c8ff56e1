"""A stand-in for ``llm_finetune.inference.EcgChat`` with the same interface, for fast demo tests.

It answers deterministically from simple signal statistics and streams word by word, so the UI can be tested
without loading any model. ``tests/test_demo_app.py`` also runs the demo with a real tiny stage-2 model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

LABELS = ["NORM", "MI", "STTC", "CD", "HYP"]


@dataclass
class FakeAnswer:
    text: str
    evidence: list[dict[str, float]]
    findings: list[list[str]]
    hints: list[str] | None = None


class FakeChat:
    """Deterministic fake: probabilities from per-lead energy; the answer names the top label."""

    label_names = LABELS
    encoder_config = SimpleNamespace(sampling_rate=100, input_seconds=10.0, input_normalization="zscore")

    def __init__(self, fail_with: Exception | None = None, delay_s: float = 0.0) -> None:
        self.fail_with = fail_with
        self.delay_s = delay_s  # pause per streamed word (to fill the queue in tests)
        self.calls: list[tuple[int, str, list]] = []

    def aux_probabilities(self, ecg_arrays: np.ndarray) -> np.ndarray:
        x = np.asarray(ecg_arrays, dtype=np.float64)  # (n, 12, T)
        assert x.ndim == 3 and x.shape[1] == 12, x.shape
        energy = np.abs(x).mean(axis=2)  # (n, 12)
        logits = energy[:, :5] * 4 - 2 + np.arange(5)[None] * 0.1  # (n, 5)
        return 1 / (1 + np.exp(-logits))

    def _evidence(self, ecg) -> dict[str, float]:
        from encoder.preprocess import model_input

        probs = self.aux_probabilities(model_input(ecg, 100, 1000)[None])[0]
        return dict(sorted(zip(LABELS, probs.tolist(), strict=True), key=lambda kv: -kv[1]))

    def answer(self, ecgs, question, history=None, stream=False, max_new_tokens=64):
        items = list(ecgs) if isinstance(ecgs, (list, tuple)) else [ecgs]
        self.calls.append((len(items), question, list(history or [])))
        if self.fail_with is not None:
            raise self.fail_with
        evidence = [self._evidence(e) for e in items]
        findings = [[k for k, v in ev.items() if v >= 0.5] for ev in evidence]
        top = next(iter(evidence[0]))
        text = (
            f"Looking at {len(items)} ECG(s): the strongest finding is {top}. (history: {len(history or [])})"
        )
        hints = [f"ECG {i + 1} aux head findings: {', '.join(f) or 'none'}" for i, f in enumerate(findings)]
        if not stream:
            return FakeAnswer(text, evidence, findings, hints)
        return self._stream(text, evidence, findings, hints)

    def _stream(self, text, evidence, findings, hints):
        words = text.split(" ")
        for i in range(len(words)):
            time.sleep(self.delay_s)
            yield FakeAnswer(" ".join(words[: i + 1]), evidence, findings, hints)
