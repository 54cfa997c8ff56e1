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


def test_malicious_optimizer_pickle_in_checkpoint_is_refused(tmp_path: Path) -> None:
    from encoder.train import load_checkpoint

    marker = tmp_path / "pwned"
    ckpt = tmp_path / "step_0000001"
    ckpt.mkdir()
    model = torch.nn.Linear(2, 2)
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(ckpt / "model.safetensors"))
    _malicious_pickle(ckpt / "optimizer.pt", marker)
    _malicious_pickle(ckpt / "scheduler.pt", marker)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    with pytest.raises(CheckpointError, match="cannot be loaded"):
        load_checkpoint(ckpt, model, optimizer, scheduler)
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
