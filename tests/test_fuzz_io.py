"""Property-based fuzzing of read_ecg: whatever the header fields or the samples, only EcgLlmError subclasses
may escape, and anything accepted is a finite (12, T) float32 record with a consistent lead mask."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from encoder.errors import EcgLlmError
from encoder.io import read_ecg
from encoder.leads import CANONICAL_LEADS as LEADS

# CI: 100 fixed (derandomized) examples per test. For a longer random hunt: ECGLLM_FUZZ_EXAMPLES=5000 pytest ...
_EXAMPLES = os.environ.get("ECGLLM_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_EXAMPLES or 100),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=_EXAMPLES is None,
    database=None,
)

LEAD_NAMES = st.one_of(
    st.sampled_from(
        ["I", "ii", "III", "AVR", "avl", "aVF", "V1", "v2", "V3", "V4", "V5", "V6", "MLII", "vx", "resp"]
    ),
    st.text(alphabet=st.characters(codec="ascii", exclude_characters="\r\n\x00"), max_size=8),
)
NUMBER_TEXT = st.one_of(
    st.integers(-5, 3_000_000_000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: f"{f:g}"),
    st.sampled_from(["", "abc", "1e-9", "0", "-1", "200", "1000", "360/0.5", "nan", "inf"]),
)
FORMATS = st.sampled_from(["16", "212", "8", "80", "24", "32", "61", "160", "310", "311", "516", "999", "x"])


def _accepted_ok(ecg) -> None:
    assert ecg.signal.dtype == np.float32 and ecg.signal.ndim == 2 and ecg.signal.shape[0] == 12
    assert np.isfinite(ecg.signal).all()
    assert ecg.lead_mask.dtype == bool and ecg.lead_mask.any()
    assert np.all(ecg.signal[~ecg.lead_mask] == 0)
    assert 50 <= ecg.fs <= 10_000


def _read_and_check(header: Path) -> None:
    """Only an EcgLlmError with a message may escape; an accepted record must be sane."""
    try:
        ecg = read_ecg(header, max_file_bytes=1_000_000)
    except EcgLlmError as exc:
        assert str(exc)
        event(type(exc).__name__)
        return
    event("accepted")
    _accepted_ok(ecg)


@FUZZ
@given(
    n_sig=st.one_of(st.integers(0, 14), st.sampled_from(["x", "-1", "99999"])),
    fs=NUMBER_TEXT,
    sig_len=NUMBER_TEXT,
    n_lines=st.integers(0, 14),
    fmt=FORMATS,
    gain=NUMBER_TEXT,
    units=st.sampled_from(["mV", "uV", "V", "mmHg", "", "NU"]),
    names=st.lists(LEAD_NAMES, min_size=14, max_size=14),
    data=st.one_of(st.binary(max_size=3000), st.integers(0, 50_000).map(lambda n: bytes(n))),
)
def test_fuzz_wfdb_header_fields(n_sig, fs, sig_len, n_lines, fmt, gain, units, names, data):
    with tempfile.TemporaryDirectory() as tmp:
        lines = [f"rec {n_sig} {fs} {sig_len}".rstrip()]
        for i in range(n_lines):
            lines.append(f"rec.dat {fmt} {gain}/{units} 16 0 0 0 0 {names[i]}".rstrip())
        (Path(tmp) / "rec.hea").write_text("\n".join(lines) + "\n")
        (Path(tmp) / "rec.dat").write_bytes(data)
        _read_and_check(Path(tmp) / "rec.hea")


def mostly(valid, weird):
    """Valid about 3 times in 4, so several fields are rarely broken at once and deep code paths are reached."""
    return st.one_of(st.just(valid), st.just(valid), st.just(valid), weird)


@FUZZ
@given(
    n_sig=mostly(12, st.one_of(st.integers(0, 14), st.just("x"))),
    fs=mostly("500", NUMBER_TEXT),
    sig_len=mostly("500", NUMBER_TEXT),
    n_lines=mostly(12, st.integers(0, 14)),
    fmt=mostly("16", FORMATS),
    gain=mostly("200", NUMBER_TEXT),
    baseline=mostly("", st.sampled_from(["(0)", "(-5)", "(99999999)", "(x)"])),
    units=mostly("mV", st.sampled_from(["uV", "V", "mmHg", "", "NU"])),
    names=mostly(list(LEADS), st.lists(LEAD_NAMES, min_size=14, max_size=14)),
    samples=hnp.arrays(np.int16, (500, 12), elements=st.integers(-32768, 32767)),
    cut=mostly(None, st.integers(0, 12_000)),
)
def test_fuzz_wfdb_mutated_valid_record(
    n_sig, fs, sig_len, n_lines, fmt, gain, baseline, units, names, samples, cut
):
    """Start from a valid 12-lead format-16 record and break a few fields (header and data)."""
    names = list(names) + ["V6", "V6"]
    with tempfile.TemporaryDirectory() as tmp:
        lines = [f"rec {n_sig} {fs} {sig_len}".rstrip()]
        for i in range(n_lines):
            lines.append(f"rec.dat {fmt} {gain}{baseline}/{units} 16 0 0 0 0 {names[i]}".rstrip())
        (Path(tmp) / "rec.hea").write_text("\n".join(lines) + "\n")
        data = samples.astype("<i2").tobytes()
        (Path(tmp) / "rec.dat").write_bytes(data if cut is None else data[:cut])
        _read_and_check(Path(tmp) / "rec.hea")


@FUZZ
@given(text=st.text(max_size=400), data=st.binary(max_size=500))
def test_fuzz_header_text(text, data):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "r.hea").write_text(text, encoding="utf-8", errors="surrogatepass")
        (Path(tmp) / "r.dat").write_bytes(data)
        try:
            ecg = read_ecg(Path(tmp) / "r")
        except EcgLlmError as exc:
            event(type(exc).__name__)
            return
        event("accepted")
        _accepted_ok(ecg)


ELEMENTS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, 1.0, -1.0, 1e30, -1e300, float("nan"), float("inf")]),
)


@FUZZ
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from([np.float64, np.float32, np.int16, np.int64, np.uint8, np.bool_, np.complex64]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=40),
        elements=None,
    ),
    fs=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([100.0, 500.0])),
    use_names=st.booleans(),
    names=st.lists(LEAD_NAMES, min_size=0, max_size=14),
    target_fs=st.sampled_from([None, 100.0, 500.0]),
)
def test_fuzz_arrays(arr, fs, use_names, names, target_fs):
    try:
        ecg = read_ecg(arr, fs=fs, lead_names=names if use_names else None, target_fs=target_fs)
    except EcgLlmError as exc:
        event(type(exc).__name__)
        return
    event("accepted")
    _accepted_ok(ecg)


@FUZZ
@given(
    values=hnp.arrays(np.float64, st.tuples(st.integers(1, 200), st.just(12)), elements=ELEMENTS),
    fs=st.sampled_from([50.0, 100.0, 360.0, 1000.0]),
)
def test_fuzz_signal_values(values, fs):
    """NaN / inf / huge values anywhere: repaired, masked or refused - never NaN in the output."""
    try:
        ecg = read_ecg(values, fs=fs)
    except EcgLlmError as exc:
        event(type(exc).__name__)
        return
    event("accepted")
    _accepted_ok(ecg)
    assert len(ecg.meta["repairs"]) >= int((~np.isfinite(values)).any(axis=0).sum() > 0)


@FUZZ
@given(
    header=st.lists(
        st.one_of(LEAD_NAMES, st.sampled_from(["time", "time_ms", "index", ""])), min_size=1, max_size=5
    ),
    cells=st.lists(
        st.lists(
            st.one_of(st.floats().map(repr), st.sampled_from(["", "nan", "x", "1e999"])),
            min_size=1,
            max_size=6,
        ),
        max_size=60,
    ),
    delimiter=st.sampled_from([",", ";", "\t"]),
    fs=st.sampled_from([None, 100.0]),
)
def test_fuzz_csv(header, cells, delimiter, fs):
    text = delimiter.join(header) + "\n" + "\n".join(delimiter.join(row) for row in cells)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.csv"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            ecg = read_ecg(path, fs=fs)
        except EcgLlmError as exc:
            event(type(exc).__name__)
            return
        event("accepted")
        _accepted_ok(ecg)
