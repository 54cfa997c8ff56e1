"""Two real processes on CPU (gloo), started with ``accelerate launch --config_file configs/accelerate/cpu_2proc.yaml``.

* the global-batch contrastive loss of 2 processes and its gradients equal one process's on the same global
  batch (``siglip``, ``jaccard_siglip``, ``clip``; both reductions), and a non-finite batch on ONE process skips
  the step on both;
* stage-1 and stage-2 smoke runs on 2 processes, killed (SIGKILL) after a checkpoint, resumed and finished, log
  the losses one process logs on the same global batches and leave one set of outputs.

This file is also the script each process runs for the loss check (``python tests/test_distributed.py loss OUT``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE_CONFIG = ROOT / "configs" / "accelerate" / "cpu_2proc.yaml"
LOSSES = ("siglip", "jaccard_siglip", "clip")
REDUCTIONS = ("positives", "batch")
GLOBAL_BATCH, WORLD = 8, 2


# --- launching ----------------------------------------------------------------------------------------------------


def _command(args: list[str]) -> list[str]:
    with socket.socket() as s:  # a free port: other runs of this suite may share the machine
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = [sys.executable, "-m", "accelerate.commands.launch"]
    return [*launcher, "--config_file", str(ACCELERATE_CONFIG), "--main_process_port", str(port), *args]


ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONPATH": str(ROOT),
}


TEARDOWN_ABORT = "terminate called without an active exception"
"""What a gloo process prints when it aborts while exiting (a C++ thread still joinable); seen rarely on this
2-core machine after the work and ``shutdown_process_group`` were done."""


def _launch(args: list[str], timeout: float = 240) -> None:
    """Run a 2-process job; one rerun (with a fresh port) only when a process aborted in gloo's teardown."""
    for attempt in range(2):
        done = subprocess.run(
            _command(args), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode == 0 or TEARDOWN_ABORT not in done.stderr or attempt:
            break
    assert done.returncode == 0, done.stderr[-4000:]


def _launch_and_kill(args: list[str], checkpoints: Path, timeout: float = 240) -> int:
    """Start a 2-process run, SIGKILL all of it as soon as its first checkpoint is complete; returns that step."""
    from encoder.engine.checkpoints import latest_checkpoint

    proc = subprocess.Popen(
        _command(args),
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline, killed_at = time.time() + timeout, None
    try:
        while time.time() < deadline and proc.poll() is None:
            latest = latest_checkpoint(checkpoints)
            if latest is not None:
                os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both training processes
                killed_at = int(latest.name.split("_")[1])
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert killed_at is not None, (
        f"the run ended before it could be killed: {proc.stderr.read().decode()[-3000:]}"
    )
    return killed_at


def _train_losses(run: Path) -> dict[int, float]:
    with open(run / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    steps = [int(r["step"]) for r in rows]
    assert len(steps) == len(set(steps)), "a step was logged twice"
    return {int(r["step"]): float(r["loss"]) for r in rows}


def _val_metrics(run: Path) -> dict[int, float]:
    """Validation macro AUROC per step: scored over the whole validation split however many processes ran."""
    with open(run / "metrics.csv") as f:
        return {int(r["step"]): float(r["val_macro_auroc"]) for r in csv.DictReader(f) if r["split"] == "val"}


def _same_outputs(one: Path, two: Path) -> dict:
    """The 2-process run left exactly the files the 1-process run left; returns its summary."""
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert not list((two / "checkpoints").glob(".tmp*"))
    summary = json.loads((two / "summary.json").read_text())
    assert (
        summary["num_processes"] == 2 and json.loads((one / "summary.json").read_text())["num_processes"] == 1
    )
    return summary


# --- the global-batch loss ----------------------------------------------------------------------------------------


def _global_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ECG / text embeddings (B, D) and multi-hot labels (B, L), the same on every process; two records have no
    label (one per process: the empty-set guard must find its own column in the other block too)."""
    g = torch.Generator().manual_seed(0)
    ecg = F.normalize(torch.randn(GLOBAL_BATCH, 16, generator=g), dim=-1)
    text = F.normalize(torch.randn(GLOBAL_BATCH, 16, generator=g), dim=-1)
    labels = (torch.rand(GLOBAL_BATCH, 5, generator=g) < 0.4).float()
    labels[2] = 0
    labels[6] = 0
    return ecg, text, labels


def _leaves() -> list[torch.Tensor]:
    ecg, text, _ = _global_batch()
    scale, bias = torch.tensor(math.log(10.0)), torch.tensor(-10.0)
    return [x.clone().requires_grad_(True) for x in (ecg, text, scale, bias)]


def _loss_worker(out: Path) -> None:
    """Each process: its block of the global batch -> loss share + gradients; process 0 writes what DDP would
    see (loss = mean of the shares, gradients = mean over processes) to ``out``."""
    from accelerate import Accelerator

    from encoder.engine.distributed import shutdown_process_group
    from encoder.loss import global_contrastive_loss

    acc = Accelerator(cpu=True)
    rank, world = acc.process_index, acc.num_processes
    rows = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
    labels = _global_batch()[2]
    results: dict = {"num_processes": world, "skip_agreed": _skip_is_agreed(acc)}
    for name in LOSSES:
        for reduction in REDUCTIONS:
            ecg, text, scale, bias = _leaves()
            e, t = ecg[rows].detach().requires_grad_(True), text[rows].detach().requires_grad_(True)
            share = global_contrastive_loss(name, e, t, scale, bias, labels[rows], "soft", reduction)
            share.backward()
            loss = acc.reduce(share.detach(), "mean")
            grads = [acc.gather(g / world) for g in (e.grad, t.grad)]  # DDP: per-row gradient / world
            grads += [acc.reduce(p.grad, "mean") for p in (scale, bias)]  # shared parameters: DDP's mean
            results[f"{name}/{reduction}"] = {"loss": float(loss), "grads": [g.tolist() for g in grads]}
    if acc.is_main_process:
        out.write_text(json.dumps(results))
    shutdown_process_group()


def test_optimizer_step_without_micro_batches_is_a_config_error() -> None:
    """Regression (found by mypy): no micro-batches stepped the optimizer, then failed on ``None.tolist()``."""
    from accelerate import Accelerator

    from encoder.engine.core import optimizer_step
    from encoder.errors import ConfigError

    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    with pytest.raises(ConfigError, match="no micro-batches"):
        optimizer_step(Accelerator(cpu=True), model, opt, sched, lambda m, b: (m(b).sum(), {}), [], 1.0)


def _skip_is_agreed(acc) -> bool:
    """A NaN batch on process 1 only: both processes skip the step and keep their (identical) parameters."""
    from encoder.engine.core import optimizer_step

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model, opt, sched = acc.prepare(model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0))
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.ones(2, 4) * (float("nan") if acc.process_index == 1 else 1.0)

    def objective(m, batch):
        return m(batch).pow(2).mean(), {}

    skipped = optimizer_step(acc, model, opt, sched, objective, [x], 1.0)
    kept = all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    applied = optimizer_step(acc, model, opt, sched, objective, [torch.ones(2, 4)], 1.0)
    moved = not all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    return bool(not skipped.applied and kept and applied.applied and moved)


@pytest.fixture(scope="module")
def two_process_losses(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("loss") / "results.json"
    _launch([str(Path(__file__)), "loss", str(out)])
    return json.loads(out.read_text())


def test_the_launch_config_starts_two_processes(two_process_losses: dict) -> None:
    assert two_process_losses["num_processes"] == 2


def test_a_non_finite_step_on_one_process_is_skipped_on_both(two_process_losses: dict) -> None:
    assert two_process_losses["skip_agreed"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", LOSSES)
def test_two_process_loss_and_gradients_equal_one_process(
    two_process_losses: dict, name: str, reduction: str
) -> None:
    from encoder.loss import contrastive_loss, pair_logits

    ecg, text, scale, bias = _leaves()
    loss = contrastive_loss(name, pair_logits(ecg, text, scale, bias), _global_batch()[2], "soft", reduction)
    loss.backward()
    got = two_process_losses[f"{name}/{reduction}"]
    assert got["loss"] == pytest.approx(float(loss), rel=1e-5, abs=1e-6)
    for mine, theirs in zip((ecg, text, scale, bias), got["grads"], strict=True):
        torch.testing.assert_close(torch.tensor(theirs), mine.grad, rtol=1e-5, atol=1e-6)
    assert ecg.grad.abs().sum() > 0 and text.grad.abs().sum() > 0


# --- stage 1 ------------------------------------------------------------------------------------------------------


def test_stage1_two_processes_killed_and_resumed_match_one_process(tmp_path: Path) -> None:
    from encoder.config_io import save_resolved_config
    from encoder.datasets.testing import write_tiny_ptbxl
    from encoder.modeling import EcgEncoder
    from encoder.text import TextTowerConfig
    from encoder.train import PretrainConfig, run_pretrain

    data = write_tiny_ptbxl(tmp_path / "ptbxl", num_records=40, rates=(100,))
    cfg = PretrainConfig(
        data_dir=str(data), cache_dir=str(tmp_path / "cache"), arch="resnet10", widths=[8, 16, 16, 16],
        embed_dim=16, epochs=8, batch_size=GLOBAL_BATCH, crop_seconds=2.5, warmup_steps=2,
        checkpoint_every=4, eval_every_epochs=4, log_every=1, num_threads=1, cpu=True, progress=False,
        text=TextTowerConfig(cache_dir=str(tmp_path / "text_cache")),
    )  # fmt: skip
    one = run_pretrain(replace(cfg, out_dir=str(tmp_path / "one")))
    two = tmp_path / "two"
    config = save_resolved_config(replace(cfg, out_dir=str(two)), tmp_path, "pretrain_two.yaml")
    args = ["-m", "encoder.train", "--config", str(config)]
    killed_at = _launch_and_kill(args, two / "checkpoints")
    assert not (two / "summary.json").exists() and not (two / "encoder").exists()  # it never finished
    _launch([*args, "--resume", "true"])
    ref, got = _train_losses(one), _train_losses(two)
    assert sorted(got) == sorted(ref) and killed_at < max(ref)
    for step in ref:
        assert got[step] == pytest.approx(ref[step], rel=1e-4, abs=1e-5), step
    summary = _same_outputs(one, two)
    assert summary["step"] == max(ref) and summary["best_step"] > 0
    val_one, val_two = _val_metrics(one), _val_metrics(two)
    assert sorted(val_two) == sorted(val_one) and len(val_one) >= 2
    for step in val_one:  # the same validation content, not one rank's shard
        assert val_two[step] == pytest.approx(val_one[step], abs=1e-3), step
    assert summary["best_step"] == json.loads((one / "summary.json").read_text())["best_step"]
    a, b = (EcgEncoder.from_pretrained(r / "encoder").state_dict() for r in (one, two))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-4)


# --- stage 2 ------------------------------------------------------------------------------------------------------


def test_stage2_two_processes_killed_and_resumed_match_one_process(tmp_path: Path) -> None:
    from bridge.configuration import EcgLlmConfig
    from bridge.projector import ProjectorConfig
    from encoder.config_io import save_resolved_config
    from llm_finetune.testing import write_tiny_encoder, write_tiny_qa
    from llm_finetune.train import FinetuneConfig, run_finetune

    write_tiny_qa(tmp_path / "data")
    write_tiny_encoder(tmp_path / "encoder")
    model = EcgLlmConfig(
        llm="packaged:tiny-random-llama", projector=ProjectorConfig(num_tokens=2), lora_r=4, lora_dropout=0.0
    )
    cfg = FinetuneConfig(
        data_root=str(tmp_path / "data"), encoder=str(tmp_path / "encoder"), model=model, max_steps=40,
        batch_size=4, checkpoint_every=4, lr=1e-3, projector_lr=1e-3, warmup_steps=2, max_eval_samples=4,
        progress=False,
    )  # fmt: skip
    one = run_finetune(replace(cfg, output_dir=str(tmp_path / "one"))).parent
    two = tmp_path / "two"
    config = save_resolved_config(replace(cfg, output_dir=str(two)), tmp_path, "finetune_two.yaml")
    args = ["-m", "llm_finetune.train", "--config", str(config)]
    killed_at = _launch_and_kill(args, two / "checkpoints")
    assert not (two / "summary.json").exists() and not (two / "model").exists()  # it never finished
    _launch([*args, "--resume", "true"])
    ref, got = _train_losses(one), _train_losses(two)
    assert sorted(got) == sorted(ref) == list(range(1, 41)) and killed_at < 40
    for step in ref:
        assert got[step] == pytest.approx(ref[step], rel=1e-4, abs=1e-5), step
    assert _same_outputs(one, two)["step"] == 40
    held_out_one, held_out_two = (json.loads((r / "eval.json").read_text()) for r in (one, two))
    assert held_out_two["n"] == 4  # scored once, on the main process, over the whole held-out set
    assert {k: v for k, v in held_out_two.items() if k != "seconds"} == {
        k: v for k, v in held_out_one.items() if k != "seconds"
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["loss"]:
        _loss_worker(Path(sys.argv[2]))
