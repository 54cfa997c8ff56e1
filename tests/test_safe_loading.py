"""Safe loading: a malicious pickle is refused (never executed), weights are safetensors, no remote code."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from encoder.configuration import EcgEncoderConfig
from encoder.errors import CheckpointError, EcgFormatError
from encoder.io import read_ecg
from encoder.modeling import EcgEncoder


class _Exploit:
    """Unpickling this would create ``marker`` (it calls os.system)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _malicious_pickle(path: Path, marker: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump({"state": _Exploit(marker)}, f)


@pytest.mark.parametrize("planted", ["optimizer.bin", "scheduler.bin", "random_states_0.pkl"])
def test_malicious_pickle_in_checkpoint_is_refused(tmp_path: Path, planted: str) -> None:
    from accelerate import Accelerator

    from encoder.engine.checkpoints import Checkpoints

    marker = tmp_path / "pwned"
    acc = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    acc.prepare(model, optimizer, scheduler)
    store = Checkpoints(tmp_path / "checkpoints", 2, acc)
    ckpt = store.save(1, {})
    assert (ckpt / "model.safetensors").is_file()  # weights are safetensors, never a pickle
    store.load(ckpt)  # the genuine checkpoint loads
    _malicious_pickle(ckpt / planted, marker)
    with pytest.raises(CheckpointError, match="cannot be loaded"):
        store.load(ckpt)
    assert not marker.exists(), "the pickle payload ran"


def test_pickled_npy_upload_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "record.npy"
    np.save(path, np.array([_Exploit(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(EcgFormatError, match="pickled"):
        read_ecg(path, fs=500)
    assert not marker.exists()


def test_encoder_saves_safetensors_only_and_ignores_a_planted_pickle(tmp_path: Path) -> None:
    enc = EcgEncoder(EcgEncoderConfig(widths=[8, 8, 8, 8], arch="resnet10", label_names=["A", "B"]))
    enc.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin")) and not list(tmp_path.glob("*.pt"))
    marker = tmp_path / "pwned"
    _malicious_pickle(tmp_path / "pytorch_model.bin", marker)  # planted next to the real weights
    again = EcgEncoder.from_pretrained(tmp_path)
    assert not marker.exists()
    for a, b in zip(enc.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_trust_remote_code_is_off_by_default() -> None:
    import inspect

    from bridge.configuration import EcgLlmConfig
    from bridge.llm import load_llm

    assert EcgLlmConfig().trust_remote_code is False
    assert inspect.signature(load_llm).parameters["trust_remote_code"].default is False
