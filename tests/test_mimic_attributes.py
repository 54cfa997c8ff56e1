"""MIMIC-IV-ECG attributes from machine_measurements.csv: intervals, axis, and the cart's statements."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from encoder.datasets.ecgqa import MimicIvEcg
from encoder.datasets.mimic_attributes import machine_attributes, machine_report
from encoder.errors import DatasetError
from encoder.synth.questions import QaRecord, write_sample

# Rows in the release's layout; the statements are written in the style of the carts' reports.
ROWS = [
    {
        "subject_id": 1, "study_id": 101, "rr_interval": 857, "p_onset": 40, "p_end": 150, "qrs_onset": 200,
        "qrs_end": 290, "t_end": 600, "p_axis": 50, "qrs_axis": -45, "t_axis": 40,
        "report_0": "Sinus rhythm", "report_1": "Inferior infarct - age undetermined",
        "report_2": "with occasional premature ventricular complexes",
    },
    {
        "subject_id": 2, "study_id": 102, "rr_interval": 600, "p_onset": 29999, "p_end": 29999, "qrs_onset": 210,
        "qrs_end": 300, "t_end": 29999, "p_axis": 29999, "qrs_axis": 29999, "t_axis": 29999,
        "report_0": "Atrial fibrillation", "report_1": "Anterior infarct, old", "report_2": None,
    },
    {
        "subject_id": 3, "study_id": 103, "rr_interval": 1000, "p_onset": 30, "p_end": 130, "qrs_onset": 180,
        "qrs_end": 260, "t_end": 560, "p_axis": 60, "qrs_axis": 120, "t_axis": 60,
        "report_0": "Sinus rhythm with PAC(s)", "report_1": "Acute MI / STEMI", "report_2": "",
    },
    {
        "subject_id": 4, "study_id": 104, "rr_interval": 800, "p_onset": np.nan, "p_end": np.nan, "qrs_onset": 0,
        "qrs_end": 160, "t_end": 500, "p_axis": np.nan, "qrs_axis": 270, "t_axis": 90,
        "report_0": "Ventricular-paced rhythm", "report_1": "Compared to prior tracing no change",
        "report_2": "Abnormal ECG",
    },
]  # fmt: skip


def test_intervals_axis_and_statements_follow_the_documented_rules():
    a = machine_attributes(pd.DataFrame(ROWS))
    first = a[0].numeric_ms
    assert first["rr interval"] == (857, 857)
    assert first["p duration"] == (110, 110) and first["pr interval"] == (160, 160)
    assert first["qrs duration"] == (90, 90) and first["qt interval"] == (400, 400)
    assert first["qt corrected"][0] == pytest.approx(400 / math.sqrt(0.857))
    assert a[0].heart_axis == "left axis deviation"
    assert a[0].infarction_stage == "unknown stage of myocardial infarction"
    assert a[0].extra_systoles == {"ventricular extrasystoles"}
    assert not a[0].pacemaker
    # 29999 = not measured: only RR and QRS are left, and the axis is unknown
    assert set(a[1].numeric_ms) == {"rr interval", "qrs duration"}
    assert a[1].heart_axis is None and "heart_axis" not in a[1].available
    assert a[1].infarction_stage == "old stage of myocardial infarction"
    assert a[2].heart_axis == "right axis deviation"
    assert a[2].infarction_stage == "early stage of myocardial infarction"
    assert a[2].extra_systoles == {"supraventricular extrasystoles"}
    # empty P cells: no P or PR; 270 deg is -90 deg; "prior" without an infarct is no stage
    assert "p duration" not in a[3].numeric_ms and "pr interval" not in a[3].numeric_ms
    assert a[3].heart_axis == "left axis deviation"
    assert a[3].infarction_stage is None and a[3].pacemaker
    for attrs in a:
        assert "noise" not in attrs.available and "form_leads" not in attrs.available


def test_missing_columns_leave_their_groups_unavailable():
    only_measurements = pd.DataFrame(ROWS).drop(columns=["report_0", "report_1", "report_2"])
    a = machine_attributes(only_measurements)[0]
    assert a.available == {"numeric_feature", "heart_axis"}
    only_reports = pd.DataFrame(ROWS)[["study_id", "report_0", "report_1"]]
    b = machine_attributes(only_reports)[0]
    assert b.available == {"stage_of_infarction", "extra_systole", "pacemaker"} and not b.numeric_ms


def test_questions_needing_noise_are_unanswerable_for_mimic_records():
    rec = QaRecord(101, 1, 10, frozenset({"IMI"}), attributes=machine_attributes(pd.DataFrame(ROWS))[0])
    skipped: Counter = Counter()
    rng = np.random.default_rng(0)
    assert write_sample(27, (rec,), rng, skipped) is None  # "Does this ECG show {noise}?"
    assert skipped[(27, "unavailable")] == 1
    sample = write_sample(22, (rec,), rng, skipped)  # "What heart axis does this ECG show?"
    assert sample is not None and sample["answer"] == ["left axis deviation"]


def test_mimic_reader_joins_machine_measurements_by_study(tmp_path):
    root = tmp_path / "mimic-iv-ecg"
    root.mkdir()
    pd.DataFrame(
        [
            {"subject_id": r["subject_id"], "study_id": r["study_id"], "path": f"files/p{r['study_id']}"}
            for r in ROWS
        ]
        + [{"subject_id": 5, "study_id": 105, "path": "files/p105"}]
    ).to_csv(root / "record_list.csv", index=False)
    src = MimicIvEcg(root)
    assert src.machine_measurements is None
    assert src.attributes_for_ecg_id(101).available == frozenset()  # no file: nothing known
    pd.DataFrame(ROWS).to_csv(root / "machine_measurements.csv", index=False)
    src = MimicIvEcg(root)
    assert src.attributes_for_ecg_id(102).infarction_stage == "old stage of myocardial infarction"
    assert src.attributes_for_ecg_id(105).available == frozenset()  # listed, not measured
    assert src.report_for_ecg_id(101) == (
        "Sinus rhythm. Inferior infarct - age undetermined. with occasional premature ventricular complexes"
    )
    assert src.report_for_ecg_id(105) == ""
    with pytest.raises(DatasetError, match="study_id 999"):
        src.attributes_for_ecg_id(999)
    pd.DataFrame({"x": [1]}).to_csv(root / "machine_measurements.csv", index=False)
    with pytest.raises(DatasetError, match="no study_id column"):
        MimicIvEcg(root).attributes_for_ecg_id(101)


def test_machine_report_skips_empty_statements():
    row = pd.Series({"report_10": "Abnormal ECG", "report_2": "Sinus rhythm", "report_0": np.nan, "x": "y"})
    assert machine_report(row) == "Sinus rhythm. Abnormal ECG"
