"""Stage 1's multi-task aux head: targets from EcgAttributes, masked losses, learning, save/reload."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from encoder.configuration import EcgEncoderConfig
from encoder.ecgqa.attributes import LEADS, EcgAttributes
from encoder.errors import ConfigError
from encoder.modeling import EcgEncoder
from encoder.multitask import (
    AUX_TASKS,
    AuxHead,
    aux_loss,
    build_targets,
    decode,
    fit_thresholds,
    ridge_refit,
    task_loss,
    task_metrics,
)

ALL = list(AUX_TASKS)
V1 = tuple(i == LEADS.index("V1") for i in range(12))


def _attrs() -> list[EcgAttributes]:
    full = EcgAttributes(
        noise={"baseline drift": V1},
        extra_systoles=frozenset({"ventricular extrasystoles"}),
        heart_axis="left axis deviation",
        infarction_stage="old stage of myocardial infarction",
        form_leads={"NDT": V1},
        numeric_ms={"qrs duration": (80.0, 130.0), "pr interval": (math.nan, 150.0)},
        available=frozenset({"noise", "extra_systole", "heart_axis", "stage_of_infarction", "numeric_feature",
                             "form_leads", "pacemaker"}),
    )  # fmt: skip
    return [full, EcgAttributes()]  # the second record knows nothing


def test_targets_and_masks_follow_available() -> None:
    t = build_targets(_attrs(), ALL)
    noise, mask = t["noise"]
    assert noise.shape == (2, 60) and mask[0].all() and not mask[1].any()
    assert (
        noise[0, LEADS.index("V1")] == 1 and noise[0, 48 + LEADS.index("V1")] == 1
    )  # type row and any-noise
    assert t["heart_axis"][0][0].tolist() == [0, 1, 0, 0]
    assert t["stage_of_infarction"][0][0].argmax() == 3
    form_mask = t["form_leads"][1][0].reshape(13, 12)
    assert form_mask[0].all() and not form_mask[1:].any()  # only NDT, which the record has
    num_mask = t["numeric_feature"][1][0].reshape(6, 2)
    assert num_mask[3].tolist() == [1, 1] and num_mask[2].tolist() == [0, 1]  # qrs both; pr max only
    with pytest.raises(ConfigError):
        build_targets(_attrs(), ["nonsense"])


@pytest.mark.parametrize("name", ALL)
def test_masked_entries_get_no_gradient(name: str) -> None:
    target, mask = build_targets(_attrs(), [name])[name]
    logits = torch.randn(target.shape, requires_grad=True)
    task_loss(name, logits, target, mask).backward()
    grad = logits.grad
    assert grad[mask == 0].abs().sum() == 0
    if mask.any():
        assert grad[mask > 0].abs().sum() > 0
    every_masked = task_loss(name, logits, target, torch.zeros_like(mask))
    assert float(every_masked.detach()) == 0.0


def test_head_learns_a_separable_toy_task() -> None:
    torch.manual_seed(0)
    x = torch.randn(200, 8)
    axis = ["normal heart axis", "left axis deviation"]
    attrs = [
        EcgAttributes(heart_axis=axis[int(v > 0)], extra_systoles=frozenset({"extrasystoles"} if w > 0 else ()),
                      available=frozenset({"heart_axis", "extra_systole"}))
        for v, w in zip(x[:, 0].tolist(), x[:, 1].tolist(), strict=True)
    ]  # fmt: skip
    tasks = ["heart_axis", "extra_systole"]
    targets = build_targets(attrs, tasks)
    head = AuxHead(8, tasks)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        aux_loss(head(x), targets)[0].backward()
        opt.step()
    with torch.no_grad():
        out = head(x)
    probs = {n: torch.softmax(v, -1) if n == "heart_axis" else torch.sigmoid(v) for n, v in out.items()}
    acc = task_metrics("heart_axis", probs["heart_axis"].numpy(), *(t.numpy() for t in targets["heart_axis"]))
    auc = task_metrics(
        "extra_systole", probs["extra_systole"].numpy(), *(t.numpy() for t in targets["extra_systole"])
    )
    assert acc["accuracy"] > 0.95 and auc["macro_auroc"] > 0.95


def _encoder(**kw) -> EcgEncoder:
    cfg = dict(widths=[8, 8, 8, 8], embed_dim=16, label_names=["SR", "AFIB"], **kw)
    return EcgEncoder(EcgEncoderConfig(**cfg)).eval()


def test_save_reload_round_trip_keeps_aux_outputs(tmp_path: Path) -> None:
    model = _encoder(aux_tasks=ALL, aux_task_weights={"noise": 0.5}, aux_thresholds={"pacemaker": [0.3]})
    ecg = torch.randn(2, 12, 1000)
    before = model.predict_aux(ecg)
    model.save_pretrained(tmp_path)
    again = EcgEncoder.from_pretrained(tmp_path).eval()
    after = again.predict_aux(ecg)
    assert again.config.aux_thresholds == {"pacemaker": [0.3]} and again.config.aux_task_weights == {
        "noise": 0.5
    }
    for name in ALL:
        torch.testing.assert_close(before[name], after[name])


def test_an_encoder_saved_without_aux_heads_still_loads(tmp_path: Path) -> None:
    old = _encoder()
    old.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    for key in ("aux_tasks", "aux_task_weights", "aux_thresholds"):
        cfg.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    ecg = torch.randn(1, 12, 1000)
    loaded = EcgEncoder.from_pretrained(tmp_path).eval()
    assert loaded.aux_head is None and loaded(ecg).aux_logits is None
    torch.testing.assert_close(loaded(ecg).logits, old(ecg).logits)
    with pytest.raises(ConfigError):
        loaded.predict_aux(ecg)


def test_thresholds_and_decode_give_attributes_back() -> None:
    t = build_targets(_attrs()[:1], ALL)
    probs = {n: v[0].numpy() * 0.9 + 0.05 for n, (v, _) in t.items()}
    probs["numeric_feature"] = t["numeric_feature"][0][0].numpy()
    got = decode(probs)
    want = _attrs()[0]
    assert got.noise["baseline drift"] == V1 and got.heart_axis == want.heart_axis
    assert got.infarction_stage == want.infarction_stage and got.extra_systoles == want.extra_systoles
    assert got.numeric_ms["qrs duration"] == pytest.approx((80.0, 130.0))
    y = np.array([[0.0], [0.0], [1.0], [1.0]])
    assert 0.3 < fit_thresholds(np.array([[0.1], [0.3], [0.6], [0.9]]), y, np.ones_like(y))[0] <= 0.6


def _write_attribute_column(data: Path) -> None:
    """Give a tiny PTB-XL table an ``ecgqa_attributes`` column (what the synthetic cohort writes)."""
    import pandas as pd

    table_path = data / "ptbxl_database.csv"
    table = pd.read_csv(table_path)
    rng = np.random.default_rng(0)
    axes = ["normal heart axis", "left axis deviation"]
    table["ecgqa_attributes"] = [
        EcgAttributes(
            heart_axis=axes[int(rng.integers(2))],
            numeric_ms={"qrs duration": (float(rng.uniform(60, 140)), float(rng.uniform(60, 140)))},
            available=frozenset({"heart_axis", "numeric_feature", "noise"}),
        ).to_json()
        for _ in range(len(table))
    ]
    table.to_csv(table_path, index=False)


def test_pretraining_with_aux_tasks_calibrates_and_reports(tmp_path: Path) -> None:
    from encoder.datasets.testing import write_tiny_ptbxl
    from encoder.train import run_pretrain
    from tests.test_pretrain import tiny_config

    data = write_tiny_ptbxl(tmp_path / "ptbxl", num_records=40, rates=(100,))
    _write_attribute_column(data)
    tasks = ["noise", "heart_axis", "numeric_feature"]
    run = run_pretrain(tiny_config(data, tmp_path / "run", epochs=1, aux_tasks=tasks))
    enc = EcgEncoder.from_pretrained(run / "encoder")
    assert enc.config.aux_tasks == tasks and enc.aux_head is not None
    assert set(enc.config.aux_thresholds) == {"noise"} and len(enc.config.aux_thresholds["noise"]) == 60
    report = json.loads((run / "aux_metrics.json").read_text())
    assert 0 <= report["heart_axis"]["accuracy"] <= 1 and report["numeric_feature"]["mae_ms"] > 0
    assert 0 <= report["numeric_feature"]["range_class_accuracy"] <= 1
    refit = report["numeric_feature"]["refit"]  # the ridge refit of the numeric head, penalty chosen on val
    train_ids = json.loads((run / "train_ecg_ids.json").read_text())["train"]
    assert refit["chosen_alpha"] in (0.01, 0.1, 1.0, 10.0, 100.0) and refit["train_rows"] == len(train_ids)
    assert set(refit["val_mae_ms_per_alpha"]) == {"0.01", "0.1", "1.0", "10.0", "100.0"}
    assert math.isnan(report["noise"]["macro_auroc"])  # no noisy lead anywhere: nothing to score
    import csv

    with open(run / "metrics.csv") as f:
        assert all(float(r["aux"]) > 0 for r in csv.DictReader(f) if r["split"] == "train")


def _linear_problem(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8))
    true_w = np.arange(24, dtype=float).reshape(3, 8) / 10  # (K=3, D=8)
    y = x @ true_w.T + 0.5 + rng.normal(scale=0.01, size=(n, 3))
    mask = np.ones_like(y)
    mask[::3, 1] = 0
    y[::3, 1] = 1e6  # unmeasured entries carry garbage: the fit must ignore them
    return x, y, mask


def _masked_mae(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    return float(np.abs(pred - target)[mask > 0].mean())


def test_ridge_refit_replaces_a_worse_head_with_the_alpha_chosen_on_val() -> None:
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 3)
    out = ridge_refit(head, _linear_problem(0, 200), _linear_problem(1, 100), _masked_mae)
    errors = out["val_error_per_alpha"]
    assert out["replaced"] and out["chosen_alpha"] == float(min(errors, key=errors.get))
    x, y, mask = _linear_problem(2, 100)
    with torch.no_grad():
        pred = head(torch.from_numpy(x).float()).double().numpy()
    assert (
        _masked_mae(pred, y, mask) < 0.05 < out["val_error_trained_head"]
    )  # the refit head predicts new rows
    assert torch.allclose(head.bias, torch.full((3,), 0.5), atol=0.05)


def test_ridge_refit_keeps_a_head_that_is_already_better_on_val() -> None:
    x, y, mask = _linear_problem(0, 200)
    head = torch.nn.Linear(8, 3)
    with torch.no_grad():  # the exact solution: no refit on noisy rows can beat it on noise-free val targets
        head.weight.copy_(torch.arange(24, dtype=torch.float32).reshape(3, 8) / 10)
        head.bias.fill_(0.5)
    before = head.weight.detach().clone()
    x_val = np.random.default_rng(3).normal(size=(50, 8))
    y_val = x_val @ before.double().numpy().T + 0.5
    out = ridge_refit(head, (x, y, mask), (x_val, y_val, np.ones_like(y_val)), _masked_mae)
    assert not out["replaced"] and torch.equal(head.weight, before)


def test_predict_attributes_decodes_with_the_tuned_thresholds() -> None:
    model = _encoder(aux_tasks=["pacemaker", "heart_axis"])
    ecg = torch.randn(3, 12, 1000)
    p = model.predict_aux(ecg)["pacemaker"][:, 0]  # (3,)
    model.config.aux_thresholds = {"pacemaker": [float(p.median())]}
    got = model.predict_attributes(ecg)
    assert [a.pacemaker for a in got] == (p >= p.median()).tolist()
    assert all(a.available == {"pacemaker", "heart_axis"} and a.heart_axis for a in got)


def test_fold_breakdowns_score_noise_per_record_stage_on_infarctions_and_ms_per_feature() -> None:
    from encoder.ecgqa.attributes import NOISE_TYPES, NUMERIC_FEATURES
    from encoder.multitask import (
        INFARCTION_CLASSES,
        noise_record_auroc,
        numeric_breakdown,
        numeric_scale,
        stage_accuracy_on_infarctions,
    )

    rng = np.random.default_rng(0)
    n, leads = 40, len(LEADS)
    # noise: baseline drift on lead V1 of the first 20 records; the head is right on type 0, reversed on type 1
    target = np.zeros((n, (len(NOISE_TYPES) + 1) * leads))
    target[:20, LEADS.index("V1")] = 1.0
    target[20:, leads + 2] = 1.0
    probs = rng.uniform(0, 0.1, target.shape)
    probs[:20, 5] = 0.9  # record-level: the highest lead counts, not the same lead
    probs[:20, leads + 3] = 0.9
    scored = noise_record_auroc(probs, target, np.ones_like(target))
    res = scored["record_auroc"]
    assert res[NOISE_TYPES[0]] == 1.0 and res[NOISE_TYPES[1]] == 0.0
    assert NOISE_TYPES[2] not in res  # no positives: not scored
    assert scored["record_positives"] == {
        NOISE_TYPES[0]: 20,
        NOISE_TYPES[1]: 20,
        NOISE_TYPES[2]: 0,
        NOISE_TYPES[3]: 0,
        "any": 0,
    }

    # stage: 3 infarctions (2 right) and 5 "none" records that are all wrong; accuracy only over infarctions
    k = len(INFARCTION_CLASSES)
    none = INFARCTION_CLASSES.index("none")
    truth = np.eye(k)[[1, 2, 3] + [none] * 5]
    guess = np.eye(k)[[1, 2, none] + [1] * 5]
    st = stage_accuracy_on_infarctions(guess, truth, np.ones_like(truth))
    assert st["accuracy_on_infarctions"] == pytest.approx(2 / 3) and st["n_infarctions"] == 3
    assert st["accuracy_per_stage"] == {
        INFARCTION_CLASSES[1]: "1.000 (n 1)",
        INFARCTION_CLASSES[2]: "1.000 (n 1)",
        INFARCTION_CLASSES[3]: "0.000 (n 1)",
    }

    # numeric: every prediction off by 10 ms on its own scale; masked entries ignored
    width = 2 * len(NUMERIC_FEATURES)
    t = np.zeros((4, width))
    p = np.array([[10.0 / numeric_scale(f)[1]] * 2 for f in NUMERIC_FEATURES]).ravel()[None].repeat(4, 0)
    m = np.ones((4, width))
    m[:, 0] = 0
    p[:, 0] = 99.0
    per = numeric_breakdown(p, t, m)["mae_ms_per_feature"]
    assert set(per) == set(NUMERIC_FEATURES)
    assert all(v == pytest.approx(10.0) for v in per.values())
