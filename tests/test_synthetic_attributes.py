"""Synthetic cohort's ECG-QA attributes: all templates in every split, real-format columns the real parsers read back,
and the attributes really in the signals (noise on the listed leads, axis in I / aVF, stage, pacing, form leads)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from encoder.datasets.ptbxl_attributes import GROUND_TRUTH_COLUMN, ParseReport, table_attributes
from encoder.datasets.synthetic import SyntheticConfig, _sample_table, generate_cohort
from encoder.ecgqa.attributes import LEADS, NOISE_COLUMNS
from encoder.ecgqa.templates import TEMPLATES
from encoder.errors import ConfigError
from encoder.synth import real_labels
from encoder.synth.record import RecordExtras, synthesize_record

ATTRIBUTE_TYPES = {
    "scp_code",
    "noise",
    "numeric_feature",
    "extra_systole",
    "heart_axis",
    "stage_of_infarction",
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("syn_attr") / "cohort"
    cfg = SyntheticConfig(
        out_dir=str(out), num_records=150, seed=5, num_workers=1, questions_per_record=60, repeat_fraction=0.5
    )
    return generate_cohort(cfg)


def test_every_split_has_all_templates_and_attribute_types(cohort: Path) -> None:
    assert len(TEMPLATES) == 70
    for split in ("train", "valid", "test"):
        samples = [
            s
            for f in (cohort / "ecgqa/ptbxl/template" / split).glob("*.json")
            for s in json.loads(f.read_text())
        ]
        assert {s["template_id"] for s in samples} == set(range(1, 71)), split
        assert {s["attribute_type"] for s in samples} == ATTRIBUTE_TYPES, split
        for s in samples:
            t = TEMPLATES[s["template_id"]]
            assert (s["question_type"], s["attribute_type"]) == (t.question_type, t.attribute_type)


def test_real_parsers_read_back_the_ground_truth(cohort: Path) -> None:
    """The same parsers as for the real PTB-XL table, on the synthetic table's real-format columns."""
    table = pd.read_csv(cohort / "ptbxl_database.csv")
    truth = table_attributes(table)
    report = ParseReport()
    parsed = table_attributes(table.drop(columns=[GROUND_TRUTH_COLUMN]), report=report)
    for g, p in zip(truth, parsed, strict=True):
        assert p.noise == g.noise
        assert p.extra_systoles == g.extra_systoles
        assert p.infarction_stage == g.infarction_stage
        assert p.pacemaker == g.pacemaker
        assert p.form_leads == g.form_leads
    assert not report.unparseable and not report.unparsed
    # the round trip covers real content, not empty cells
    assert sum(any(any(m) for m in a.noise.values()) for a in truth) >= 10
    assert sum(bool(a.extra_systoles) for a in truth) >= 5
    assert sum(a.infarction_stage is not None for a in truth) >= 5
    assert sum(any(m) for a in truth for m in a.form_leads.values()) >= 5
    assert set(table.heart_axis) <= set(real_labels.AXIS_DEGREES)
    measured = [a for a in truth if "numeric_feature" in a.available]
    assert len(measured) > 0.5 * len(truth)
    rr_lo, rr_hi = measured[0].numeric_ms["rr interval"]
    assert 300 < rr_lo <= rr_hi < 2000


def test_label_frequencies_follow_the_real_table_sample() -> None:
    table = _sample_table(SyntheticConfig(num_records=3000, seed=0))
    sample = real_labels.load_sample()
    for col in NOISE_COLUMNS.values():
        assert abs((table[col] != "").mean() - (sample[col] != "").mean()) < 0.03, col
    staged = (table.infarction_stadium1 != "") | (table.infarction_stadium2 != "")
    real_staged = (sample.infarction_stadium1 != "") | (sample.infarction_stadium2 != "")
    assert abs(staged.mean() - real_staged.mean()) < 0.04
    assert abs((table.heart_axis_drawn == "LAD").mean() - (sample.heart_axis == "LAD").mean()) < 0.04
    # a patient's second record keeps the first one's heart (beat shape, axis)
    pairs = table[table.patient_id.duplicated(keep=False)].groupby("patient_id")
    assert len(pairs) > 100
    assert all(g.shape_seed.nunique() == 1 and g.axis_target.nunique() == 1 for _, g in pairs)


def test_train_electrode_problems_boosts_training_folds_only_and_moves_nothing_else() -> None:
    column = NOISE_COLUMNS["electrodes problems"]
    plain = _sample_table(SyntheticConfig(num_records=2000, seed=0))
    boosted = _sample_table(SyntheticConfig(num_records=2000, seed=0, train_electrode_problems=0.2))
    train = plain.strat_fold <= 8
    # every column but the electrode one is unchanged, and so is that column on folds 9 and 10
    others = [c for c in plain.columns if c != column]
    pd.testing.assert_frame_equal(plain[others], boosted[others])
    pd.testing.assert_series_equal(plain.loc[~train, column], boosted.loc[~train, column])
    flagged = boosted.loc[train, column] != ""
    assert 0.15 < flagged.mean() < 0.25 and (plain.loc[train, column] != "").mean() < 0.01
    assert set(boosted.loc[train, column][flagged]) <= set(real_labels.real_cells(column))
    with pytest.raises(ConfigError, match="train_electrode_problems"):
        generate_cohort(SyntheticConfig(out_dir="unused", num_records=5, train_electrode_problems=1.5))


# ------------------------------------------------------------------------------------------ signal-level checks


def _record(codes: set[str], seed: int = 0, **extras) -> object:
    return synthesize_record(
        frozenset(codes), np.random.default_rng(seed), noise_scale=0.0, extras=RecordExtras(**extras)
    )


def _band_power(signal: np.ndarray, lo: float, hi: float, fs: float = 500.0) -> np.ndarray:
    spec = np.abs(np.fft.rfft(signal - signal.mean(axis=1, keepdims=True), axis=1)) ** 2
    f = np.fft.rfftfreq(signal.shape[1], 1 / fs)
    return spec[:, (f >= lo) & (f <= hi)].sum(axis=1)


@pytest.mark.parametrize(
    "noise_type, band",
    [("static noise", (45.0, 150.0)), ("baseline drift", (0.05, 0.6)), ("burst noise", (45.0, 100.0))],
)
def test_annotated_noise_is_on_the_listed_leads(noise_type: str, band: tuple[float, float]) -> None:
    mask = tuple(lead in ("V2", "V3") for lead in LEADS)
    noisy = _record({"NORM", "SR"}, noise={noise_type: mask}).signal
    power = _band_power(noisy, *band)
    listed, chest_others = power[[7, 8]], power[[6, 9, 10, 11]]
    assert listed.min() > 10 * chest_others.max(), power


def test_electrode_problem_shows_as_jumps_on_its_lead() -> None:
    """Same seed with and without the annotation: the difference is the rendered problem, on V5 only."""
    mask = tuple(lead == "V5" for lead in LEADS)
    diff = (
        _record({"NORM", "SR"}, noise={"electrodes problems": mask}).signal - _record({"NORM", "SR"}).signal
    )
    jump = np.abs(np.diff(diff, axis=1)).max(axis=1)
    assert jump[LEADS.index("V5")] > 0.4 and np.delete(jump, LEADS.index("V5")).max() < 1e-9


@pytest.mark.parametrize(
    "degrees, sign_i, sign_avf", [(45.0, 1, 1), (-60.0, 1, -1), (120.0, -1, 1), (-135.0, -1, -1)]
)
def test_heart_axis_is_set_in_the_limb_leads(degrees: float, sign_i: int, sign_avf: int) -> None:
    for seed in range(3):
        rec = _record({"NORM", "SR"}, seed=seed, axis_deg=degrees)
        fs = rec.fs
        net = np.zeros(12)
        for onset in rec.beat_onsets:
            a = int(onset * fs)
            if a >= 10 and a + 60 < rec.signal.shape[1]:
                seg = rec.signal[:, a : a + int(0.1 * fs)]
                net += seg.sum(axis=1) - seg.shape[1] * rec.signal[:, a - 10 : a].mean(axis=1)
        assert np.sign(net[LEADS.index("I")]) == sign_i and np.sign(net[LEADS.index("aVF")]) == sign_avf, seed
        assert abs((rec.axis_deg - degrees + 180.0) % 360.0 - 180.0) < 10.0


def test_pacemaker_records_have_pacing_spikes() -> None:
    paced = _record({"NORM", "SR", "PACE"}).signal
    plain = _record({"NORM", "SR"}).signal
    assert np.abs(np.diff(paced, axis=1)).max() > 5 * np.abs(np.diff(plain, axis=1)).max()


def _st_and_t(rec, leads: list[int]) -> tuple[float, float]:
    """Mean ST level (60-100 ms after the QRS onset + QRS) and T extreme of the given leads over beats, in mV."""
    fs, qrs = rec.fs, rec.physiology.qrs
    st, tw = [], []
    for onset in rec.beat_onsets[1:-1]:
        a = int(onset * fs)
        base = rec.signal[leads, a - 20 : a - 5].mean(axis=1)
        st.append(
            rec.signal[leads, a + int((qrs + 0.04) * fs) : a + int((qrs + 0.08) * fs)].mean(axis=1) - base
        )
        t_seg = rec.signal[leads, a + int((qrs + 0.12) * fs) : a + int((qrs + 0.3) * fs)] - base[:, None]
        tw.append(t_seg.mean(axis=1))
    return float(np.mean(st)), float(np.mean(tw))


def test_infarction_stages_change_st_and_t_over_the_wall() -> None:
    inferior = [LEADS.index(x) for x in ("II", "III", "aVF")]
    for seed in range(3):
        kw = dict(seed=seed, axis_deg=45.0)
        early = _st_and_t(
            _record({"IMI", "SR"}, infarction_stage="early stage of myocardial infarction", **kw), inferior
        )
        middle = _st_and_t(
            _record({"IMI", "SR"}, infarction_stage="middle stage of myocardial infarction", **kw), inferior
        )
        old = _st_and_t(
            _record({"IMI", "SR"}, infarction_stage="old stage of myocardial infarction", **kw), inferior
        )
        assert early[0] > old[0] + 0.05, (early, old)  # acute ST elevation
        assert middle[1] < old[1] - 0.03 and middle[1] < early[1] - 0.03, (early, middle, old)  # T inverted


def test_reported_form_leads_are_where_the_change_is() -> None:
    found = 0
    for seed in range(4):
        rec = _record({"ISC_", "STD_", "SR"}, seed=seed)
        mask = np.array(rec.form_leads["STD_"])
        if mask.any() and not mask.all():
            found += 1
            st = np.array([_st_and_t(rec, [i])[0] for i in range(12)])
            assert st[mask].mean() < st[~mask].mean() - 0.03, (mask, st)
    assert found >= 2


def test_a_patients_records_share_the_beat_shape() -> None:
    def mean_beat(seed: int, shape_seed: int) -> np.ndarray:
        rec = synthesize_record(
            frozenset({"NORM", "SR"}), np.random.default_rng(seed), noise_scale=0.0, shape_seed=shape_seed
        )
        fs = rec.fs
        beats = [rec.signal[:, int(o * fs) - 50 : int(o * fs) + 150] for o in rec.beat_onsets[1:-1]]
        return np.mean(beats, axis=0).ravel()

    same = np.corrcoef(mean_beat(1, 7), mean_beat(2, 7))[0, 1]
    other = np.corrcoef(mean_beat(1, 7), mean_beat(2, 8))[0, 1]
    assert same > 0.95 and same > other
