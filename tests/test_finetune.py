"""Stage-2 training: end-to-end run, frozen encoder unchanged, SIGKILL + resume matches, NaN steps skipped."""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bridge.configuration import EcgLlmConfig
from bridge.modeling import EcgLlm
from bridge.projector import ProjectorConfig
from encoder.engine.checkpoints import latest_checkpoint
from encoder.engine.guard import TrainingError
from llm_finetune.data import QaDataset, load_qa_samples
from llm_finetune.features import compute_features, ptbxl_reader
from llm_finetune.testing import write_tiny_encoder, write_tiny_qa
from llm_finetune.train import FinetuneConfig, answer_objective, run_finetune


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage2")
    write_tiny_qa(root / "data")
    write_tiny_encoder(root / "encoder")
    return root


def _cfg(setup, out, **kw) -> FinetuneConfig:
    model = EcgLlmConfig(llm="packaged:tiny-random-llama", projector=ProjectorConfig(num_tokens=2), lora_r=4)
    base = dict(
        data_root=str(setup / "data"),
        encoder=str(setup / "encoder"),
        output_dir=str(out),
        model=model,
        max_steps=12,
        batch_size=4,
        checkpoint_every=4,
        lr=1e-3,
        projector_lr=1e-3,
        max_eval_samples=0,
        warmup_steps=2,
    )
    base.update(kw)
    return FinetuneConfig(**base)


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as f:
        return [r for r in csv.DictReader(f) if r["split"] == "train"]


def _losses(run: Path) -> list[float]:
    return [float(r["loss"]) for r in _rows(run)]


def test_run_finetune_end_to_end_keeps_encoder_frozen(setup, tmp_path):
    out = run_finetune(_cfg(setup, tmp_path / "run", max_eval_samples=6))
    original = load_file(setup / "encoder" / "model.safetensors")
    saved = load_file(out / "encoder" / "model.safetensors")
    assert original.keys() == saved.keys()
    assert all(torch.equal(original[k], saved[k]) for k in original)
    losses = _losses(tmp_path / "run")
    assert len(losses) == 12 and all(map(lambda x: x == x, losses))
    lrs = [float(r["lr"]) for r in _rows(tmp_path / "run")]
    assert lrs[0] < lrs[1] and lrs[-1] < lrs[2]  # warmup, then cosine decay
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "eval.json").is_file()
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "step_0000012"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["step"] == 12 and summary["num_processes"] == 1 and summary["skipped"] == 0
    model = EcgLlm.from_pretrained(out)
    assert model.label_names == ["NORM", "MI", "STTC", "CD", "HYP"]


def test_verdict_prior_shift_is_fitted_and_saved(setup, tmp_path):
    cfg = _cfg(setup, tmp_path / "run", max_steps=1)
    cfg.model = EcgLlmConfig(
        llm="packaged:tiny-random-llama",
        projector=ProjectorConfig(num_tokens=2),
        lora_r=4,
        findings_hint=True,
        findings_for_question=True,
        verdict_prior_shift=True,
    )
    model = EcgLlm.from_pretrained(run_finetune(cfg))
    shifts = model.config.verdict_logit_shift
    assert len(shifts) == len(model.label_names)
    norm = model.label_names.index("NORM")  # the tiny questions ask only "normal ECG?"
    assert shifts[norm] is not None and all(s is None for j, s in enumerate(shifts) if j != norm)
    assert cfg.model.verdict_logit_shift is None  # fitted into the model's copy, not the caller's config
    cfg.max_steps = 2
    run_finetune(cfg)  # the same config object again resumes its checkpoint
    assert len(_losses(tmp_path / "run")) == 2


def test_a_checkpoint_without_recorded_settings_resumes_with_a_warning(setup, tmp_path, caplog):
    import json

    run = tmp_path / "run"
    run_finetune(_cfg(setup, run, max_steps=4))
    state_path = latest_checkpoint(run / "checkpoints") / "trainer_state.json"
    state = json.loads(state_path.read_text())
    del state["settings"]  # as written before checkpoints recorded their settings
    state_path.write_text(json.dumps(state))
    with caplog.at_level("WARNING", logger="encoder.engine.settings"):
        run_finetune(_cfg(setup, run, max_steps=6, lr=2e-3))
    assert "before checkpoints recorded their settings" in caplog.text
    assert len(_losses(run)) == 6


def test_resume_settings_ignore_spelling_memory_savers_and_newer_options(setup, tmp_path, monkeypatch):
    from encoder.engine.settings import changed_settings as _changed
    from llm_finetune.train import run_settings

    monkeypatch.chdir(setup)
    a = run_settings(_cfg(setup, tmp_path / "a", data_root="data", encoder="./encoder"))
    b = _cfg(setup, tmp_path / "b", max_steps=99, checkpoint_every=1)
    b.model.gradient_checkpointing = True
    assert _changed(a, run_settings(b)) == []
    older = {
        k: v for k, v in a.items() if k != "question_type_weights"
    }  # a checkpoint from before the option
    older["model"] = {k: v for k, v in a["model"].items() if k != "asked_format"}
    assert _changed(older, run_settings(b)) == []
    b.model.lora_r = 8
    assert _changed(a, run_settings(b)) == ["model.lora_r: 4 -> 8"]


SCRIPT = textwrap.dedent(
    """
    import sys, time
    from bridge.configuration import EcgLlmConfig
    from bridge.projector import ProjectorConfig
    from llm_finetune import train
    from llm_finetune.train import FinetuneConfig, run_finetune

    slow = train.optimizer_step
    def step(*a, **k):  # slow the run down so the test can kill it mid-way
        time.sleep(0.3)
        return slow(*a, **k)
    train.optimizer_step = step
    data, enc, out = sys.argv[1:4]
    model = EcgLlmConfig(llm="packaged:tiny-random-llama", projector=ProjectorConfig(num_tokens=2), lora_r=4)
    run_finetune(FinetuneConfig(data_root=data, encoder=enc, output_dir=out, model=model, max_steps=12,
        batch_size=4, checkpoint_every=4, lr=1e-3, projector_lr=1e-3, max_eval_samples=0, warmup_steps=2))
    """
)


def test_sigkill_and_resume_matches_uninterrupted_run(setup, tmp_path):
    reference = tmp_path / "reference"
    run_finetune(_cfg(setup, reference))
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(setup / "data"), str(setup / "encoder"), str(run)], env=env
    )
    deadline = time.time() + 240
    while time.time() < deadline:
        if (run / "metrics.csv").is_file() and len(_losses(run)) >= 6:
            break
        assert proc.poll() is None, "training subprocess ended before it could be killed"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(_losses(run))
    assert 6 <= killed_at < 12
    ckpt = latest_checkpoint(run / "checkpoints")
    assert ckpt is not None and int(ckpt.name.split("_")[1]) <= killed_at
    (
        run / "checkpoints" / "step_0000099"
    ).mkdir()  # a half-written checkpoint (no COMPLETE marker) is ignored
    assert latest_checkpoint(run / "checkpoints") == ckpt
    run_finetune(_cfg(setup, run))
    assert _losses(run) == pytest.approx(_losses(reference), abs=1e-4)
    a = load_file(run / "model" / "adapter_model.safetensors")
    b = load_file(reference / "model" / "adapter_model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_resume_refuses_a_checkpoint_trained_with_other_settings(setup, tmp_path):
    from encoder.errors import CheckpointError

    run = tmp_path / "run"
    run_finetune(_cfg(setup, run, max_steps=4))
    changed = _cfg(setup, run, max_steps=8)
    changed.model.asked_format = "per_label"
    with pytest.raises(
        CheckpointError, match=r"model.asked_format: 'grouped' -> 'per_label'.*--resume false"
    ):
        run_finetune(changed)
    with pytest.raises(CheckpointError, match="lr: 0.001 -> 0.002"):
        run_finetune(_cfg(setup, run, max_steps=8, lr=2e-3))
    run_finetune(_cfg(setup, run, max_steps=8))  # a longer schedule may resume
    assert len(_losses(run)) == 8
    run_finetune(_cfg(setup, run, max_steps=4, lr=2e-3, resume=False))  # or start over in the same folder
    assert len(_losses(run)) == 4
    assert latest_checkpoint(run / "checkpoints").name == "step_0000004"  # the old run's step 8 is gone


def _step(model, opt, features, micro_batches, cfg):
    from functools import partial

    from accelerate import Accelerator

    from encoder.engine.core import optimizer_step

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    objective = partial(answer_objective, features=features)
    return optimizer_step(
        Accelerator(cpu=True), model, opt, sched, objective, micro_batches, cfg.max_grad_norm
    )


def test_nan_loss_skips_step_and_leaves_parameters_unchanged(setup, tmp_path):
    cfg = _cfg(setup, tmp_path / "nan")
    model = EcgLlm.build(cfg.model, cfg.encoder)
    samples = load_qa_samples(setup / "data" / "ecgqa", "train")[:4]
    store = compute_features(
        model, [e for s in samples for e in s.ecg_ids], ptbxl_reader(setup / "data", 100, 1000)
    )
    ds = QaDataset(samples, model, store)
    micro = [ds.collate([ds[i] for i in range(4)])]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    store.features.tokens[:] = float("nan")
    assert not _step(model, opt, store.features, micro, cfg).applied
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters() if p.requires_grad)
    store.features.tokens.normal_()
    assert _step(model, opt, store.features, micro, cfg).applied


def test_answer_loss_is_the_causal_lm_loss(setup, tmp_path):
    """The loss is computed from the logits as a token sum / token count (so several processes can share the
    count); on one process it equals the LLM's own mean answer-token loss."""
    from llm_finetune.train import answer_positions, answer_token_loss

    cfg = _cfg(setup, tmp_path / "loss")
    model = EcgLlm.build(cfg.model, cfg.encoder)
    samples = load_qa_samples(setup / "data" / "ecgqa", "train")[:4]
    store = compute_features(
        model, [e for s in samples for e in s.ecg_ids], ptbxl_reader(setup / "data", 100, 1000)
    )
    ds = QaDataset(samples, model, store)
    batch = ds.collate([ds[i] for i in range(4)])
    feats = store.features.index(batch["rows"])
    out = model(batch["input_ids"], batch["attention_mask"], features=feats, labels=batch["labels"])
    total, count = answer_token_loss(out.logits, batch["labels"])
    assert int(count) == int((batch["labels"][:, 1:] != -100).sum()) > 0
    torch.testing.assert_close(total / count, out.loss, rtol=1e-5, atol=1e-6)
    share, _ = answer_objective(model, batch, store.features)  # LM head only at the answer positions
    torch.testing.assert_close(share, out.loss, rtol=1e-5, atol=1e-6)
    assert 0 < answer_positions(batch["labels"]).numel() < batch["input_ids"].shape[1] - 1


def test_feature_cache_is_keyed_on_the_encoder_and_the_reader(setup, tmp_path):
    cfg = _cfg(setup, tmp_path / "cache")
    model = EcgLlm.build(cfg.model, cfg.encoder)
    ids = [1, 2, 3, 5]
    read = ptbxl_reader(setup / "data", 100, 1000)
    cache = tmp_path / "features.safetensors"
    first = compute_features(model, ids, read, cache_path=cache)
    direct = model.encode_ecgs(torch.from_numpy(np.stack([read(e) for e in ids])))
    for name in ("tokens", "summary", "probs"):  # the one encoder pass = what the model itself computes
        torch.testing.assert_close(getattr(first.features, name), getattr(direct, name))
    cache.write_bytes(cache.read_bytes())  # same content, new mtime: a hit must not rewrite it
    stamp = cache.stat().st_mtime_ns
    again = compute_features(model, ids, read, cache_path=cache)
    assert cache.stat().st_mtime_ns == stamp and torch.equal(again.features.tokens, first.features.tokens)
    with torch.no_grad():  # another encoder (e.g. a retrained stage 1 written to the same folder)
        model.encoder.projection.weight.add_(0.5)
    changed = compute_features(model, ids, read, cache_path=cache)
    assert not torch.allclose(changed.features.summary, first.features.summary)
    fresh = compute_features(model, ids, read)
    torch.testing.assert_close(changed.features.summary, fresh.features.summary)
    other_reader = compute_features(
        model, ids, ptbxl_reader(setup / "data", 100, 1000, "center"), cache_path=cache
    )
    assert not torch.allclose(other_reader.features.tokens, changed.features.tokens)


def test_nan_policy_stop_raises_clear_error(setup, tmp_path, monkeypatch):
    from encoder.engine.core import StepResult
    from llm_finetune import train

    monkeypatch.setattr(
        train, "optimizer_step", lambda *a, **k: StepResult(False, float("nan"), float("nan"))
    )
    with pytest.raises(TrainingError, match="NaN/inf"):
        run_finetune(_cfg(setup, tmp_path / "stop", nan_policy="stop"))


def test_question_type_weights_repeat_and_thin_out_types():
    from encoder.errors import ConfigError
    from llm_finetune.data import QaSample
    from llm_finetune.train import weight_by_question_type

    samples = [QaSample([i], "q", ["yes"], "single-verify") for i in range(200)]
    samples += [QaSample([i], "q", ["none"], "single-choose") for i in range(100)]
    out = weight_by_question_type(samples, {"single-choose": 2.0, "single-verify": 0.5}, seed=0)
    n_choose = sum(s.question_type == "single-choose" for s in out)
    n_verify = sum(s.question_type == "single-verify" for s in out)
    assert n_choose == 200  # every choose question twice
    assert (
        70 < n_verify < 130
        and len({s.ecg_ids[0] for s in out if s.question_type == "single-verify"}) == n_verify
    )
    assert (
        weight_by_question_type(samples, {"single-choose": 2.0, "single-verify": 0.5}, seed=0) == out
    )  # seeded
    assert weight_by_question_type(samples, None, seed=0) is samples
    with pytest.raises(ConfigError, match="single-query"):
        weight_by_question_type(samples, {"single-query": 2.0}, seed=0)
    with pytest.raises(ConfigError, match="number >= 0"):
        weight_by_question_type(samples, {"single-choose": -1}, seed=0)
    with pytest.raises(ConfigError, match="removed every"):
        weight_by_question_type(samples, {"single-choose": 0, "single-verify": 0}, seed=0)


def test_question_only_baseline_trains_without_ecg_tokens_or_hint(setup, tmp_path):
    cfg = _cfg(setup, tmp_path / "qonly", ecg_input="none", max_steps=4, max_eval_samples=6)
    model = EcgLlm.build(cfg.model, cfg.encoder)
    samples = load_qa_samples(setup / "data" / "ecgqa", "train", limit=8)
    ecgs = sorted({e for s in samples for e in s.ecg_ids})
    store = compute_features(model, ecgs, ptbxl_reader(setup / "data", 100, 1000))
    with_ecg = QaDataset(samples, model, store)
    question_only = QaDataset(samples, model, store, use_ecg=False)
    token = model.ecg_token_id
    assert all(token in with_ecg[i][0].input_ids for i in range(len(samples)))
    for i in range(len(samples)):
        item, rows = question_only[i]
        assert rows == [] and token not in item.input_ids and item.num_ecgs == 0
    assert question_only.collate([question_only[0], question_only[1]])["rows"].numel() == 0
    run_finetune(cfg)
    report = json.loads((tmp_path / "qonly" / "eval.json").read_text())
    assert report["split"] == "valid" and report["ecg_input"] == "none"
    assert "ecg_removed" not in report and "model" in report  # removing an ECG it never had is meaningless
    from encoder.exclusion import data_fingerprint, read_table

    seen = json.loads((tmp_path / "qonly" / "train_ecg_ids.json").read_text())
    assert seen["stage"] == 2 and seen["data_fingerprint"] == data_fingerprint(read_table(setup / "data"))
    assert seen["train_patients"]  # patients recorded too, for the patient-level leakage check


def test_group_by_length_batches_similar_prompts_together(setup, tmp_path, monkeypatch):
    widths: list[tuple[int, int]] = []  # (tokens in the padded batch, real tokens)
    collate = QaDataset.collate

    def recording(self, batch):
        out = collate(self, batch)
        widths.append((out["input_ids"].numel(), int(out["attention_mask"].sum())))
        return out

    monkeypatch.setattr(QaDataset, "collate", recording)
    ratios = {}
    for grouped in (False, True):
        widths.clear()
        run_finetune(_cfg(setup, tmp_path / f"g{grouped}", max_steps=8, group_by_length=grouped))
        assert len(widths) == 8
        ratios[grouped] = sum(r for _, r in widths) / sum(p for p, _ in widths)
    assert ratios[True] > ratios[False]
