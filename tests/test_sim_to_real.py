"""Sim-to-real scoring: real labels from the PTB-XL table, label selection, bootstrap AUROC, the benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from encoder.errors import CheckpointError, ConfigError, DatasetError
from encoder.sim_to_real import (
    SimToRealConfig,
    bootstrap_auroc,
    label_matrix,
    load_real_records,
    record_label_sets,
    run_sim_to_real,
    score_head,
    scored_labels,
)

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "ptbxl_real_sample.npz"  # 16 real PTB-XL records, see the .txt beside it
TABLE = DATA / "ptbxl_real_sample_labels.csv"  # their rows of the real PTB-XL table


def test_real_labels_count_codes_at_any_likelihood_and_superclasses_of_diagnostic_codes() -> None:
    table = pd.read_csv(TABLE)
    sets = record_label_sets(table, [223, 728, 612, 387])
    # 223: ASMI 50 (counts), LVH, ISC_ -> MI, HYP, STTC; SR is a rhythm code, no superclass
    assert sets[0] == {"ASMI", "LVH", "ISC_", "SR", "MI", "HYP", "STTC"}
    # 728: IMI at likelihood 50 counts; 1AVB -> CD; NT_ / LPR are form codes (no superclass)
    assert {"IMI", "MI", "CD", "1AVB", "NT_", "LPR"} <= sets[1] and "NORM" not in sets[1]
    assert sets[2] == {"NDT", "STTC", "LOWT", "SBRAD"}
    assert sets[3] == {"NORM", "SR"}
    with pytest.raises(DatasetError, match="not in the PTB-XL table"):
        record_label_sets(table, [223, 999999])


def test_scored_labels_need_positives_and_leave_out_voltage_criteria() -> None:
    sets = [{"A", "LVOLT"}] * 6 + [{"B"}] * 3 + [{"A", "C", "LVOLT"}] * 5
    names = ["A", "B", "C", "LVOLT", "D"]
    y = label_matrix(sets, names)
    assert y.shape == (14, 5) and y[:, 0].sum() == 11 and y[:, 4].sum() == 0
    assert scored_labels(y, names, min_positives=5) == ["A", "C"]  # B has 3, LVOLT excluded, D none
    assert scored_labels(y, names, min_positives=3) == ["A", "B", "C"]
    all_pos = label_matrix([{"A"}] * 6, ["A"])
    assert scored_labels(all_pos, ["A"], min_positives=1) == []  # no negative: AUROC undefined


def test_bootstrap_auroc_matches_sklearn_and_its_ci_brackets_it() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((300, 3)) < 0.3).astype(int)
    scores = np.stack(
        [y[:, 0] + rng.normal(0, 0.8, 300), rng.random(300), -y[:, 2] + rng.normal(0, 0.1, 300)], axis=1
    )
    res = bootstrap_auroc(y, scores, ["good", "random", "reversed"], n_boot=200, seed=0)
    good, rand, rev = (res["labels"][k] for k in ("good", "random", "reversed"))
    assert good["auroc"] == pytest.approx(roc_auc_score(y[:, 0], scores[:, 0]))
    assert good["ci"][0] < good["auroc"] < good["ci"][1] and good["ci"][0] > 0.7
    assert rand["ci"][0] < 0.5 < rand["ci"][1]
    assert rev["auroc"] < 0.05
    assert res["macro"]["auroc"] == pytest.approx(np.mean([good["auroc"], rand["auroc"], rev["auroc"]]))
    assert res["macro"]["num_labels"] == 3 and good["positives"] == int(y[:, 0].sum())
    one_class = bootstrap_auroc(np.zeros((10, 1), int), rng.random((10, 1)), ["none"], n_boot=10)
    assert one_class["labels"]["none"]["auroc"] is None and one_class["macro"]["auroc"] is None
    with pytest.raises(ConfigError):
        bootstrap_auroc(y, scores[:, :2], ["a", "b", "c"])


def test_score_head_picks_the_encoder_columns_and_the_superclasses() -> None:
    sets = [{"NORM"}] * 5 + [{"MI", "IMI"}] * 5 + [{"IMI", "MI", "NORM"}]
    enc_labels = ["IMI", "MI", "NORM", "OTHER"]
    y = label_matrix(sets, enc_labels)
    probs = np.concatenate([y[:, :3], np.zeros((len(y), 1))], axis=1).astype(float)  # a perfect head
    res = score_head(probs, sets, enc_labels, ["NORM", "IMI", "MI"], n_boot=20)
    assert list(res["all"]["labels"]) == ["NORM", "IMI", "MI"]
    assert list(res["superclasses"]["labels"]) == ["NORM", "MI"]
    assert res["all"]["macro"]["auroc"] == pytest.approx(1.0)


def test_load_real_records_joins_on_ecg_id(tmp_path: Path) -> None:
    x, ids = load_real_records(SAMPLE)
    assert x.shape == (16, 12, 5000) and ids[0] == 134 and len(ids) == 16
    bad = tmp_path / "no_ids.npz"
    np.savez(bad, signal=np.zeros((2, 5000, 12), np.float16), fs=500)
    with pytest.raises(DatasetError, match="ecg_id"):
        load_real_records(bad)


def test_config_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--run"):
        run_sim_to_real(SimToRealConfig(real=str(SAMPLE), table=str(TABLE), out_dir=str(tmp_path / "o")))
    with pytest.raises(CheckpointError, match="No encoder"):
        run_sim_to_real(SimToRealConfig(run=str(tmp_path), real=str(SAMPLE), table=str(TABLE)))


@pytest.mark.slow
def test_run_sim_to_real_end_to_end(tmp_path: Path) -> None:
    from encoder.configuration import EcgEncoderConfig
    from encoder.datasets.synthetic import SyntheticConfig, generate_cohort
    from encoder.modeling import EcgEncoder

    enc_dir = tmp_path / "run" / "encoder"
    labels = ["NORM", "MI", "STTC", "NDT", "CD", "LVOLT"]
    enc_cfg = EcgEncoderConfig(widths=(8, 8, 8, 8), embed_dim=16, label_names=labels, input_seconds=10.0)
    EcgEncoder(enc_cfg).save_pretrained(enc_dir)
    cohort = generate_cohort(SyntheticConfig(out_dir=str(tmp_path / "cohort"), num_records=60, num_workers=1))
    cfg = SimToRealConfig(
        run=str(tmp_path / "run"), real=str(SAMPLE), table=str(TABLE), cohort=str(cohort),
        out_dir=str(tmp_path / "out"), min_positives=3, n_boot=20, compare_run=str(tmp_path / "run"),
    )  # fmt: skip
    res = run_sim_to_real(cfg)
    out = tmp_path / "out"
    for name in ("sim_to_real.json", "sim_to_real.md", "sim_to_real_auroc.png", "config.yaml"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "sim_to_real.json").read_text())
    real = saved["real_scores"]
    assert real["num_records"] == 16
    # NORM 7, STTC 6 (NDT x3, NST_, ISC_, ISCAL), NDT 3, MI 4 real positives; CD 3; voltage criteria never scored
    assert list(real["all"]["labels"]) == ["NORM", "MI", "STTC", "NDT", "CD"]
    assert set(real["superclasses"]["labels"]) == {"NORM", "MI", "STTC", "CD"}
    assert set(saved["synthetic_test"]["all"]["labels"]) == set(real["all"]["labels"])
    assert 0.0 <= real["all"]["macro"]["auroc"] <= 1.0
    assert "| NORM | 7 |" in (out / "sim_to_real.md").read_text()
    assert res["synthetic_test"]["num_records"] > 0
    assert saved["compare"]["difference_all"]["difference"] == 0.0  # the run against itself
    assert "this run minus it: +0.000" in (out / "sim_to_real.md").read_text()


def test_write_real_vqa_gives_an_ecgqa_folder_over_the_real_records(tmp_path: Path) -> None:
    from encoder.datasets.ecgqa import load_ecgqa
    from encoder.datasets.ptbxl import PtbXl
    from encoder.sim_to_real import write_real_vqa

    real_q = [
        {"template_id": 26, "question_id": 1, "sample_id": 5, "question_type": "single-verify",
         "attribute_type": "noise", "question": "Does this ECG show static noise in lead I?", "answer": ["no"],
         "ecg_id": [134], "attribute": ["static noise"]},
        {"template_id": 69, "question_id": 2, "sample_id": 6, "question_type": "single-verify",
         "attribute_type": "numeric_feature", "question": "x", "answer": ["no"], "ecg_id": [134], "attribute": ["x"]},
        {"template_id": 27, "question_id": 3, "sample_id": 7, "question_type": "single-verify",
         "attribute_type": "noise", "question": "y", "answer": ["no"], "ecg_id": [999999], "attribute": ["x"]},
    ]  # fmt: skip
    qfile = tmp_path / "questions.json"
    qfile.write_text(json.dumps(real_q))
    table = pd.read_csv(TABLE).assign(patient_id=lambda t: t.ecg_id)  # the fixture keeps few columns
    table.to_csv(tmp_path / "table.csv", index=False)
    out = write_real_vqa(SAMPLE, tmp_path / "table.csv", tmp_path / "vqa", qfile, questions_per_record=2.0)
    samples = list(load_ecgqa(out / "ecgqa", source="ptbxl", variant="template", split="test"))
    texts = [s["question"] for s in samples]
    assert (
        real_q[0]["question"] in texts and "x" not in texts and "y" not in texts
    )  # noise templates, known ECGs
    written = [s for s in samples if s["question"] != real_q[0]["question"]]
    assert len(written) == 32 and {e for s in written for e in s["ecg_id"]} <= set(table.ecg_id)
    assert len({s["sample_id"] for s in samples}) == len(samples)
    ds = PtbXl(str(out), task="superdiagnostic", sampling_rate=100)
    x, _ = load_real_records(SAMPLE)
    first = ds.read(0)
    assert first.signal.shape == (12, 1000) and abs(first.signal.std() - 1.0) < 0.05
    assert np.allclose(
        PtbXl(str(out), task="superdiagnostic", sampling_rate=500).read(0).signal, x[0], atol=2e-3
    )


def test_paired_difference_sees_a_better_head_and_not_an_equal_one() -> None:
    from encoder.sim_to_real import paired_difference

    rng = np.random.default_rng(0)
    y = (rng.random((200, 2)) < 0.4).astype(int)
    good = y + rng.normal(0, 0.5, y.shape)
    poor = y + rng.normal(0, 3.0, y.shape)
    better = paired_difference(y, good, poor, n_boot=200)
    assert better["difference"] > 0.1 and better["ci"][0] > 0
    same = paired_difference(y, good, good.copy(), n_boot=50)
    assert same["difference"] == 0.0 and same["ci"] == [0.0, 0.0]
