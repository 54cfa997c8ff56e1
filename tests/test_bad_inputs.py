"""Every entry of the bad-input corpus through the Python API: a typed error with a clear message, or
accepted with the documented flag - never an uncaught exception, never a silent acceptance."""

from __future__ import annotations

import numpy as np
import pytest

from encoder import errors
from encoder.errors import EcgLlmError
from encoder.io import read_ecg, read_ecg_files
from encoder.preprocess import model_input


def test_corpus_is_big_enough(bad_inputs):
    names = [c.name for c in bad_inputs]
    assert len(names) >= 15 and len(set(names)) == len(names)
    required = {
        "nan_short_gap", "inf_samples", "flat_lead", "flat_record", "truncated_dat", "empty_dat", "missing_dat",
        "corrupt_header", "huge_sig_len", "fewer_signal_lines", "zero_gain", "unknown_leads", "one_lead",
        "fs_10khz", "fs_20hz", "two_seconds", "random_bytes", "path_traversal", "csv_text_columns",
    }  # fmt: skip
    assert required <= set(names)


def _run(case):
    try:
        return read_ecg(case.path, **case.read_kwargs), None
    except EcgLlmError as exc:
        return None, exc


def test_every_entry_is_refused_or_flagged(bad_inputs):
    failures = []
    for case in bad_inputs:
        ecg, exc = _run(case)  # any other exception type fails the test right here
        if case.expect == "error":
            if exc is None:
                failures.append(f"{case.name}: silently accepted")
            elif type(exc).__name__ != case.error:
                failures.append(f"{case.name}: {type(exc).__name__} instead of {case.error}: {exc}")
            elif len(str(exc)) < 30:
                failures.append(f"{case.name}: message too short: {exc}")
        else:
            if exc is not None:
                failures.append(f"{case.name}: refused ({exc}) but should be accepted with a flag")
            elif not ecg.meta.get(case.flag):
                failures.append(f"{case.name}: accepted without meta[{case.flag!r}]")
            else:
                assert ecg.signal.shape[0] == 12 and np.isfinite(ecg.signal).all()
                assert model_input(ecg, 100, 1000).shape == (12, 1000)
    assert not failures, "\n".join(failures)


def test_expected_error_names_exist(bad_inputs):
    for case in bad_inputs:
        if case.expect == "error":
            cls = getattr(errors, case.error)
            assert issubclass(cls, errors.EcgInputError)


def test_corpus_through_read_ecg_files(bad_inputs):
    """The demo path: the entry's files handed over as an upload."""
    for case in bad_inputs:
        try:
            ecgs = read_ecg_files(list(case.files), **case.read_kwargs)
        except EcgLlmError:
            assert case.expect == "error" or case.name == "path_traversal", case.name
            continue
        assert case.expect == "accept-with-flag", f"{case.name} silently accepted via read_ecg_files"
        assert ecgs and all(e.meta.get(case.flag) for e in ecgs)


def test_huge_sig_len_does_not_allocate(bad_inputs, monkeypatch):
    """The absurd header is refused before wfdb is asked to read anything."""
    import wfdb

    def boom(*a, **k):
        raise AssertionError("wfdb.rdrecord must not be called")

    monkeypatch.setattr(wfdb, "rdrecord", boom)
    case = next(c for c in bad_inputs if c.name == "huge_sig_len")
    with pytest.raises(errors.EcgTooLargeError, match="2,000,000,000"):
        read_ecg(case.path)


def test_path_traversal_never_opens_target(bad_inputs, monkeypatch):
    import builtins

    real_open = builtins.open

    def guarded(file, *a, **k):
        assert "passwd" not in str(file), "tried to open the traversal target"
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", guarded)
    for name in ("path_traversal", "absolute_path"):
        case = next(c for c in bad_inputs if c.name == name)
        with pytest.raises(errors.EcgFormatError, match="refused signal file name"):
            read_ecg(case.path)


def test_nan_repair_is_recorded_and_values_are_interpolated(bad_inputs):
    case = next(c for c in bad_inputs if c.name == "nan_short_gap")
    ecg = read_ecg(case.path)
    assert ecg.lead_mask.all()
    assert "V2" in ecg.meta["repairs"][0] and "10" in ecg.meta["repairs"][0]
    v2 = ecg.signal[7]
    # linear interpolation across the gap: between the neighbours
    lo, hi = sorted((v2[999], v2[1010]))
    assert np.all((v2[1000:1010] >= lo - 1e-6) & (v2[1000:1010] <= hi + 1e-6))


def test_huge_values_mask_the_leads(bad_inputs):
    case = next(c for c in bad_inputs if c.name == "huge_values")
    ecg = read_ecg(case.path, **case.read_kwargs)
    assert not ecg.lead_mask[5] and not ecg.lead_mask[6]
    assert ecg.meta["masked_leads"] == ["aVF", "V1"]
    assert np.all(ecg.signal[5:7] == 0)


def test_10khz_is_accepted_and_resampled(bad_inputs):
    case = next(c for c in bad_inputs if c.name == "fs_10khz")
    ecg = read_ecg(case.path, target_fs=100)
    assert ecg.fs == 100 and ecg.signal.shape == (12, 200)
    assert ecg.meta["fs_original"] == 10_000


def test_two_seconds_accepted_without_minimum(bad_inputs):
    case = next(c for c in bad_inputs if c.name == "two_seconds")
    ecg = read_ecg(case.path)
    assert ecg.duration_s == pytest.approx(2.0)
