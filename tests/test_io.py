"""read_ecg on the real fixtures and on every supported format, plus one test per validation rule."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb
from bad_inputs.corpus import LEADS, ecg_like, write_wfdb

from encoder import errors
from encoder.io import read_ecg, read_ecg_files
from encoder.leads import CANONICAL_LEADS

REPO = Path(__file__).resolve().parents[1]
S0010 = REPO / "encoder" / "resources" / "wfdb" / "s0010_re"
MITDB_100 = REPO / "tests" / "data" / "wfdb" / "100"


# ------------------------------------------------------------------ real fixtures


@pytest.fixture(scope="module")
def s0010():
    return read_ecg(S0010)


def test_s0010_loads_as_12_canonical_leads(s0010):
    assert s0010.signal.shape == (12, 38400) and s0010.signal.dtype == np.float32
    assert s0010.fs == 1000 and s0010.duration_s == pytest.approx(38.4)
    assert s0010.lead_mask.all() and s0010.leads == CANONICAL_LEADS
    assert s0010.meta["dropped_leads"] == ["vx", "vy", "vz"]
    assert any("Myocardial infarction" in c for c in s0010.meta["comments"])
    # values equal wfdb's own physical signal for lead v6 (last 12-lead channel), in mV
    ref = wfdb.rdrecord(str(S0010), channels=[11]).p_signal[:, 0]
    np.testing.assert_allclose(s0010.signal[11], ref, rtol=1e-6, atol=1e-6)
    assert 0.05 < np.abs(s0010.signal).max() < 20  # plausible mV


@pytest.mark.parametrize("target_fs,length", [(500, 19200), (100, 3840)])
def test_s0010_resamples(target_fs, length, s0010):
    ecg = read_ecg(S0010.with_suffix(".hea"), target_fs=target_fs)
    assert ecg.fs == target_fs and ecg.signal.shape == (12, length)
    assert ecg.meta["fs_original"] == 1000
    # the resampled lead II tracks the original (compare at the shared time points)
    step = 1000 // target_fs
    corr = np.corrcoef(ecg.signal[1, 100:-100], s0010.signal[1, ::step][100:-100])[0, 1]
    assert corr > 0.95


def test_s0010_by_dat_path_and_without_frank_file(tmp_path):
    assert read_ecg(S0010.with_suffix(".dat")).lead_mask.all()
    for ext in (".hea", ".dat"):  # the .xyz (Frank leads) is only needed for dropped channels
        shutil.copy(S0010.with_suffix(ext), tmp_path / f"s0010_re{ext}")
    assert read_ecg(tmp_path / "s0010_re").lead_mask.all()


def test_mitdb_100_masks_10_leads():
    ecg = read_ecg(MITDB_100)  # format 212, 2 signals MLII/V5 at 360 Hz
    assert ecg.signal.shape == (12, 650000) and ecg.fs == 360
    assert ecg.present_leads == ["II", "V5"]
    assert ecg.lead_mask.sum() == 2 and np.all(ecg.signal[~ecg.lead_mask] == 0)
    assert len(ecg.meta["missing_leads"]) == 10
    ref = wfdb.rdrecord(str(MITDB_100), sampto=1000).p_signal
    np.testing.assert_allclose(ecg.signal[1, :1000], ref[:, 0], atol=1e-6)
    np.testing.assert_allclose(ecg.signal[10, :1000], ref[:, 1], atol=1e-6)


def test_mitdb_100_refused_where_12_leads_required():
    with pytest.raises(errors.EcgLeadError, match="at least 12"):
        read_ecg(MITDB_100, min_leads=12)


def test_mitdb_100_resampled_to_100hz():
    ecg = read_ecg(MITDB_100, target_fs=100)
    assert ecg.fs == 100 and ecg.signal.shape == (12, int(np.ceil(650000 * 100 / 360)))
    assert np.all(ecg.signal[~ecg.lead_mask] == 0)


# ------------------------------------------------------------------ formats


def test_npy_both_orientations(tmp_path):
    sig = ecg_like(12, 1000, 100).astype(np.float32)
    np.save(tmp_path / "a.npy", sig)
    np.save(tmp_path / "b.npy", sig.T)
    a = read_ecg(tmp_path / "a.npy", fs=100)
    b = read_ecg(tmp_path / "b.npy", fs=100)
    np.testing.assert_array_equal(a.signal, b.signal)
    np.testing.assert_allclose(a.signal, sig, atol=1e-6)
    with pytest.raises(errors.EcgSamplingRateError, match="pass fs"):
        read_ecg(tmp_path / "a.npy")


def test_array_with_lead_names_in_any_order_and_units():
    sig = ecg_like(3, 1000, 250)
    ecg = read_ecg(sig * 1000, fs=250, lead_names=["v6", "AVR", "i"], units="uV")
    np.testing.assert_allclose(ecg.signal[11], sig[0], atol=1e-5)  # V6
    np.testing.assert_allclose(ecg.signal[3], sig[1], atol=1e-5)  # aVR
    np.testing.assert_allclose(ecg.signal[0], sig[2], atol=1e-5)  # I
    assert ecg.present_leads == ["I", "aVR", "V6"]
    with pytest.raises(errors.EcgFormatError, match="unit"):
        read_ecg(sig, fs=250, lead_names=["I", "II", "III"], units="mmHg")
    with pytest.raises(errors.EcgLeadError, match="no axis of length 12"):
        read_ecg(sig, fs=250)


def test_csv_with_time_column(tmp_path):
    fs = 250
    sig = ecg_like(12, 2500, fs)
    header = "time," + ",".join(["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"])
    rows = [f"{i / fs:.6f}," + ",".join(f"{v:.5f}" for v in sig[:, i]) for i in range(sig.shape[1])]
    (tmp_path / "r.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    ecg = read_ecg(tmp_path / "r.csv")
    assert ecg.fs == pytest.approx(fs) and ecg.lead_mask.all()
    np.testing.assert_allclose(ecg.signal, sig, atol=1e-4)
    assert any("time column" in w for w in ecg.meta["warnings"])


def test_csv_semicolon_no_time_needs_fs(tmp_path):
    sig = ecg_like(2, 500, 100)
    text = "II;V1\n" + "\n".join(f"{a:.4f};{b:.4f}" for a, b in sig.T)
    (tmp_path / "r.csv").write_text(text)
    ecg = read_ecg(tmp_path / "r.csv", fs=100)
    assert ecg.present_leads == ["II", "V1"]
    with pytest.raises(errors.EcgSamplingRateError):
        read_ecg(tmp_path / "r.csv")


def test_csv_without_header_row(tmp_path):
    (tmp_path / "r.csv").write_text("0.1,0.2\n0.3,0.4\n")
    with pytest.raises(errors.EcgFormatError, match="header row"):
        read_ecg(tmp_path / "r.csv", fs=100)


def test_wfdb_units_converted_to_mv(tmp_path):
    sig = ecg_like(12, 1000, 500)
    hea_uv, _ = write_wfdb(tmp_path / "uv", "r", sig * 1000, 500, LEADS, gain=1, units="uV")
    hea_v, _ = write_wfdb(tmp_path / "v", "r", sig / 1000, 500, LEADS, gain=1_000_000, units="V")
    hea_mv, _ = write_wfdb(tmp_path / "mv", "r", sig, 500, LEADS, gain=1000, units="mV")
    ref = read_ecg(hea_mv).signal
    np.testing.assert_allclose(read_ecg(hea_uv).signal, ref, atol=2e-3)
    np.testing.assert_allclose(read_ecg(hea_v).signal, ref, atol=2e-3)
    np.testing.assert_allclose(ref, sig, atol=1e-3)


def test_wfdb_aliases_and_order(tmp_path):
    sig = ecg_like(4, 1000, 500)
    hea, _ = write_wfdb(tmp_path, "r", sig, 500, ["V5", "avf", "MLII", "vx"])
    ecg = read_ecg(hea)
    assert ecg.present_leads == ["II", "aVF", "V5"]
    np.testing.assert_allclose(ecg.signal[10], sig[0], atol=1e-3)  # V5 lands on its own row, never shifted
    np.testing.assert_allclose(ecg.signal[1], sig[2], atol=1e-3)
    assert ecg.meta["dropped_leads"] == ["vx"]


def test_wfdb_lead_names_override(tmp_path):
    sig = ecg_like(2, 1000, 500)
    hea, _ = write_wfdb(tmp_path, "r", sig, 500, ["ECG1", "ECG2"])
    with pytest.raises(errors.EcgLeadError, match="ECG1"):
        read_ecg(hea)
    assert read_ecg(hea, lead_names=["I", "II"]).present_leads == ["I", "II"]


def test_fs_override_warns(tmp_path):
    hea, _ = write_wfdb(tmp_path, "r", ecg_like(12, 1000, 500), 500, LEADS)
    ecg = read_ecg(hea, fs=250)
    assert ecg.fs == 250 and any("overrides" in w for w in ecg.meta["warnings"])


def test_min_duration(tmp_path):
    hea, _ = write_wfdb(tmp_path, "r", ecg_like(12, 1000, 500), 500, LEADS)
    assert read_ecg(hea, min_duration_s=2.0).duration_s == 2.0
    with pytest.raises(errors.EcgTooShortError, match="2.00 s"):
        read_ecg(hea, min_duration_s=2.5)
    with pytest.raises(errors.EcgTooShortError):
        read_ecg(np.zeros((12, 0)), fs=500)


def test_missing_paths(tmp_path):
    with pytest.raises(errors.EcgFileMissingError):
        read_ecg(tmp_path / "nope")
    with pytest.raises(errors.EcgFileMissingError):
        read_ecg(tmp_path / "nope.hea")
    with pytest.raises(errors.EcgFileMissingError):
        read_ecg(tmp_path / "nope.npy", fs=100)
    with pytest.raises(errors.EcgFormatError, match="folder"):
        read_ecg(tmp_path)


def test_header_without_sig_len_reads_file_size(tmp_path):
    sig = ecg_like(12, 1000, 500)
    hea, _ = write_wfdb(tmp_path, "r", sig, 500, LEADS)
    hea.write_text(hea.read_text().replace("r 12 500 1000", "r 12 500"))
    ecg = read_ecg(hea)
    assert ecg.num_samples == 1000 and any("signal length" in w for w in ecg.meta["warnings"])


def test_header_gain_absent_warns(tmp_path):
    sig = ecg_like(1, 1000, 500)
    hea, _ = write_wfdb(tmp_path, "r", sig, 500, ["II"], gain=200)
    hea.write_text("r 1 500 1000\nr.dat 16\n")
    with pytest.raises(errors.EcgLeadError, match="unnamed"):
        read_ecg(hea)
    ecg = read_ecg(hea, lead_names=["II"])
    assert any("no ADC gain" in w for w in ecg.meta["warnings"])


def test_max_file_bytes_for_wfdb(tmp_path):
    hea, _ = write_wfdb(tmp_path, "r", ecg_like(12, 1000, 500), 500, LEADS)
    with pytest.raises(errors.EcgTooLargeError):
        read_ecg(hea, max_file_bytes=10_000)


def test_invalid_min_leads():
    with pytest.raises(errors.EcgLeadError):
        read_ecg(np.zeros((12, 10)), fs=100, min_leads=13)


def test_errors_are_one_family():
    assert issubclass(errors.EcgFileMissingError, FileNotFoundError)
    for cls in (errors.EcgFormatError, errors.EcgSignalError, errors.EcgLeadError, errors.EcgTooLargeError):
        assert issubclass(cls, errors.EcgLlmError) and issubclass(cls, ValueError)


# ------------------------------------------------------------------ uploads


def test_read_ecg_files_groups_uploads_from_different_folders(tmp_path):
    (tmp_path / "u1").mkdir()
    (tmp_path / "u2").mkdir()
    shutil.copy(S0010.with_suffix(".hea"), tmp_path / "u1" / "s0010_re.hea")
    shutil.copy(S0010.with_suffix(".dat"), tmp_path / "u2" / "s0010_re.dat")
    np.save(tmp_path / "u2" / "other.npy", ecg_like(12, 1000, 100))
    ecgs = read_ecg_files(
        [tmp_path / "u1" / "s0010_re.hea", tmp_path / "u2" / "s0010_re.dat", tmp_path / "u2" / "other.npy"],
        fs=100,
    )
    assert [e.meta["record_name"] for e in ecgs] == ["other", "s0010_re"]
    assert ecgs[1].lead_mask.all() and ecgs[1].fs == 100  # caller's fs overrides (warned)
    ecgs = read_ecg_files([tmp_path / "u1" / "s0010_re.hea", tmp_path / "u2" / "s0010_re.dat"], target_fs=100)
    assert ecgs[0].fs == 100 and ecgs[0].meta["source"].endswith("s0010_re.hea")


def test_read_ecg_files_clear_errors(tmp_path):
    shutil.copy(S0010.with_suffix(".hea"), tmp_path / "s0010_re.hea")
    with pytest.raises(errors.EcgFileMissingError, match="s0010_re.dat.*upload it together"):
        read_ecg_files([tmp_path / "s0010_re.hea"])
    shutil.copy(S0010.with_suffix(".dat"), tmp_path / "lonely.dat")
    with pytest.raises(errors.EcgFileMissingError, match="without a matching WFDB header"):
        read_ecg_files([tmp_path / "lonely.dat"])
    with pytest.raises(errors.EcgFileMissingError):
        read_ecg_files([])
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(errors.EcgFormatError, match="Unsupported"):
        read_ecg_files([tmp_path / "x.txt"])


@pytest.mark.parametrize(
    "name,canon",
    [("AVR", "aVR"), ("avr", "aVR"), ("aVR", "aVR"), ("i", "I"), ("V1", "V1"), ("v6", "V6"), ("MLII", "II"),
     ("Lead II", "II"), ("lead_iii", "III"), ("DII", "II"), ("V-2", "V2"), (" aVF ", "aVF")],
)  # fmt: skip
def test_lead_aliases(name, canon):
    from encoder.leads import canonical_lead_name, is_known_extra_lead

    assert canonical_lead_name(name) == canon
    assert not is_known_extra_lead(name)


@pytest.mark.parametrize("name", ["vx", "VY", "z", "Resp", "SpO2"])
def test_extra_leads_are_known(name):
    from encoder.leads import canonical_lead_name, is_known_extra_lead

    assert canonical_lead_name(name) is None and is_known_extra_lead(name)


def test_read_ecg_files_only_sees_uploaded_files(tmp_path):
    """A .hea uploaded alone cannot pull in a .dat that happens to sit next to it."""
    for ext in (".hea", ".dat"):
        shutil.copy(S0010.with_suffix(ext), tmp_path / f"s0010_re{ext}")
    with pytest.raises(errors.EcgFileMissingError, match="upload it together"):
        read_ecg_files([tmp_path / "s0010_re.hea"])
    assert len(read_ecg_files([tmp_path / "s0010_re.hea", tmp_path / "s0010_re.dat"])) == 1


@pytest.mark.parametrize("fmt", ["16", "212", "80", "24", "32"])
def test_wfdb_formats_round_trip(tmp_path, fmt):
    """Any storage format wfdb writes reads back to the same mV values (up to the ADC step)."""
    sig = ecg_like(3, 1000, 250, seed=4)  # (3, T) mV
    gain = 50.0 if fmt == "80" else 1000.0  # fit the 8-bit ADC range
    wfdb.wrsamp(
        "r", fs=250, units=["mV"] * 3, sig_name=["I", "II", "V1"], p_signal=sig.T, fmt=[fmt] * 3,
        adc_gain=[gain] * 3, baseline=[0] * 3, write_dir=str(tmp_path),
    )  # fmt: skip
    ecg = read_ecg(tmp_path / "r")
    assert ecg.present_leads == ["I", "II", "V1"]
    np.testing.assert_allclose(ecg.signal[[0, 1, 6]], sig, atol=1.5 / gain)
