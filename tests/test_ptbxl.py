"""PtbXl over a tiny PTB-XL-format directory written by the test."""

import numpy as np
import pandas as pd
import pytest

from encoder.datasets.ptbxl import PtbXl, parse_scp_codes
from encoder.datasets.testing import write_tiny_ptbxl
from encoder.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_tiny_ptbxl(tmp_path_factory.mktemp("ptbxl"), num_records=20, seed=3)


def test_superdiagnostic_table_labels_and_folds(root):
    ds = PtbXl(root, task="superdiagnostic")
    # 20 records, the code set {"SR": 0.0} (k % 13 == 12, i.e. ecg_id 13) has no diagnostic label -> dropped
    assert len(ds) == 19 and 13 not in set(ds.table["ecg_id"])
    assert ds.label_names == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert list(ds.table.columns[:5]) == ["ecg_id", "filename", "strat_fold", "labels", "text"]
    row = ds.table.set_index("ecg_id").loc[3]
    assert row["labels"] == ["MI"]
    assert (
        row["text"]
        == "Sinus rhythm. Inferior myocardial infarction (diagnostic class: myocardial infarction)."
    )
    y = ds.multi_hot()
    assert y.shape == (19, 5) and y.dtype == np.uint8
    assert y[ds.table.index[ds.table["ecg_id"] == 3][0]].tolist() == [0, 0, 1, 0, 0]
    train, val, test = (ds.split_indices(s) for s in ("train", "val", "test"))
    assert set(ds.table["strat_fold"].iloc[train]) <= set(range(1, 9))
    assert set(ds.table["strat_fold"].iloc[val]) == {9} and set(ds.table["strat_fold"].iloc[test]) == {10}
    assert len(train) + len(val) + len(test) == len(ds)


def test_all_tasks_and_rates(root):
    sizes = {t: len(PtbXl(root, task=t).label_names) for t in ("all", "diagnostic", "form", "rhythm")}
    assert sizes == {"all": 16, "diagnostic": 10, "form": 4, "rhythm": 4}
    assert len(PtbXl(root, task="rhythm", min_label_count=0).label_names) == 12  # full vocabulary
    ecg = PtbXl(root, sampling_rate=500).read(0)
    assert ecg.fs == 500 and ecg.signal.shape == (12, 5000) and ecg.lead_mask.all()
    ecg = PtbXl(root, sampling_rate=100).read(0)
    assert ecg.signal.shape == (12, 1000) and ecg.signal.dtype == np.float32
    assert ecg.meta["ecg_id"] == 1


def test_min_label_count_filters_rare_labels(root):
    ds = PtbXl(root, task="all", min_label_count=3)
    counts = ds.multi_hot().sum(0)
    assert (counts >= 3).all()
    assert "SR" in ds.label_names and "AFIB" not in ds.label_names  # AFIB occurs in 1 of 20 records


def test_text_options(root):
    ds = PtbXl(root, text_style="codes", include_report=True)
    assert (
        ds.table.set_index("ecg_id").loc[4, "text"] == "SR, IMI, ABQRS Report: sinus rhythm, tiny test record"
    )
    ds = PtbXl(root, text_task="superdiagnostic")
    assert ds.table.set_index("ecg_id").loc[3, "text"] == "Myocardial infarction."


def test_path_for_ecg_id_and_missing_record(root, tmp_path):
    ds = PtbXl(root)
    assert ds.path_for_ecg_id(13).name == "00013_lr"  # unlabelled records are still addressable
    with pytest.raises(DatasetError, match="ecg_id 999"):
        ds.path_for_ecg_id(999)


def test_clear_errors_for_bad_layouts(root, tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        PtbXl(tmp_path / "nope")
    with pytest.raises(DatasetError, match="ptbxl_database.csv not found"):
        PtbXl(tmp_path)
    db = pd.read_csv(root / "ptbxl_database.csv")
    bad = tmp_path / "bad"
    bad.mkdir()
    db.drop(columns=["strat_fold"]).to_csv(bad / "ptbxl_database.csv", index=False)
    with pytest.raises(DatasetError, match="strat_fold"):
        PtbXl(bad)
    db.assign(scp_codes="NORM").to_csv(bad / "ptbxl_database.csv", index=False)
    with pytest.raises(DatasetError, match="python dict"):
        PtbXl(bad)
    db.to_csv(bad / "ptbxl_database.csv", index=False)  # records100/ missing
    ds = PtbXl(bad)
    with pytest.raises(DatasetError, match="records100"):
        ds.read(0)
    with pytest.raises(ConfigError):
        PtbXl(root, sampling_rate=250)
    with pytest.raises(ConfigError):
        PtbXl(root, task="superclass")
    with pytest.raises(ConfigError):
        PtbXl(root).split_indices("validation")


def test_parse_scp_codes_is_literal_only():
    assert parse_scp_codes("{'NORM': 100.0, 'SR': 0.0}") == {"NORM": 100.0, "SR": 0.0}
    with pytest.raises(DatasetError):
        parse_scp_codes("__import__('os').system('true')")


def test_data_stats(root, tmp_path, capsys):
    import json

    from encoder.datasets.stats import DataStatsConfig, run_stats

    qa = root.parent / "qa"  # ECG-QA questions about the tiny cohort, outside the dataset
    (qa / "ptbxl" / "template" / "test").mkdir(parents=True, exist_ok=True)
    sample = {
        "template_id": 1,
        "question_id": 0,
        "sample_id": 0,
        "question_type": "single-verify",
        "attribute_type": "scp_code",
        "question": "q",
        "answer": ["no"],
        "attribute": None,
    }
    shard = [
        sample | {"ecg_id": [1]},
        sample | {"ecg_id": [2, 999], "question_type": "comparison_consecutive-verify"},
    ]
    (qa / "ptbxl" / "template" / "test" / "0.json").write_text(json.dumps(shard))
    cfg = DataStatsConfig(
        ptbxl=str(root), task="superdiagnostic", ecgqa=str(qa), out_dir=str(tmp_path / "out")
    )
    stats = run_stats(cfg)
    p = stats["ptbxl"]
    assert p["records"] == 19 and p["records_in_database"] == 20
    assert sum(p["records_per_fold"].values()) == 19 and p["records_per_split"]["test"] == 2
    assert p["labels"]["MI"]["count"] == 6 and p["labels"]["MI"]["prevalence"] == pytest.approx(6 / 19)
    assert p["top_pairs"] == []  # the tiny cohort has one superclass per record
    assert p["sex"]["male"] + p["sex"]["female"] == 19
    q = stats["ecgqa"]["splits"]["template/test"]
    assert q["samples"] == 2 and q["ecgs_missing_from_ptbxl"] == 1
    assert q["question_types"] == {"comparison_consecutive-verify": 1, "single-verify": 1}
    out = capsys.readouterr().out
    assert "records: 19" in out and "MI" in out and "single-verify 1" in out
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["ptbxl"]["records"] == 19
    pairs = run_stats(DataStatsConfig(ptbxl=str(root), task="all", top_pairs=3))["ptbxl"]["top_pairs"]
    assert len(pairs) == 3 and [x["count"] for x in pairs] == [4, 4, 2]
    assert {tuple(x["pair"]) for x in pairs[:2]} == {("IMI", "SR"), ("NORM", "SR")}
    with pytest.raises(DatasetError, match="dataset directory"):
        run_stats(DataStatsConfig(ptbxl=str(root), out_dir=str(root / "stats")))
