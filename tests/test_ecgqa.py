"""ECG-QA loader on the real shard, answer options, and the join to PTB-XL / MIMIC-IV-ECG records."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from encoder.datasets.ecgqa import (
    MimicIvEcg,
    ecg_paths_for,
    load_answer_options,
    load_answers,
    load_ecgqa,
    with_ecg_paths,
)
from encoder.datasets.ptbxl import PtbXl
from encoder.datasets.testing import write_tiny_ptbxl
from encoder.errors import ConfigError, DatasetError

DATA = Path(__file__).parent / "data" / "ecgqa"


@pytest.fixture(scope="module")
def shard():
    return load_ecgqa(DATA, source="ptbxl", variant="template", split="test")


def test_real_shard_counts_and_schema(shard):
    assert len(shard) == 2146
    assert set(shard["question_type"]) == {"comparison_irrelevant-query"}
    assert set(shard["attribute_type"]) == {"numeric_feature"}
    assert all(len(ids) == 2 for ids in shard["ecg_id"])
    assert all(a is None for a in shard["attribute"])
    row = shard[0]
    assert row["template_id"] == 69 and row["ecg_id"] == [17229, 20344]
    assert row["answer"] == ["qrs duration", "rr interval"]
    assert shard.features["ecg_id"].feature.dtype == "int64"


def test_answers_are_in_the_template_vocabulary(shard):
    options = load_answer_options(DATA)
    vocab = set(load_answers(DATA))
    assert len(options) == 70 and len(vocab) == 104
    assert set(load_answer_options(None)) == set(options)  # shipped copy == test copy
    for tid, answer in zip(shard["template_id"], shard["answer"], strict=True):
        assert answer and set(answer) <= set(options[tid]) <= vocab


def test_shard_ecg_ids_belong_to_the_test_split(shard):
    test_ids = set(pd.read_csv(DATA / "ptbxl" / "test_ecgs.tsv", sep="\t", header=None)[1])
    assert {i for ids in shard["ecg_id"] for i in ids} <= test_ids


def _write_shard(folder: Path, samples: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "0.json").write_text(json.dumps(samples))


def _sample(ecg_id, **kw):
    base = {
        "template_id": 1,
        "question_id": 0,
        "sample_id": 0,
        "question_type": "single-verify",
        "attribute_type": "scp_code",
        "question": "Does this ECG show 1st degree av block?",
        "answer": ["no"],
        "ecg_id": ecg_id,
        "attribute": ["1st degree av block"],
    }
    return base | kw


def test_mixed_shapes_and_join_to_ptbxl(tmp_path):
    root = write_tiny_ptbxl(tmp_path / "ptbxl", num_records=6)
    qa = tmp_path / "ecgqa"
    _write_shard(
        qa / "ptbxl" / "template" / "valid", [_sample([1]), _sample(2, attribute=None), _sample([3, 5])]
    )
    ds = load_ecgqa(qa, split="val")
    assert ds["ecg_id"] == [[1], [2], [3, 5]] and ds["attribute"][1] is None
    ptbxl = PtbXl(root)
    joined = with_ecg_paths(ds, ptbxl)
    assert [Path(p).name for p in joined["ecg_path"][2]] == ["00003_lr", "00005_lr"]
    _write_shard(qa / "ptbxl" / "template" / "test", [_sample([1, 42]), _sample([77])])
    with pytest.raises(DatasetError, match="2 ECG-QA ecg_id.*42, 77"):
        with_ecg_paths(load_ecgqa(qa), ptbxl)


def test_mimic_iv_ecg_layout_join(tmp_path):
    import wfdb

    mimic = tmp_path / "mimic-iv-ecg"
    rows = []
    rng = np.random.default_rng(0)
    names = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]  # MIMIC's order
    for subject, study in ((10000032, 40689238), (10000117, 45090959)):
        rel = f"files/p{str(subject)[:4]}/p{subject}/s{study}"
        (mimic / rel).mkdir(parents=True)
        sig = np.round(rng.standard_normal((5000, 12)) * 0.2, 3)
        sig[:, 4] = 1.0 + 0.01 * np.sin(np.arange(5000))  # aVF, so reordering can be checked
        wfdb.wrsamp(
            str(study),
            fs=500,
            units=["mV"] * 12,
            sig_name=names,
            p_signal=sig,
            fmt=["16"] * 12,
            adc_gain=[200.0] * 12,
            baseline=[0] * 12,
            write_dir=str(mimic / rel),
        )
        rows.append({"subject_id": subject, "study_id": study, "file_name": study, "path": f"{rel}/{study}"})
    pd.DataFrame(rows).to_csv(mimic / "record_list.csv", index=False)
    qa = tmp_path / "ecgqa"
    _write_shard(qa / "mimic-iv-ecg" / "paraphrased" / "train", [_sample([40689238, 45090959])])
    ds = load_ecgqa(qa, source="mimic-iv-ecg", variant="paraphrased", split="train")
    src = MimicIvEcg(mimic)
    paths = ecg_paths_for(ds[0]["ecg_id"], src)
    assert paths[1].name == "45090959"
    ecg = src.read_ecg_id(40689238)
    assert ecg.signal.shape == (12, 5000) and ecg.fs == 500
    assert abs(float(ecg.signal[5].mean()) - 1.0) < 0.01  # aVF lands in canonical slot 5
    with pytest.raises(DatasetError, match="1 ECG-QA ecg_id.*123"):
        ecg_paths_for([123], src)
    with pytest.raises(DatasetError, match="record_list.csv"):
        MimicIvEcg(tmp_path)
    with pytest.raises(DatasetError, match="No shipped"):
        load_answer_options(None, source="mimic-iv-ecg")


def test_layout_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_ecgqa(tmp_path)
    with pytest.raises(ConfigError):
        load_ecgqa(DATA, split="holdout")
    with pytest.raises(ConfigError):
        load_ecgqa(DATA, source="mimic")
    _write_shard(tmp_path / "ptbxl" / "template" / "test", [{"question": "x"}])
    with pytest.raises(DatasetError, match="lacks field"):
        load_ecgqa(tmp_path)
    _write_shard(tmp_path / "ptbxl" / "template" / "test", [_sample([1, 2, 3])])
    with pytest.raises(DatasetError, match="1 or 2"):
        load_ecgqa(tmp_path)
    (tmp_path / "ptbxl" / "template" / "test" / "0.json").write_text("{not json")
    with pytest.raises(DatasetError, match="Cannot read"):
        load_ecgqa(tmp_path)
