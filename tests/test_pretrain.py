"""Stage-1 training: smoke run outputs, crash safety (SIGKILL + resume), partial checkpoints, NaN steps."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from encoder.clip_model import EcgClipModel
from encoder.configuration import EcgEncoderConfig
from encoder.datasets.testing import write_tiny_ptbxl
from encoder.engine.checkpoints import Checkpoints, latest_checkpoint
from encoder.engine.core import optimizer_step
from encoder.engine.guard import NonFiniteGuard, TrainingError
from encoder.errors import ConfigError
from encoder.modeling import EcgEncoder
from encoder.text import TextTowerConfig
from encoder.train import PretrainConfig, build_optimizer, pretrain_objective, run_pretrain

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_ptbxl(tmp_path_factory.mktemp("ptbxl"), num_records=40, rates=(100,))


def tiny_config(data: Path, out: Path, **over) -> PretrainConfig:
    cfg = PretrainConfig(
        data_dir=str(data),
        out_dir=str(out),
        cache_dir=str(out.parent / "cache"),
        arch="resnet10",
        widths=[8, 16, 16, 16],
        embed_dim=16,
        epochs=2,
        batch_size=8,
        crop_seconds=2.5,
        warmup_steps=2,
        checkpoint_every=4,
        log_every=1,
        num_threads=1,
        progress=False,
        text=TextTowerConfig(cache_dir=str(out.parent / "text_cache")),
    )
    for k, v in over.items():
        setattr(cfg, k, v)
    return cfg


def _train_losses(run: Path) -> dict[int, float]:
    with open(run / "metrics.csv") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f) if r["split"] == "train"}


def test_smoke_run_writes_encoder_clip_model_and_logs(tiny_data: Path, tmp_path: Path) -> None:
    run = run_pretrain(
        tiny_config(tiny_data, tmp_path / "run", eval_seconds=5.0, input_normalization="center")
    )
    enc = EcgEncoder.from_pretrained(run / "encoder")
    assert enc.config.input_normalization == "center"  # every inference path reads it from here
    assert enc.config.label_names == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert enc.config.label_task == "superdiagnostic"
    assert len(enc.config.label_thresholds) == 5 and len(enc.config.label_temperature) == 5
    assert enc.config.input_seconds == 5.0 and enc.config.sampling_rate == 100  # eval window, not the crop
    clip = EcgClipModel.from_pretrained(run / "clip_model")
    assert clip.label_text_features.shape == (5, 384) and len(clip.label_texts) == 5
    zs = clip.zero_shot_logits(torch.randn(3, 12, 250))
    assert zs.shape == (3, 5) and torch.isfinite(zs).all()
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
    assert any((run / "tensorboard").iterdir())
    losses = _train_losses(run)
    total = max(losses)
    assert total >= 4 and sorted(losses) == list(range(1, total + 1))  # every step logged once
    assert all(v == v for v in losses.values())  # no NaN
    assert latest_checkpoint(run / "checkpoints").name == f"step_{total:07d}"
    seen = json.loads((run / "train_ecg_ids.json").read_text())  # for the VQA leakage check
    assert seen["stage"] == 1 and seen["train"] and seen["val"] and not set(seen["train"]) & set(seen["val"])


def _checkpoints(root: Path, keep: int) -> Checkpoints:
    """Checkpoints of a tiny prepared model, optimizer and scheduler."""
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    acc.prepare(model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0))
    return Checkpoints(root, keep, acc)


def test_half_written_checkpoint_is_ignored(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    store = _checkpoints(root, keep=3)
    store.save(5, {"best_auroc": 0.5})
    # A crash mid-write leaves a hidden temp dir, or a step dir without its completion marker / with a bad one.
    (root / ".tmp_step_0000009").mkdir()
    (root / ".tmp_step_0000009" / "model.safetensors").write_bytes(b"partial")
    partial = root / "step_0000010"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"\x00" * 10)
    corrupt = root / "step_0000011"
    store.save(11, {})
    (corrupt / "trainer_state.json").write_text("{half")
    assert latest_checkpoint(root) == root / "step_0000005" == store.latest()
    assert json.loads((root / "step_0000005" / "trainer_state.json").read_text())["step"] == 5
    assert store.load(root / "step_0000005")["best_auroc"] == 0.5


def test_keep_checkpoints_prunes_old_ones(tmp_path: Path) -> None:
    store = _checkpoints(tmp_path, keep=2)
    for s in (1, 2, 3):
        store.save(s, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_0000002", "step_0000003"]


def _tiny_clip() -> EcgClipModel:
    torch.manual_seed(0)
    enc = EcgEncoder(
        EcgEncoderConfig(arch="resnet10", widths=[8, 8, 8, 8], embed_dim=8, label_names=["A", "B"])
    )
    return EcgClipModel(enc, text_dim=6)


def _step(model, opt, cfg, batch, text_features):
    from functools import partial

    from accelerate import Accelerator

    objective = partial(
        pretrain_objective, cfg=cfg, text=lambda index, device: {"text_features": text_features}
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    return optimizer_step(Accelerator(cpu=True), model, opt, sched, objective, [batch], cfg.grad_clip)


def test_nan_loss_skips_step_and_keeps_parameters(tmp_path: Path) -> None:
    model = _tiny_clip()
    model.train()
    cfg = PretrainConfig(loss="jaccard_siglip", classifier_weight=1.0)
    opt = build_optimizer(model, cfg)
    batch = {
        "ecg": torch.randn(4, 12, 200),
        "labels": torch.tensor([[1.0, 0], [0, 1], [1, 1], [0, 0]]),
        "index": torch.arange(4),
    }
    assert _step(model, opt, cfg, batch, torch.randn(4, 6)).applied  # one real step first (optimizer state)
    params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt_state = {k: v["exp_avg"].clone() for k, v in enumerate(opt.state.values())}
    bad = dict(batch, ecg=batch["ecg"].clone())
    bad["ecg"][1, 3, 50] = float("nan")
    result = _step(model, opt, cfg, bad, torch.randn(4, 6))
    assert not result.applied and result.loss != result.loss  # NaN
    for k, v in model.state_dict().items():  # parameters AND BatchNorm statistics unchanged
        assert torch.equal(v, params[k]), k
    for k, v in enumerate(opt.state.values()):
        assert torch.equal(v["exp_avg"], opt_state[k])
    assert _step(model, opt, cfg, batch, torch.randn(4, 6)).applied


def test_repeated_nan_steps_stop_with_clear_message() -> None:
    guard = NonFiniteGuard(max_bad_steps=3)
    guard.record(False, 1)
    guard.record(True, 2)  # a good step resets the count
    guard.record(False, 3)
    guard.record(False, 4)
    with pytest.raises(TrainingError, match="NaN/inf for 3 consecutive steps"):
        guard.record(False, 5)


def test_nan_run_end_to_end_stops(tiny_data: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_data, tmp_path / "run", init_logit_bias=float("nan"), max_bad_steps=2, epochs=3)
    # a NaN logit bias makes every loss NaN: each step is skipped, and the run stops after 2 in a row
    with pytest.raises(TrainingError, match="2 consecutive steps"):
        run_pretrain(cfg)
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    assert [r["skipped"] for r in rows] == ["1", "1"]


def test_bad_config_raises_config_error(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        run_pretrain(tiny_config(tiny_data, tmp_path / "r", loss="nope"))
    with pytest.raises(ConfigError):
        run_pretrain(tiny_config(tiny_data, tmp_path / "r", crop_seconds=30.0))
    with pytest.raises(ConfigError, match="input_normalization"):
        run_pretrain(tiny_config(tiny_data, tmp_path / "r", input_normalization="minmax"))


def test_dataloader_workers_replay_the_same_batches(tiny_data: Path, tmp_path: Path) -> None:
    """Batches read ahead by worker processes (deterministic batch sampler) give the in-process run's losses."""
    inline = _train_losses(run_pretrain(tiny_config(tiny_data, tmp_path / "inline", epochs=1)))
    workers = _train_losses(
        run_pretrain(tiny_config(tiny_data, tmp_path / "workers", epochs=1, num_workers=2))
    )
    assert inline == workers and len(inline) >= 3


def test_resume_refuses_a_checkpoint_trained_with_other_settings(tiny_data: Path, tmp_path: Path) -> None:
    from encoder.errors import CheckpointError

    run = tmp_path / "run"
    run_pretrain(tiny_config(tiny_data, run, epochs=1))
    per_epoch = max(_train_losses(run))
    with pytest.raises(CheckpointError, match=r"lr: 0.001 -> 0.002.*--resume false"):
        run_pretrain(tiny_config(tiny_data, run, epochs=2, resume=True, lr=2e-3))
    assert "lr: 0.001" in (run / "config.yaml").read_text()  # refused before anything was written
    run_pretrain(tiny_config(tiny_data, run, epochs=2, resume=True, log_every=2))  # longer run, other logging
    resumed = [s for s in range(per_epoch + 1, 2 * per_epoch + 1) if s % 2 == 0 or s == 2 * per_epoch]
    assert sorted(_train_losses(run)) == list(range(1, per_epoch + 1)) + resumed
    run_pretrain(
        tiny_config(tiny_data, run, epochs=1, lr=2e-3)
    )  # resume false: start over in the same folder
    assert latest_checkpoint(run / "checkpoints").name == f"step_{per_epoch:07d}"
    assert len(list((run / "checkpoints").iterdir())) == 1  # the older run's checkpoints are gone


KILL_SCRIPT = """
import json, sys
from encoder.train import PretrainConfig, run_pretrain
from encoder.text import TextTowerConfig
d = json.loads(sys.argv[1])
d["text"] = TextTowerConfig(**d["text"])
run_pretrain(PretrainConfig(**d))
"""


def _cfg_json(cfg: PretrainConfig) -> str:
    return json.dumps(asdict(cfg))


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tiny_data: Path, tmp_path: Path) -> None:
    """Launch training in a subprocess, SIGKILL it mid-run, resume, and compare the loss curve with a clean run."""
    over = dict(epochs=60, checkpoint_every=16, keep_checkpoints=2, eval_every_epochs=20)
    ref = run_pretrain(tiny_config(tiny_data, tmp_path / "ref", **over))
    ref_losses = _train_losses(ref)
    total = max(ref_losses)

    cfg = tiny_config(tiny_data, tmp_path / "killed", **over)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, _cfg_json(cfg)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 120
    killed_at = None
    try:
        while time.time() < deadline and proc.poll() is None:
            latest = latest_checkpoint(ckpts)
            if latest is not None and int(latest.name.split("_")[1]) >= 32:
                proc.send_signal(signal.SIGKILL)
                killed_at = int(latest.name.split("_")[1])
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert killed_at is not None, (
        f"training ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    )
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "clip_model").exists()  # the killed run never finished
    resumed_from = int(latest_checkpoint(ckpts).name.split("_")[1])
    assert resumed_from < total

    run_pretrain(tiny_config(tiny_data, tmp_path / "killed", resume=True, **over))
    got = _train_losses(tmp_path / "killed")
    assert sorted(got) == sorted(ref_losses)  # no duplicated or missing steps in the log
    for step in sorted(ref_losses):
        assert got[step] == pytest.approx(ref_losses[step], rel=1e-5, abs=1e-6), step
    a = EcgEncoder.from_pretrained(ref / "encoder").state_dict()
    b = EcgEncoder.from_pretrained(tmp_path / "killed" / "encoder").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
