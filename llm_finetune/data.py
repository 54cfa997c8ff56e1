"""ECG-QA samples -> token ids with answer-only labels, and frozen-encoder features cached once per ECG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bridge.modeling import EcgLlm
from bridge.processor import Encoded
from encoder.errors import DatasetError
from llm_finetune.features import FeatureStore


@dataclass
class QaSample:
    """One ECG-QA question (``ecg_ids`` has 1 or 2 entries; ``answer`` is a list as in ECG-QA)."""

    ecg_ids: list[int]
    question: str
    answer: list[str]
    question_type: str = ""
    template_id: int = -1
    attribute_type: str = ""
    attribute: list[str] | None = None


def answer_text(answer: Sequence[str]) -> str:
    """ECG-QA answer list -> the target string (comma-separated, in the dataset's order)."""
    return ", ".join(a.strip() for a in answer)


def target_answer(sample: QaSample) -> list[str]:
    """The answer a model is trained to write: a query question's items in its template's option order (the
    order constrained decoding builds subsets in, ``llm_finetune.vqa.candidates``), other answers as given."""
    from encoder.ecgqa.templates import TEMPLATES
    from llm_finetune.vqa.candidates import canonical_order

    template = TEMPLATES.get(sample.template_id)
    if sample.question_type.endswith("-query") and template is not None:
        return canonical_order(sample.answer, template.options)
    return list(sample.answer)


def load_qa_samples(
    ecgqa_root: str | os.PathLike,
    split: str,
    *,
    source: str = "ptbxl",
    variant: str = "template",
    question_types: Sequence[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> list[QaSample]:
    """Read ECG-QA questions (``encoder.datasets.ecgqa.load_ecgqa``), filter by type, sample ``limit`` (seeded)."""
    from encoder.datasets.ecgqa import load_ecgqa

    ds = load_ecgqa(ecgqa_root, source=source, variant=variant, split=split)
    samples = [
        QaSample(
            ecg_ids=[int(e) for e in row["ecg_id"]],
            question=str(row["question"]),
            answer=[str(a) for a in row["answer"]],
            question_type=str(row.get("question_type", "")),
            template_id=int(row.get("template_id", -1)),
            attribute_type=str(row.get("attribute_type", "") or ""),
            attribute=[str(a) for a in row["attribute"]] if row.get("attribute") else None,
        )
        for row in ds
    ]
    if question_types:
        samples = [s for s in samples if s.question_type in set(question_types)]
    if not samples:
        raise DatasetError(f"No ECG-QA questions of types {question_types} in {ecgqa_root} ({split}).")
    if limit is not None and len(samples) > limit:
        keep = np.random.default_rng(seed).choice(len(samples), size=limit, replace=False)
        samples = [samples[i] for i in sorted(keep)]
    return samples


class QaDataset(torch.utils.data.Dataset):
    """Tokenised training examples; ``collate`` returns padded ids/labels + the feature rows in prompt order."""

    def __init__(
        self, samples: Sequence[QaSample], model: EcgLlm, store: FeatureStore, use_ecg: bool = True
    ) -> None:
        """``use_ecg=False``: question-only examples (no ECG tokens, no findings hint, no feature rows)."""
        self.samples = list(samples)
        rows = store.rows
        missing = {e for s in self.samples for e in s.ecg_ids if e not in rows}
        if missing:
            raise DatasetError(f"{len(missing)} ECG ids have no features (e.g. {sorted(missing)[:3]}).")
        self.rows = [[rows[e] for e in s.ecg_ids] if use_ecg else [] for s in self.samples]
        self.processor = model.processor
        f = store.features
        hints = model.prompts.hints([s.question for s in self.samples], self.rows, f.probs, f.aux)
        self.items: list[Encoded] = [
            self.processor.encode_train(s.question, answer_text(target_answer(s)), len(r), hints=h)
            for s, r, h in zip(self.samples, self.rows, hints, strict=True)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Encoded, list[int]]:
        return self.items[i], self.rows[i]

    def collate(self, batch: list[tuple[Encoded, list[int]]]) -> dict:
        out = self.processor.pad([b[0] for b in batch], side="right")
        out["rows"] = torch.tensor([r for b in batch for r in b[1]], dtype=torch.long)  # (M,) prompt order
        return out


def training_extras(
    samples: Sequence[QaSample],
    data_root: str | os.PathLike | None,
    split: str,
    *,
    describe: int = 0,
    paraphrase_fraction: float = 0.0,
    seed: int = 0,
) -> list[QaSample]:
    """Open questions added to a training set: ``describe`` "describe this ECG" samples of the split's records
    answered with their reports (``llm_finetune.vqa.describe``), and a ``paraphrase_fraction`` of ``samples``
    reworded with the training paraphrase set (``llm_finetune.vqa.paraphrase``; the held-out set is not used)."""
    from encoder.synth.questions import SPLIT_FOLDS
    from llm_finetune.vqa.describe import describe_samples, load_reports
    from llm_finetune.vqa.paraphrase import paraphrased

    extras: list[QaSample] = []
    if describe > 0:
        if data_root is None or split not in SPLIT_FOLDS:
            raise DatasetError(f"Describe samples need data_root and a split of {sorted(SPLIT_FOLDS)}.")
        reports = load_reports(data_root)
        if not reports:
            raise DatasetError(f"No record in {data_root} has a report; set describe_samples: 0.")
        extras += describe_samples(reports, SPLIT_FOLDS[split], "train", limit=describe, seed=seed)
    if paraphrase_fraction > 0:
        rng = np.random.default_rng([seed, 29])
        chosen = [s for s in samples if rng.random() < paraphrase_fraction]
        extras += paraphrased(chosen, "train", seed=seed)
    return extras
