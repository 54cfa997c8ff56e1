"""ECG-QA attributes parsed from the real PTB-XL table's columns (shipped excerpt of the real table)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from encoder.datasets.ptbxl_attributes import (
    ParseReport,
    parse_extra_beats,
    parse_form_leads,
    parse_infarction_stage,
    parse_lead_list,
    table_attributes,
)
from encoder.ecg_measurements import Measurements
from encoder.ecgqa.attributes import INFARCTION_STAGES, LEADS, NOISE_COLUMNS, EcgAttributes

EXCERPT = Path(__file__).parent / "data" / "ptbxl_attributes_excerpt.csv"
_LEAD_WORD = r"(?:^|[^a-z])(?:i{1,3}|avr|avl|avf|v\s?\d|\d|alle|alles|inferior|lateral)(?:$|[^a-z]|(?=v\d))"


def leads(*names: str) -> tuple[bool, ...]:
    return tuple(n in names for n in LEADS)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return pd.read_csv(EXCERPT)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" , I-V1,  ", leads("I", "II", "III", "aVR", "aVL", "aVF", "V1")),
        ("alles,  ", (True,) * 12),
        (" , III", leads("III")),
        ("v1-6", leads("V1", "V2", "V3", "V4", "V5", "V6")),
        (" , I - AVF,  ", leads("I", "II", "III", "aVR", "aVL", "aVF")),
        ("v5,6", leads("V5", "V6")),
        (" , II,III,AVF", leads("II", "III", "aVF")),
        ("inferior", leads("II", "III", "aVF")),
        ("Kontaktprobleme aVL ???", leads("aVL")),
        (" , mittel,  ", (False,) * 12),
    ],
)
def test_lead_lists_in_the_real_formats(text: str, expected: tuple[bool, ...]) -> None:
    mask, unknown = parse_lead_list(text)
    assert tuple(mask) == tuple(expected) and unknown == []


def test_unknown_token_is_reported() -> None:
    mask, unknown = parse_lead_list("V1, xyz")
    assert mask == leads("V1") and unknown == ["xyz"]


@pytest.mark.parametrize(
    ("text", "types", "lead_mask"),
    [
        ("1VES", {"ventricular extrasystoles"}, ()),
        ("SVES", {"supraventricular extrasystoles"}, ()),
        ("4ES", {"extrasystoles"}, ()),
        ("VES,SVES1,alles", {"ventricular extrasystoles", "supraventricular extrasystoles"}, tuple(LEADS)),
        ("1,V1", {"extrasystoles"}, ("V1",)),
    ],
)
def test_extra_beats(text: str, types: set[str], lead_mask: tuple[str, ...]) -> None:
    found, mask, unknown = parse_extra_beats(text)
    assert found == types and mask == leads(*lead_mask) and unknown == []


def test_infarction_stage_prefers_stadium2() -> None:
    assert parse_infarction_stage("Stadium I-II", float("nan")) == (INFARCTION_STAGES[0], True)
    assert parse_infarction_stage("Stadium II-III", float("nan")) == (INFARCTION_STAGES[1], True)
    assert parse_infarction_stage("Stadium I", "Stadium III") == (INFARCTION_STAGES[2], True)
    assert parse_infarction_stage("unknown", float("nan")) == (INFARCTION_STAGES[3], True)
    assert parse_infarction_stage(float("nan"), float("nan")) == (None, True)
    assert parse_infarction_stage("Stadium IV", float("nan")) == (None, False)


def test_form_leads_from_english_and_german_reports() -> None:
    en = "sinus rhythm. st segments are depressed in i, avl, v5,6. t waves are inverted in avl."
    assert parse_form_leads(en, {"STD_": 100.0})["STD_"] == leads("I", "aVL", "V5", "V6")
    assert parse_form_leads(en, {"INVT": 100.0})["INVT"] == leads("aVL")
    de = "sinusrhythmus lagetyp normal st-hebung in v1-v3 leicht verzÖgerte r-progression"
    assert parse_form_leads(de, {"STE_": 50.0})["STE_"] == leads("V1", "V2", "V3")
    assert parse_form_leads(en, {"NORM": 100.0}) == {}


def test_noise_counts_match_pandas_string_tests(table: pd.DataFrame) -> None:
    report = ParseReport()
    attrs = table_attributes(table, report)
    assert len(attrs) == len(table) == 300
    for kind, col in NOISE_COLUMNS.items():
        cells = table[col].fillna("").str.lower()
        expected = int(cells.str.contains(_LEAD_WORD, regex=True).sum())
        assert expected > 0, col
        assert sum(any(a.noise[kind]) for a in attrs) == expected, col
    v6_only = table["baseline_drift"].fillna("").str.lower().str.fullmatch(r"[\s,]*v6[\s,]*")
    assert v6_only.sum() > 0
    assert all(attrs[i].noise["baseline drift"] == leads("V6") for i in v6_only[v6_only].index)


def test_other_counts_match_pandas_string_tests(table: pd.DataFrame) -> None:
    attrs = table_attributes(table)
    extra = table["extra_beats"].fillna("").str.lower()
    assert (
        sum("supraventricular extrasystoles" in a.extra_systoles for a in attrs)
        == extra.str.contains("sves").sum()
    )
    assert (
        sum("ventricular extrasystoles" in a.extra_systoles for a in attrs)
        == extra.str.contains(r"(?<!s)ves", regex=True).sum()
    )
    assert sum(a.pacemaker for a in attrs) == table["scp_codes"].str.contains("'PACE'", regex=False).sum() > 0
    stage = table["infarction_stadium2"].fillna(table["infarction_stadium1"])
    assert (
        sum(a.infarction_stage == INFARCTION_STAGES[2] for a in attrs) == (stage == "Stadium III").sum() > 0
    )
    assert sum(a.infarction_stage is not None for a in attrs) == stage.notna().sum()
    assert all(
        a.available >= {"noise", "extra_systole", "stage_of_infarction", "pacemaker", "form_leads"}
        for a in attrs
    )
    assert not any({"numeric_feature", "heart_axis"} & a.available for a in attrs)


def test_every_value_of_the_excerpt_parses_or_is_counted(table: pd.DataFrame) -> None:
    report = ParseReport()
    table_attributes(table, report)
    for col in (*NOISE_COLUMNS.values(), "extra_beats"):
        filled = int(table[col].fillna("").str.strip().ne("").sum())
        assert filled > 0
        assert report.parsed[col] + report.no_leads[col] + report.unparsed[col] == filled, col
    stages = table["infarction_stadium1"].notna().sum()
    assert report.parsed["infarction_stadium"] == stages  # every real stage value is one of the six known


def test_missing_columns_leave_groups_unavailable(table: pd.DataFrame) -> None:
    old = table.drop(columns=["burst_noise", "extra_beats", "infarction_stadium1", "infarction_stadium2"])
    attrs = table_attributes(old)
    assert all(a.available == {"pacemaker", "form_leads"} for a in attrs)
    bare = table_attributes(table[["ecg_id"]])
    assert all(a.available == frozenset() for a in bare)


def test_measurements_only_on_clean_leads(table: pd.DataFrame) -> None:
    rows = table.iloc[:2].copy()
    rows["baseline_drift"] = [" , II", float("nan")]
    for col in ("static_noise", "burst_noise", "electrodes_problems", "extra_beats"):
        rows[col] = float("nan")
    m = Measurements({"rr interval": (800.0, 820.0)}, 45.0, "normal heart axis")
    noisy, clean = table_attributes(rows, measure=lambda i: m)
    assert "numeric_feature" not in noisy.available and noisy.numeric_ms == {}
    assert noisy.heart_axis == "normal heart axis"  # I and aVF are clean
    assert clean.numeric_ms == m.numeric_ms and clean.available >= {"numeric_feature", "heart_axis"}


def test_ground_truth_column_wins() -> None:
    truth = EcgAttributes(pacemaker=True, available=frozenset({"pacemaker"}))
    got = table_attributes(pd.DataFrame({"ecgqa_attributes": [truth.to_json()], "scp_codes": ["{}"]}))
    assert got == [truth]


def test_ptbxl_exposes_attributes_aligned_with_its_table(tmp_path: Path, table: pd.DataFrame) -> None:
    from encoder.datasets.ptbxl import PtbXl
    from encoder.datasets.testing import write_tiny_ptbxl

    root = write_tiny_ptbxl(tmp_path / "ptbxl", num_records=14, seed=1)  # ecg_id 13 has no diagnostic label
    db = pd.read_csv(root / "ptbxl_database.csv")
    real = table[table["baseline_drift"].notna()].head(len(db)).reset_index(drop=True)
    for col in (*NOISE_COLUMNS.values(), "extra_beats", "infarction_stadium1", "infarction_stadium2"):
        db[col] = real[col].to_numpy()
    db["static_noise"] = [" , I-AVR,  " if k == 0 else float("nan") for k in range(len(db))]
    db.to_csv(root / "ptbxl_database.csv", index=False)
    ds = PtbXl(root, task="superdiagnostic")
    attrs = ds.attributes
    assert len(attrs) == len(ds.table) < len(db)  # a record without labels is dropped from both
    by_id = dict(zip(ds.table["ecg_id"], attrs, strict=True))
    assert 13 not in by_id and 14 in by_id
    drift = dict(zip(db["ecg_id"], db["baseline_drift"], strict=True))
    assert all(a.noise["baseline drift"] == parse_lead_list(drift[e])[0] for e, a in by_id.items())
    assert len({a.noise["baseline drift"] for a in attrs}) > 2
    assert by_id[1].noise["static noise"] == leads("I", "II", "III", "aVR")
    measured = ds.measured_attributes(tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("measure-*.json"))) == len(ds.table)
    clean = [a for a in measured if not a.noisy_leads()[1]]
    assert clean and all("numeric_feature" in a.available for a in clean)
    for a in clean:
        lo, hi = a.numeric_ms["rr interval"]
        assert 500 <= lo <= hi <= 1250 and hi - lo <= 20  # a regular 50-110 bpm spike train
    assert all("numeric_feature" not in a.available for a in measured if a.noisy_leads()[1])
