"""WFDB records: header parsed and checked against the real file sizes before any sample is read."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from encoder.errors import (
    EcgFileMissingError,
    EcgFormatError,
    EcgInputError,
    EcgLeadError,
    EcgSamplingRateError,
    EcgSignalError,
    EcgTooLargeError,
    EcgTooShortError,
)
from encoder.io.common import (
    MAX_GAIN_PER_MV,
    MAX_HEADER_BYTES,
    MAX_SIGNALS,
    MIN_GAIN_PER_MV,
    WFDB_BYTES_PER_SAMPLE,
    _check_fs,
    _check_size,
    _is_number,
    _map_leads,
    _Raw,
    _unit_scale,
)
from encoder.leads import CANONICAL_LEADS

_SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")


def _read_header_text(hea: Path) -> str:
    """The header as text, refusing binary junk and huge files."""
    size = hea.stat().st_size
    if size == 0:
        raise EcgFormatError(f"WFDB header {hea.name} is empty.")
    if size > MAX_HEADER_BYTES:
        raise EcgTooLargeError(
            f"WFDB header {hea.name} is {size:,} bytes; a real header is a few kB. Refused."
        )
    raw = hea.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EcgFormatError(
            f"{hea.name} is not a WFDB header: it contains binary (non-text) bytes. Is it the right file?"
        ) from None
    if any((ord(ch) < 32 and ch not in "\t\n\r") or ord(ch) == 127 for ch in text):
        raise EcgFormatError(
            f"{hea.name} is not a WFDB header: it contains control characters (binary data)."
        )
    return text


def _header_lines(text: str) -> list[str]:
    """Non-empty, non-comment lines of a header."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def _signal_file_names(text: str, hea: Path) -> list[str]:
    """The signal file names of a header, refusing anything but plain names in the header's folder."""
    lines = _header_lines(text)
    names = []
    for line in lines[1:]:
        name = line.split()[0]
        if name == "~":
            raise EcgFormatError(f"{hea.name}: signals without a data file ('~') are not supported.")
        if (
            "/" in name
            or "\\" in name
            or ":" in name
            or name in (".", "..")
            or os.path.isabs(name)
            or not _SAFE_FILE_NAME.match(name)
        ):
            raise EcgFormatError(
                f"{hea.name}: refused signal file name {name!r}. WFDB signal files must be plain file names "
                "in the same folder as the header (no paths, no '..')."
            )
        names.append(name)
    return names


def _parse_and_check_header(hea: Path) -> tuple[Any, str, list[str]]:
    """Check the header text, then parse it with wfdb. Returns (wfdb Record, header text, signal file names)."""
    text = _read_header_text(hea)
    lines = _header_lines(text)
    if not lines:
        raise EcgFormatError(f"WFDB header {hea.name} has no record line (only comments or blank lines).")
    tokens = lines[0].split()
    if len(tokens) < 2:
        raise EcgFormatError(
            f"{hea.name}: corrupt record line {lines[0][:80]!r}; expected 'NAME N_SIG FS SIG_LEN'."
        )
    if "/" in tokens[0]:
        raise EcgFormatError(f"{hea.name}: multi-segment WFDB records are not supported; read each segment.")
    try:
        n_sig = int(tokens[1])
    except ValueError:
        raise EcgFormatError(
            f"{hea.name}: corrupt WFDB header: the record line {lines[0][:80]!r} should read "
            "'NAME N_SIG FS SIG_LEN' (the number of signals must be an integer)."
        ) from None
    if n_sig <= 0:
        raise EcgLeadError(f"{hea.name} declares {n_sig} signals: there is no ECG lead to read.")
    if n_sig > MAX_SIGNALS:
        raise EcgFormatError(
            f"{hea.name} declares {n_sig} signals (more than {MAX_SIGNALS}); corrupt header?"
        )
    n_lines = len(lines) - 1
    if n_lines != n_sig:
        which = "fewer" if n_lines < n_sig else "more"
        raise EcgFormatError(
            f"{hea.name} declares {n_sig} signals but has {n_lines} signal line(s) ({which} than declared): "
            "the header is truncated or corrupt."
        )
    file_names = _signal_file_names(text, hea)
    try:
        import wfdb

        record = wfdb.rdheader(str(hea.with_suffix("")))
    except Exception as exc:  # wfdb raises many types on malformed text
        raise EcgFormatError(f"{hea.name}: corrupt WFDB header ({type(exc).__name__}: {exc}).") from None
    if getattr(record, "n_sig", None) != n_sig or len(getattr(record, "file_name", None) or []) != n_sig:
        raise EcgFormatError(f"{hea.name}: corrupt WFDB header (signal lines could not be parsed).")
    return record, text, file_names


def _raw_gain_tokens(text: str) -> list[str | None]:
    """The ADC gain of each signal line as written (None when the field is absent)."""
    gains: list[str | None] = []
    for line in _header_lines(text)[1:]:
        tokens = line.split()
        gains.append(re.split(r"[(/]", tokens[2], maxsplit=1)[0] if len(tokens) >= 3 else None)
    return gains


def _looks_like_text(head: bytes) -> bool:
    """True for data that is printable ASCII with whitespace (a CSV/text file renamed .dat)."""
    if len(head) < 16:
        return False
    printable = all(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return printable and (b"\n" in head or b" " in head or b"," in head)


def _read_wfdb(
    hea: Path,
    fs: float | None,
    lead_names: Sequence[str] | None,
    min_leads: int,
    min_duration_s: float | None,
    max_file_bytes: int,
) -> _Raw:
    """Check header, leads, per-signal fields and data-file sizes, then read only the standard leads."""
    where = hea.name
    _check_size(hea, max_file_bytes)
    record, text, file_names = _parse_and_check_header(hea)
    warnings: list[str] = []
    header_tokens = _header_lines(text)[0].split()
    fs = _header_fs(record, header_tokens, fs, where, warnings)
    names = list(lead_names) if lead_names is not None else [str(n or "") for n in (record.sig_name or [])]
    mapping, dropped = _standard_leads(names, record.n_sig, min_leads, where)
    unit_scales = _check_signal_lines(record, text, names, mapping, where, warnings)
    sig_len = _check_data_files(hea, record, header_tokens, file_names, mapping, max_file_bytes, warnings)
    if min_duration_s is not None and sig_len / fs < min_duration_s:
        raise EcgTooShortError(
            f"{where} is {sig_len / fs:.2f} s long; at least {min_duration_s:g} s is required."
        )
    keep = sorted(mapping)
    data = _decode(hea, record, keep, sig_len)  # (T, K)
    signal = data.T * np.array([unit_scales[i] for i in keep])[:, None]  # (K, T) mV
    meta = {
        "source": str(hea),
        "format": "wfdb",
        "record_name": hea.stem,
        "comments": [str(c) for c in (record.comments or [])],
        "source_leads": names,
        "dropped_leads": dropped,
        "warnings": warnings,
        "units": [record.units[i] for i in keep] if record.units else None,
    }
    return _Raw(signal=signal, names=[names[i] for i in keep], fs=fs, meta=meta)


def _header_fs(
    record: Any, header_tokens: list[str], fs: float | None, where: str, warnings: list[str]
) -> float:
    """The sampling rate: the header's, unless the caller overrides it (with a warning when they differ)."""
    header_fs = float(record.fs) if len(header_tokens) >= 3 and record.fs is not None else None
    if fs is not None:
        fs = _check_fs(float(fs), "sampling rate you passed")
        if header_fs is not None and not math.isclose(fs, header_fs, rel_tol=1e-6):
            warnings.append(
                f"sampling rate {fs:g} Hz passed by the caller overrides the header's {header_fs:g} Hz"
            )
        return fs
    if header_fs is None:
        raise EcgSamplingRateError(
            f"{where} gives no sampling rate; pass fs= (WFDB would silently assume 250 Hz)."
        )
    return _check_fs(header_fs, f"sampling rate in {where}")


def _standard_leads(
    names: list[str], n_sig: int, min_leads: int, where: str
) -> tuple[dict[int, int], list[str]]:
    """Lead names -> canonical rows, before anything is read; refuses too few standard leads."""
    if len(names) != n_sig:
        raise EcgLeadError(f"{where}: {len(names)} lead names for {n_sig} signals; give one name per signal.")
    mapping, dropped = _map_leads(names, where)
    if not mapping:
        raise EcgLeadError(
            f"{where}: none of the channels {names} is one of the 12 standard leads; nothing usable to read."
        )
    if len(mapping) < min_leads:
        present = [CANONICAL_LEADS[r] for r in mapping.values()]
        raise EcgLeadError(
            f"{where} has {len(mapping)} of the 12 standard leads ({', '.join(present)}); at least {min_leads} "
            "are required here."
        )
    return mapping, dropped


def _check_signal_lines(
    record: Any, text: str, names: list[str], mapping: dict[int, int], where: str, warnings: list[str]
) -> dict[int, float]:
    """Per-signal checks (format, samples per frame, gain, units); returns {channel: factor to mV}."""
    fmts = [str(f) for f in record.fmt]
    gains = list(record.adc_gain)
    spf = _samples_per_frame(record)
    unit_scales: dict[int, float] = {}
    raw_gains = _raw_gain_tokens(text)
    for i in range(record.n_sig):
        if fmts[i] not in WFDB_BYTES_PER_SAMPLE:
            raise EcgFormatError(
                f"{where}: signal {i} ({names[i]}) uses WFDB format {fmts[i]!r}, which is not supported "
                f"(supported: {', '.join(WFDB_BYTES_PER_SAMPLE)})."
            )
        if not 1 <= spf[i] <= 64:
            raise EcgFormatError(f"{where}: signal {i} has {spf[i]} samples per frame; corrupt header?")
        if i not in mapping:
            continue
        unit = record.units[i] if record.units else None
        scale = _unit_scale(unit, f"{where} signal {names[i]}")
        raw_gain = raw_gains[i]
        if raw_gain is None:
            warnings.append(
                f"lead {names[i]}: the header gives no ADC gain; the WFDB default 200/mV is assumed"
            )
        elif not _is_number(raw_gain) or float(raw_gain) == 0:
            # wfdb silently replaces an explicit gain of 0 with 200: refuse instead.
            gains[i] = float(raw_gain) if _is_number(raw_gain) else float("nan")
        gain = float(gains[i]) if gains[i] is not None else float("nan")
        if not math.isfinite(gain) or gain <= 0:
            raise EcgSignalError(
                f"{where}: lead {names[i]} has ADC gain {gains[i]!r}; the gain must be a positive number of "
                "ADC units per physical unit (e.g. 200 or 1000). Fix the header."
            )
        gain_per_mv = gain / scale  # ADC units per mV
        if not MIN_GAIN_PER_MV <= gain_per_mv <= MAX_GAIN_PER_MV:
            raise EcgSignalError(
                f"{where}: lead {names[i]} has an implausible ADC gain of {gain:g} per {unit or 'mV'} "
                f"({gain_per_mv:g} per mV; expected {MIN_GAIN_PER_MV:g}..{MAX_GAIN_PER_MV:g}). Fix the header."
            )
        unit_scales[i] = scale
    return unit_scales


def _samples_per_frame(record: Any) -> list[int]:
    return [int(s or 1) for s in (record.samps_per_frame or [1] * record.n_sig)]


def _check_data_files(
    hea: Path,
    record: Any,
    header_tokens: list[str],
    file_names: list[str],
    mapping: dict[int, int],
    max_file_bytes: int,
    warnings: list[str],
) -> int:
    """Data files exist, are binary and as long as the header promises (promise bounded). Returns samples."""
    where = hea.name
    by_file: dict[str, list[int]] = {}
    for i, name in enumerate(file_names):
        by_file.setdefault(name, []).append(i)
    sig_len = record.sig_len if len(header_tokens) >= 4 else None
    if sig_len is not None and sig_len <= 0:
        raise EcgTooShortError(f"{where} declares a signal length of {sig_len} samples: there is no signal.")
    needed_files = [name for name, idx in by_file.items() if any(i in mapping for i in idx)]
    lengths = [
        _check_data_file(hea, record, name, by_file[name], sig_len, max_file_bytes) for name in needed_files
    ]
    if sig_len is None:
        sig_len = min(lengths)
        if sig_len <= 0:
            raise EcgTooShortError(f"The signal files of {where} hold no complete sample frame.")
        warnings.append(f"the header gives no signal length; {sig_len} samples read from the file size")
    return int(sig_len)


def _check_data_file(
    hea: Path, record: Any, name: str, idx: list[int], sig_len: int | None, max_file_bytes: int
) -> int:
    """Check one signal file holding signals ``idx``; returns the whole frames it holds."""
    where = hea.name
    fmts = [str(f) for f in record.fmt]
    spf = _samples_per_frame(record)
    offsets = [int(b or 0) for b in (record.byte_offset or [0] * record.n_sig)]
    if len({fmts[i] for i in idx}) != 1:
        raise EcgFormatError(f"{where}: signals in {name} use different formats; corrupt header.")
    bps = WFDB_BYTES_PER_SAMPLE[fmts[idx[0]]]
    frame = sum(spf[i] for i in idx)
    offset = offsets[idx[0]]
    path = hea.parent / name
    if not path.is_file():
        raise EcgFileMissingError(
            f"Signal file {name} (named in {where}) is missing. Put it next to the header (or upload it "
            "together with the header)."
        )
    size = _check_size(path, max_file_bytes)
    if size == 0:
        raise EcgFormatError(f"Signal file {name} is empty (0 bytes); the record has no samples.")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if _looks_like_text(head):
        raise EcgFormatError(
            f"Signal file {name} looks like a text file, not WFDB binary data. Is it the right file?"
        )
    if sig_len is None:
        return int(max(size - offset, 0) // (frame * bps))
    promised = offset + math.ceil(sig_len * frame * bps)
    if promised > max_file_bytes or sig_len * record.n_sig > max_file_bytes // 2:
        raise EcgTooLargeError(
            f"{where} promises {sig_len:,} samples per signal ({promised:,} bytes in {name}), above the "
            f"limit of {max_file_bytes:,} bytes. The header's length is corrupt or the record is too big."
        )
    if size < promised:
        raise EcgFormatError(
            f"Signal file {name} is truncated: {size:,} bytes, but {where} promises {promised:,} "
            f"({sig_len:,} samples x {frame} signal(s) in format {fmts[idx[0]]})."
        )
    return sig_len


def _decode(hea: Path, record: Any, keep: list[int], sig_len: int) -> np.ndarray:
    """Everything checked: read only the channels ``keep`` with wfdb. Returns (T, K) physical units."""
    where = hea.name
    try:
        import wfdb

        sampto = int(sig_len) if record.sig_len is not None else None  # None: wfdb uses the file size
        rec = wfdb.rdrecord(str(hea.with_suffix("")), channels=keep, sampto=sampto, physical=True)
        data = np.asarray(rec.p_signal, dtype=np.float64)  # (T, K)
    except EcgInputError:
        raise
    except Exception as exc:
        raise EcgFormatError(
            f"{where}: the signal data cannot be decoded ({type(exc).__name__}: {exc})."
        ) from None
    if data.ndim != 2 or data.shape[1] != len(keep):
        raise EcgFormatError(f"{where}: decoded data has shape {data.shape}, expected (T, {len(keep)}).")
    return data
