"""Held-out exclusion (ECG-QA valid/test ECGs and their patients) and the patient/fingerprint leakage check."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from encoder.errors import DatasetError, LeakageError
from encoder.exclusion import (
    EXCLUSION_NAME,
    HeldoutExclusion,
    data_fingerprint,
    load_exclusion,
    read_id_file,
    seen_record_extras,
    split_rows,
)
from llm_finetune.vqa.leakage import LeakageWarning, check_leakage

# ecg_id: 1..8; patients: 10 has ECGs 1,5 ; 20 has 2,6 ; 30 has 3 ; 40 has 4,7,8
TABLE = pd.DataFrame(
    {
        "ecg_id": [1, 2, 3, 4, 5, 6, 7, 8],
        "patient_id": [10.0, 20.0, 30.0, 40.0, 10.0, 20.0, 40.0, 40.0],
        "scp_codes": ["{'NORM': 100.0}"] * 8,
        "strat_fold": [1, 2, 3, 4, 5, 9, 9, 10],
    }
)


def _sample(i: int, ecg: list[int]) -> dict:
    return {
        "template_id": 1, "question_id": i, "sample_id": i, "question_type": "single-verify",
        "attribute_type": "scp_code", "question": "Does this ECG show x?", "answer": ["yes"],
        "ecg_id": ecg, "attribute": ["x"],
    }  # fmt: skip


@pytest.fixture
def toy(tmp_path):
    """A toy PTB-XL folder and ECG-QA root: valid uses ECG 1, test uses ECGs 4 and 99 (not in the table)."""
    ptbxl = tmp_path / "ptbxl"
    ptbxl.mkdir()
    TABLE.to_csv(ptbxl / "ptbxl_database.csv", index=False)
    root = tmp_path / "ecgqa"
    for split, samples in {
        "train": [_sample(0, [2])],
        "valid": [_sample(1, [1])],
        "test": [_sample(2, [4, 99])],
    }.items():
        d = root / "ptbxl" / "template" / split
        d.mkdir(parents=True)
        (d / "0.json").write_text(json.dumps(samples))
    return ptbxl, root


def test_excludes_heldout_ecgs_and_every_ecg_of_their_patients(toy):
    ptbxl, root = toy
    ex = load_exclusion(ptbxl, ecgqa_root=root)
    assert ex.heldout_ecg_ids == {1, 4, 99}
    assert ex.excluded_patients == {10, 40}
    assert ex.excluded_ecg_ids == {1, 5, 4, 7, 8}  # 5 shares patient 10 with 1; 7, 8 share 40 with 4
    assert ex.not_in_table == 1
    assert ex.keep(np.array([1, 2, 3, 5, 6])).tolist() == [False, True, True, False, True]


def test_id_file_forms(tmp_path):
    tsv = tmp_path / "test_ecgs.tsv"
    tsv.write_text("0\t1\n1\t4\n")  # ECG-QA's shipped layout: index, ecg_id
    assert read_id_file(tsv) == {1, 4}
    js = tmp_path / "ids.json"
    js.write_text("[3, 6]")
    assert read_id_file(js) == {3, 6}
    bad = tmp_path / "bad.txt"
    bad.write_text("1\nabc\n")
    with pytest.raises(DatasetError, match="integer"):
        read_id_file(bad)


def test_missing_patient_id_refuses_when_something_is_held_out(tmp_path):
    with pytest.raises(DatasetError, match="patient_id"):
        HeldoutExclusion.from_table(TABLE.drop(columns="patient_id"), [1])
    assert HeldoutExclusion.from_table(TABLE.drop(columns="patient_id")).excluded_ecg_ids == set()


class _Cache:
    table = TABLE

    def split_indices(self, name):
        folds = {"train": range(1, 9), "val": [9], "test": [10]}[name]
        return np.flatnonzero(TABLE["strat_fold"].isin(folds).to_numpy())


def test_stage1_rows_drop_excluded_and_record_says_what(toy, tmp_path):
    ptbxl, root = toy
    ex = load_exclusion(ptbxl, ecgqa_root=root)
    cache = _Cache()
    train = TABLE["ecg_id"].to_numpy()[split_rows(cache, "train", ex)].tolist()
    val = TABLE["ecg_id"].to_numpy()[split_rows(cache, "val", ex)].tolist()
    assert train == [2, 3] and val == [6]
    assert TABLE["ecg_id"].to_numpy()[split_rows(cache, "test", ex)].tolist() == [8]  # test rows untouched
    extras = seen_record_extras(ex, {"train": train, "val": val}, tmp_path)
    assert extras["data_fingerprint"] == data_fingerprint(TABLE)
    assert extras["train_patients"] == [20, 30] and extras["val_patients"] == [20]
    saved = json.loads((tmp_path / EXCLUSION_NAME).read_text())
    assert saved["n_excluded_ecgs"] == 5 and saved["n_excluded_patients"] == 2
    assert saved["excluded_ecg_ids"] == [1, 4, 5, 7, 8]


def test_fingerprint_tells_data_sources_apart():
    other = TABLE.assign(patient_id=TABLE["patient_id"] + 1)
    assert data_fingerprint(TABLE) == data_fingerprint(TABLE.iloc[::-1])  # row order does not matter
    assert data_fingerprint(TABLE) != data_fingerprint(other)


def _record(run, fingerprint, train, patients):
    run.mkdir(parents=True)
    body = {
        "stage": 1,
        "train": train,
        "val": [],
        "data_fingerprint": fingerprint,
        "train_patients": patients,
    }
    (run / "train_ecg_ids.json").write_text(json.dumps(body))
    return run


def test_leakage_compares_patients_and_refuses(tmp_path):
    fp = data_fingerprint(TABLE)
    run = _record(tmp_path / "enc", fp, [2, 3], [20, 30])
    patient_of = dict(zip(TABLE["ecg_id"], TABLE["patient_id"].astype(int), strict=True))
    # ECG 6 was never trained on, but its patient 20 was (through ECG 2)
    with pytest.raises(LeakageError, match="allow_leakage"):
        check_leakage([6], extra_run_dirs=[run], eval_fingerprint=fp, patient_of=patient_of)
    with pytest.warns(LeakageWarning):
        res = check_leakage(
            [6], extra_run_dirs=[run], eval_fingerprint=fp, patient_of=patient_of, allow_leakage=True
        )
    assert res["stage1"]["n_overlap"] == 0 and res["stage1"]["n_patient_overlap"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = check_leakage([1, 4], extra_run_dirs=[run], eval_fingerprint=fp, patient_of=patient_of)
    assert res["stage1"]["n_overlap"] == 0 and res["stage1"]["n_patient_overlap"] == 0


def test_leakage_ignores_ids_of_another_data_source(tmp_path):
    run = _record(tmp_path / "enc", "synthetic0000000", [1, 2, 3], [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = check_leakage([1, 2], extra_run_dirs=[run], eval_fingerprint=data_fingerprint(TABLE))
    assert res["stage1"]["n_overlap"] == 0
    assert res["stage1"]["source"].startswith("other data source")
    with pytest.raises(LeakageError):  # the same ids within the same source do count
        check_leakage([1, 2], extra_run_dirs=[run], eval_fingerprint="synthetic0000000")


def test_stage1_run_trains_without_the_heldout_patients(tmp_path):
    """A real (tiny) stage-1 run given an id file never trains or validates on those ECGs' patients."""
    from encoder.datasets.testing import write_tiny_ptbxl
    from encoder.text import TextTowerConfig
    from encoder.train import PretrainConfig, run_pretrain

    data = write_tiny_ptbxl(tmp_path / "ptbxl", num_records=40, rates=(100,))
    table = pd.read_csv(data / "ptbxl_database.csv")
    heldout = [int(i) for i in table.loc[table["strat_fold"] <= 9, "ecg_id"].iloc[:3]]
    (tmp_path / "ids.json").write_text(json.dumps(heldout))
    cfg = PretrainConfig(
        data_dir=str(data), out_dir=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
        exclude_ids_file=str(tmp_path / "ids.json"), arch="resnet10", widths=[8, 16, 16, 16], embed_dim=16,
        epochs=1, batch_size=8, crop_seconds=2.5, warmup_steps=1, checkpoint_every=100, num_threads=1,
        progress=False, text=TextTowerConfig(cache_dir=str(tmp_path / "text_cache")),
    )  # fmt: skip
    run = run_pretrain(cfg)
    seen = json.loads((run / "train_ecg_ids.json").read_text())
    ex = HeldoutExclusion.from_table(table, heldout)
    assert ex.excluded_ecg_ids and not (set(seen["train"]) | set(seen["val"])) & ex.excluded_ecg_ids
    assert seen["data_fingerprint"] == data_fingerprint(table)
    assert seen["heldout_exclusion"]["n_excluded_ecgs"] == len(ex.excluded_ecg_ids)
    assert (run / EXCLUSION_NAME).is_file()
