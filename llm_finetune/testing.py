"""Tiny offline stage-2 setup for tests and smoke runs: PTB-XL-format records, ECG-QA-format questions,
a small random stage-1 encoder. (The signals are not realistic; use the synthetic cohort for learning runs.)"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from encoder.configuration import EcgEncoderConfig
from encoder.modeling import EcgEncoder

LABELS = ["NORM", "MI", "STTC", "CD", "HYP"]


def write_tiny_encoder(out: str | Path, seed: int = 0) -> Path:
    """A small random EcgEncoder (resnet10, narrow) with the five superclass labels, saved with safetensors."""
    import torch

    torch.manual_seed(seed)
    enc = EcgEncoder(
        EcgEncoderConfig(
            arch="resnet10", widths=[16, 16, 32, 32], embed_dim=32, label_names=LABELS, dropout=0.0
        )
    )
    enc.save_pretrained(out)
    return Path(out)


def write_tiny_qa(root: str | Path, num_records: int = 16, seed: int = 0) -> Path:
    """PTB-XL-format records (``encoder.datasets.testing``) + ECG-QA-format questions under ``<root>/ecgqa``."""
    from encoder.datasets.testing import write_tiny_ptbxl

    root = Path(root)
    write_tiny_ptbxl(root, num_records=num_records, seed=seed, rates=(100,))
    qa = root / "ecgqa" / "ptbxl"
    src = resources.files("encoder") / "resources" / "ecgqa" / "ptbxl"
    for name in ("answers.csv", "answers_for_each_template.csv"):
        with resources.as_file(src / name) as p:
            qa.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, qa / name)
    ids = list(range(1, num_records + 1))
    for split, chosen in (("train", ids[: num_records * 3 // 4]), ("valid", ids[num_records * 3 // 4 :])):
        samples = []
        for k, e in enumerate(chosen):
            yes = (e - 1) % 13 in (0, 1)  # NORM code sets of write_tiny_ptbxl
            samples.append(
                _sample(
                    2,
                    "single-verify",
                    "Does this ECG show symptoms of normal ECG?",
                    [e],
                    yes,
                    k,
                    ["normal ecg"],
                )
            )
            other = chosen[(k + 1) % len(chosen)]
            samples.append(
                _sample(
                    9,
                    "comparison_consecutive-verify",
                    "Is the second ECG the same as the first ECG?",
                    [e, other],
                    False,
                    k,
                )
            )
        folder = qa / "template" / split
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "0.json").write_text(json.dumps(samples))
    return root


def _sample(
    template: int, qtype: str, question: str, ecg_ids: list[int], yes: bool, k: int, attribute=None
) -> dict:
    return {
        "template_id": template,
        "question_id": template,
        "sample_id": k,
        "question_type": qtype,
        "attribute_type": "scp_code",
        "question": question,
        "answer": ["yes" if yes else "no"],
        "ecg_id": ecg_ids,
        "attribute": attribute,
    }
