"""Read ECGs from WFDB records, .npy and .csv files (or arrays) into a validated 12-lead ``Ecg``.

Everything is checked *before* the samples are read: the WFDB header is parsed first and the sizes it
promises are compared with the real file sizes, so a hostile header cannot make wfdb allocate gigabytes.
Every problem is raised as an ``encoder.errors.EcgInputError`` subclass whose message says what was wrong
and what to do. Repairs (interpolated NaN gaps, masked leads) and flags (flat leads) are recorded in
``ecg.meta`` so nothing is accepted silently.

Policy (also in the README table):
- sampling rate must be within [MIN_FS, MAX_FS] = [50, 10000] Hz; higher rates up to 10 kHz are accepted,
  noted in ``meta["warnings"]`` and resampled when ``target_fs`` is given;
- samples that are NaN/inf or beyond +-MAX_ABS_MV are invalid: short gaps (<= MAX_GAP_S each, <= MAX_BAD_FRACTION
  of a lead) are linearly interpolated, otherwise the lead is masked; a record with no valid lead is refused;
- a lead whose standard deviation is below FLAT_STD_MV is listed in ``meta["flat_leads"]``; all-flat is refused;
- lead names must be one of the 12 leads (any alias) or a known extra channel (Frank vx/vy/vz, resp...), which
  is dropped; any other name is refused (pass ``lead_names=`` to rename channels).
"""

from __future__ import annotations

import csv
import io as _stdio
import math
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from encoder.leads import CANONICAL_LEADS, NUM_LEADS, canonical_lead_name, is_known_extra_lead
from encoder.preprocess import resample
from encoder.record import Ecg

MAX_FILE_BYTES = 256 * 2**20
"""Default size limit for any single input file (and for the data a header may promise)."""
MAX_HEADER_BYTES = 2**20
"""A WFDB header is a small text file; anything larger is refused."""
MAX_SIGNALS = 256
"""Most signals a header may declare."""
MIN_FS = 50.0
"""Lowest sampling rate accepted (Hz): below this the QRS complex is not resolved."""
MAX_FS = 10_000.0
"""Highest sampling rate accepted (Hz); rates above 2 kHz are accepted with a warning."""
HIGH_FS_WARNING = 2_000.0
MAX_ABS_MV = 1_000.0
"""Samples beyond +-1000 mV are physically impossible for a surface ECG and are treated as invalid."""
MAX_GAP_S = 0.25
"""Longest run of invalid samples (seconds) that is repaired by interpolation."""
MAX_BAD_FRACTION = 0.10
"""Largest fraction of invalid samples in a lead that is repaired; above this the lead is masked."""
FLAT_STD_MV = 0.005
"""A lead whose standard deviation is below 5 microvolts is flagged as flat."""
MIN_GAIN_PER_MV = 1e-2
MAX_GAIN_PER_MV = 1e7
"""Plausible ADC gain range in ADC units per millivolt (typical: 200-1000)."""

# Physical unit (lower case) -> factor to millivolts.
UNIT_TO_MV: dict[str, float] = {
    "mv": 1.0,
    "millivolt": 1.0,
    "millivolts": 1.0,
    "uv": 1e-3,
    "µv": 1e-3,
    "μv": 1e-3,
    "microvolt": 1e-3,
    "microvolts": 1e-3,
    "v": 1e3,
    "volt": 1e3,
    "volts": 1e3,
    "nv": 1e-6,
}
# WFDB storage formats and their bytes per sample (212: 3 bytes per 2 samples, 310/311: 4 bytes per 3).
WFDB_BYTES_PER_SAMPLE: dict[str, float] = {
    "8": 1,
    "16": 2,
    "24": 3,
    "32": 4,
    "61": 2,
    "80": 1,
    "160": 2,
    "212": 1.5,
    "310": 4 / 3,
    "311": 4 / 3,
}
_TIME_COLUMNS_S = {"t", "time", "time_s", "times", "seconds", "sec", "s", "time(s)", "time [s]"}
_TIME_COLUMNS_MS = {"time_ms", "ms", "t_ms", "time(ms)", "time [ms]", "milliseconds"}
_INDEX_COLUMNS = {"", "index", "sample", "samples", "unnamed: 0", "idx"}
_SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")


@dataclass
class _Raw:
    """Channels as read from a file, before mapping to the canonical leads."""

    signal: np.ndarray  # (C, T) float64, mV, may contain NaN/inf
    names: list[str]
    fs: float
    meta: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- public API


def read_ecg(
    source: str | os.PathLike | np.ndarray,
    *,
    fs: float | None = None,
    lead_names: Sequence[str] | None = None,
    target_fs: float | None = None,
    min_duration_s: float | None = None,
    min_leads: int = 1,
    max_file_bytes: int = MAX_FILE_BYTES,
    units: str | None = None,
) -> Ecg:
    """Read and validate one ECG into a 12-lead ``Ecg`` (signal (12, T) float32 mV, canonical lead order).

    Args:
        source: WFDB record (path with or without extension, the .hea or a .dat), a .npy / .csv path,
            or an array (C, T) / (T, C).
        fs: sampling rate in Hz; required for .npy and arrays, and for .csv without a time column.
            For WFDB it overrides the header (with a warning when they differ).
        lead_names: names of the channels in file order (overrides the header / CSV header).
            Arrays with 12 channels and no names are taken to be in canonical order.
        target_fs: resample to this rate (polyphase) after validation.
        min_duration_s: refuse records shorter than this (seconds).
        min_leads: refuse records with fewer usable (present, not flat) standard leads.
        max_file_bytes: refuse any file (or header-promised data) larger than this.
        units: physical units of .npy/.csv/array values ("mV" default, "uV", "V"); WFDB uses its header.

    Raises:
        EcgInputError subclasses (see ``encoder.errors``) with a message saying what to do.
    """
    if min_leads < 1 or min_leads > NUM_LEADS:
        raise EcgLeadError(f"min_leads must be between 1 and {NUM_LEADS}, got {min_leads}.")
    if target_fs is not None:
        _check_fs(float(target_fs), "target_fs")
    if isinstance(source, np.ndarray):
        raw = _raw_from_array(source, fs, lead_names, units, source_name="array")
        raw.meta["format"] = "array"
    else:
        path = Path(source).expanduser()
        kind, path = _detect_kind(path)
        if kind == "npy":
            raw = _read_npy(path, fs, lead_names, units, max_file_bytes)
        elif kind == "csv":
            raw = _read_csv(path, fs, lead_names, units, max_file_bytes)
        else:
            raw = _read_wfdb(path, fs, lead_names, min_leads, min_duration_s, max_file_bytes)
    return _assemble(raw, min_duration_s=min_duration_s, min_leads=min_leads, target_fs=target_fs)


def read_ecg_files(paths: Sequence[str | os.PathLike], **read_kwargs: Any) -> list[Ecg]:
    """Read an uploaded set of files (e.g. ``x.hea`` + ``x.dat``) as ECG records, one ``Ecg`` per record.

    Files are grouped by record name (file stem). A WFDB group is a .hea plus the uploaded signal files its
    header names; they are copied into one private temporary folder (uploads often sit in different
    folders) and read there, so a header can only reach uploaded files. .npy / .csv files are records on
    their own. Returned sorted by record name.
    ``read_kwargs`` go to ``read_ecg``.
    """
    if not paths:
        raise EcgFileMissingError(
            "No files were given. Upload a WFDB .hea with its .dat, or a .npy / .csv file."
        )
    max_bytes = int(read_kwargs.get("max_file_bytes", MAX_FILE_BYTES))
    files: dict[str, Path] = {}
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise EcgFileMissingError(f"Uploaded file {path} does not exist or is not a regular file.")
        if path.name in files and files[path.name].resolve() != path.resolve():
            raise EcgFormatError(f"Two uploaded files are both named {path.name!r}; upload each file once.")
        files[path.name] = path
    singles = [p for name, p in files.items() if Path(name).suffix.lower() in (".npy", ".csv")]
    headers = {Path(name).stem: p for name, p in files.items() if Path(name).suffix.lower() == ".hea"}
    others = [p for name, p in files.items() if Path(name).suffix.lower() not in (".npy", ".csv", ".hea")]
    used: set[str] = set()
    records: list[tuple[str, Ecg]] = []
    for path in singles:
        records.append((path.stem, read_ecg(path, **read_kwargs)))
    for stem, hea in sorted(headers.items()):
        header_text = _read_header_text(hea)
        data_names = sorted(set(_signal_file_names(header_text, hea)))
        # Signal files that only hold dropped channels (e.g. Frank leads) may be left out of the upload;
        # read_ecg reports any file it needs that is missing.
        group = [hea] + [files[n] for n in data_names if n in files]
        used.update(p.name for p in group)
        # Always read from a private folder holding only the uploaded files: uploads may sit in different
        # folders, and a header must never reach files next to it that were not uploaded.
        with tempfile.TemporaryDirectory(prefix="ecgllm_upload_") as tmp:
            for p in group:
                if p.stat().st_size > max_bytes:
                    raise EcgTooLargeError(
                        f"{p.name} is {p.stat().st_size} bytes; the limit is {max_bytes} bytes."
                    )
                shutil.copyfile(p, Path(tmp) / p.name)
            ecg = read_ecg(Path(tmp) / hea.name, **read_kwargs)
            ecg.meta["source"] = str(hea)
            records.append((stem, ecg))
    leftovers = [p for p in others if p.name not in used]
    if leftovers:
        names = ", ".join(sorted(p.name for p in leftovers))
        if any(p.suffix.lower() == ".dat" for p in leftovers):
            raise EcgFileMissingError(
                f"{names}: signal file(s) without a matching WFDB header. Upload the .hea file with the same "
                "record name as the .dat."
            )
        raise EcgFormatError(f"Unsupported file(s): {names}. Supported: WFDB (.hea + .dat), .npy, .csv.")
    return [ecg for _, ecg in sorted(records, key=lambda r: r[0])]


# ----------------------------------------------------------------------------------------------- dispatch


def _detect_kind(path: Path) -> tuple[str, Path]:
    """('wfdb', header path) | ('npy', path) | ('csv', path)."""
    suffix = path.suffix.lower()
    if path.is_dir():
        raise EcgFormatError(f"{path} is a folder; pass an ECG file (WFDB .hea, .npy or .csv).")
    if suffix in (".npy", ".csv"):
        if not path.is_file():
            raise EcgFileMissingError(f"ECG file {path} does not exist.")
        return suffix[1:], path
    if suffix == ".hea":
        if not path.is_file():
            raise EcgFileMissingError(f"WFDB header {path} does not exist.")
        return "wfdb", path
    # A record name without extension, or a signal file (.dat, .xyz, ...): the header sits next to it.
    with_hea = path.with_name(path.name + ".hea") if suffix == "" else path.with_suffix(".hea")
    if with_hea.is_file():
        return "wfdb", with_hea
    if suffix == "" or suffix == ".dat":
        if path.is_file():
            raise EcgFileMissingError(
                f"No WFDB header {with_hea.name} next to {path.name}. A WFDB record needs its .hea file "
                "in the same folder."
            )
        raise EcgFileMissingError(f"ECG record {path} does not exist (looked for {with_hea}).")
    if not path.exists():
        raise EcgFileMissingError(f"ECG file {path} does not exist.")
    raise EcgFormatError(
        f"Unsupported ECG file type {suffix!r} ({path.name}). Supported: WFDB (.hea + .dat), .npy, .csv."
    )


def _check_size(path: Path, max_file_bytes: int) -> int:
    size = path.stat().st_size
    if size > max_file_bytes:
        raise EcgTooLargeError(
            f"{path.name} is {size:,} bytes, above the limit of {max_file_bytes:,} bytes "
            "(raise max_file_bytes if the file is genuine)."
        )
    return size


def _check_fs(fs: float, what: str = "sampling rate") -> float:
    if not math.isfinite(fs) or fs <= 0:
        raise EcgSamplingRateError(f"The {what} must be a positive number of Hz, got {fs!r}.")
    if fs < MIN_FS:
        raise EcgSamplingRateError(
            f"The {what} of {fs:g} Hz is below the supported minimum of {MIN_FS:g} Hz: the QRS complex cannot "
            "be resolved. Check the header's sampling rate (or the fs you passed)."
        )
    if fs > MAX_FS:
        raise EcgSamplingRateError(
            f"The {what} of {fs:g} Hz is above the supported maximum of {MAX_FS:g} Hz. Check the header, or "
            "downsample the recording before reading it."
        )
    return fs


# ----------------------------------------------------------------------------------------------- WFDB


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


def _unit_scale(unit: str | None, where: str) -> float:
    key = (unit or "mV").strip().lower()
    if key in ("", "nu"):
        key = "mv"
    if key not in UNIT_TO_MV:
        raise EcgFormatError(
            f"{where}: unsupported physical unit {unit!r}; ECG leads must be in V, mV or uV."
        )
    return UNIT_TO_MV[key]


def _map_leads(names: Sequence[str], where: str) -> tuple[dict[int, int], list[str]]:
    """Map file channels to canonical rows: ({channel index: canonical row}, dropped extra-lead names)."""
    mapping: dict[int, int] = {}
    dropped: list[str] = []
    unknown: list[str] = []
    seen: dict[int, str] = {}
    for i, name in enumerate(names):
        canon = canonical_lead_name(str(name))
        if canon is None:
            if is_known_extra_lead(str(name)):
                dropped.append(str(name))
            else:
                unknown.append(str(name))
            continue
        row = CANONICAL_LEADS.index(canon)
        if row in seen:
            raise EcgLeadError(
                f"{where}: channels {seen[row]!r} and {name!r} are both lead {canon}. Pass lead_names= to say "
                "which channel is which."
            )
        seen[row] = str(name)
        mapping[i] = row
    if unknown:
        unknown = [u if u.strip() else "<unnamed>" for u in unknown]
        raise EcgLeadError(
            f"{where}: unknown lead name(s) {unknown}. Expected the 12 standard leads "
            f"({', '.join(CANONICAL_LEADS)}; aliases like AVR or MLII are fine). Pass lead_names= to name "
            "the channels."
        )
    return mapping, dropped


def _read_wfdb(
    hea: Path,
    fs: float | None,
    lead_names: Sequence[str] | None,
    min_leads: int,
    min_duration_s: float | None,
    max_file_bytes: int,
) -> _Raw:
    where = hea.name
    _check_size(hea, max_file_bytes)
    record, text, file_names = _parse_and_check_header(hea)
    comments = [str(c) for c in (record.comments or [])]
    n_sig = record.n_sig
    warnings: list[str] = []

    # Sampling rate: the header's, unless overridden.
    header_tokens = _header_lines(text)[0].split()
    header_fs = float(record.fs) if len(header_tokens) >= 3 and record.fs is not None else None
    if fs is not None:
        fs = _check_fs(float(fs), "sampling rate you passed")
        if header_fs is not None and not math.isclose(fs, header_fs, rel_tol=1e-6):
            warnings.append(
                f"sampling rate {fs:g} Hz passed by the caller overrides the header's {header_fs:g} Hz"
            )
    elif header_fs is None:
        raise EcgSamplingRateError(
            f"{where} gives no sampling rate; pass fs= (WFDB would silently assume 250 Hz)."
        )
    else:
        fs = _check_fs(header_fs, f"sampling rate in {where}")

    # Lead names -> canonical rows, before anything is read.
    names = list(lead_names) if lead_names is not None else [str(n or "") for n in (record.sig_name or [])]
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
    keep = sorted(mapping)

    # Per-signal checks: format, gain, units.
    fmts = [str(f) for f in record.fmt]
    gains = list(record.adc_gain)
    spf = [int(s or 1) for s in (record.samps_per_frame or [1] * n_sig)]
    offsets = [int(b or 0) for b in (record.byte_offset or [0] * n_sig)]
    unit_scales: dict[int, float] = {}
    raw_gains = _raw_gain_tokens(text)
    for i in range(n_sig):
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
        if raw_gains[i] is None:
            warnings.append(
                f"lead {names[i]}: the header gives no ADC gain; the WFDB default 200/mV is assumed"
            )
        elif not _is_number(raw_gains[i]) or float(raw_gains[i]) == 0:
            # wfdb silently replaces an explicit gain of 0 with 200: refuse instead.
            gains[i] = float(raw_gains[i]) if _is_number(raw_gains[i]) else float("nan")
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

    # Data files: exist, not empty, not text, sizes match the promised length; promised length bounded.
    by_file: dict[str, list[int]] = {}
    for i, name in enumerate(file_names):
        by_file.setdefault(name, []).append(i)
    sig_len = record.sig_len if len(header_tokens) >= 4 else None
    if sig_len is not None and sig_len <= 0:
        raise EcgTooShortError(f"{where} declares a signal length of {sig_len} samples: there is no signal.")
    needed_files = [name for name, idx in by_file.items() if any(i in mapping for i in idx)]
    lengths: list[int] = []
    for name in needed_files:
        idx = by_file[name]
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
        if sig_len is not None:
            promised = offset + math.ceil(sig_len * frame * bps)
            if promised > max_file_bytes or sig_len * n_sig > max_file_bytes // 2:
                raise EcgTooLargeError(
                    f"{where} promises {sig_len:,} samples per signal ({promised:,} bytes in {name}), above the "
                    f"limit of {max_file_bytes:,} bytes. The header's length is corrupt or the record is too big."
                )
            if size < promised:
                raise EcgFormatError(
                    f"Signal file {name} is truncated: {size:,} bytes, but {where} promises {promised:,} "
                    f"({sig_len:,} samples x {frame} signal(s) in format {fmts[idx[0]]})."
                )
        else:
            lengths.append(int(max(size - offset, 0) // (frame * bps)))
    if sig_len is None:
        sig_len = min(lengths)
        if sig_len <= 0:
            raise EcgTooShortError(f"The signal files of {where} hold no complete sample frame.")
        warnings.append(f"the header gives no signal length; {sig_len} samples read from the file size")
    if min_duration_s is not None and sig_len / fs < min_duration_s:
        raise EcgTooShortError(
            f"{where} is {sig_len / fs:.2f} s long; at least {min_duration_s:g} s is required."
        )

    # Everything checked: read only the channels that map to standard leads.
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
    signal = data.T * np.array([unit_scales[i] for i in keep])[:, None]  # (K, T) mV
    meta = {
        "source": str(hea),
        "format": "wfdb",
        "record_name": hea.stem,
        "comments": comments,
        "source_leads": names,
        "dropped_leads": dropped,
        "warnings": warnings,
        "units": [record.units[i] for i in keep] if record.units else None,
    }
    return _Raw(signal=signal, names=[names[i] for i in keep], fs=fs, meta=meta)


def _looks_like_text(head: bytes) -> bool:
    """True for data that is printable ASCII with whitespace (a CSV/text file renamed .dat)."""
    if len(head) < 16:
        return False
    printable = all(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return printable and (b"\n" in head or b" " in head or b"," in head)


# ----------------------------------------------------------------------------------------------- arrays


def _raw_from_array(
    array: np.ndarray, fs: float | None, lead_names: Sequence[str] | None, units: str | None, source_name: str
) -> _Raw:
    arr = np.asarray(array)
    if arr.dtype.kind not in "biuf":
        raise EcgFormatError(
            f"{source_name}: ECG samples must be real numbers, got dtype {arr.dtype} (text, objects or "
            "complex values are not accepted)."
        )
    if arr.ndim == 1 and lead_names is not None and len(lead_names) == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise EcgFormatError(
            f"{source_name}: expected a 2-D array (leads, samples) or (samples, leads), got shape {arr.shape}."
        )
    n_names = len(lead_names) if lead_names is not None else NUM_LEADS
    if arr.shape[0] == n_names:
        signal = arr  # (C, T)
    elif arr.shape[1] == n_names:
        signal = arr.T  # (T, C) -> (C, T)
    elif lead_names is None:
        raise EcgLeadError(
            f"{source_name}: array of shape {arr.shape} has no axis of length 12; pass lead_names= with one "
            "name per channel."
        )
    else:
        raise EcgLeadError(f"{source_name}: {n_names} lead names do not match array shape {arr.shape}.")
    names = list(lead_names) if lead_names is not None else list(CANONICAL_LEADS)
    if fs is None:
        raise EcgSamplingRateError(f"{source_name}: the sampling rate is unknown; pass fs= (in Hz).")
    fs = _check_fs(float(fs))
    scale = _unit_scale(units, source_name)
    with np.errstate(over="ignore", invalid="ignore"):
        signal = signal.astype(np.float64) * scale
    meta = {"source": source_name, "comments": [], "source_leads": names, "dropped_leads": [], "warnings": []}
    return _Raw(signal=signal, names=names, fs=fs, meta=meta)


def _read_npy(
    path: Path, fs: float | None, lead_names: Sequence[str] | None, units: str | None, max_file_bytes: int
) -> _Raw:
    size = _check_size(path, max_file_bytes)
    if size == 0:
        raise EcgFormatError(f"{path.name} is empty (0 bytes).")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise EcgFormatError(
            f"{path.name} is not a plain numeric .npy array ({exc}); pickled objects are refused."
        ) from None
    except Exception as exc:
        raise EcgFormatError(f"{path.name} is not a valid .npy file ({type(exc).__name__}: {exc}).") from None
    if not isinstance(arr, np.ndarray):
        raise EcgFormatError(
            f"{path.name} holds several arrays (.npz); save one array (leads, samples) as .npy."
        )
    raw = _raw_from_array(arr, fs, lead_names, units, source_name=path.name)
    raw.meta.update(source=str(path), format="npy", record_name=path.stem)
    return raw


def _read_csv(
    path: Path, fs: float | None, lead_names: Sequence[str] | None, units: str | None, max_file_bytes: int
) -> _Raw:
    size = _check_size(path, max_file_bytes)
    if size == 0:
        raise EcgFormatError(f"{path.name} is empty (0 bytes).")
    raw_bytes = path.read_bytes()
    if b"\x00" in raw_bytes:
        raise EcgFormatError(f"{path.name} is not a CSV text file (it contains binary data).")
    try:
        text = raw_bytes.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise EcgFormatError(f"{path.name} is not UTF-8 text; save the CSV as UTF-8.") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise EcgFormatError(f"{path.name} has no rows.")
    delimiter = max([",", ";", "\t"], key=lambda d: lines[0].count(d))
    rows = list(csv.reader(_stdio.StringIO("\n".join(lines)), delimiter=delimiter))
    header = [h.strip() for h in rows[0]]
    if lead_names is None:
        if all(_is_number(h) for h in header):
            raise EcgFormatError(
                f"{path.name} has no header row; the first row must name the leads (e.g. I,II,III,aVR,...) "
                "or pass lead_names=."
            )
        body = rows[1:]
    else:
        body = rows[1:] if not all(_is_number(h) for h in header) else rows
        header = list(lead_names) if len(lead_names) == len(header) else header
        if len(header) != len(lead_names) and len(header) != len(lead_names) + 1:
            raise EcgLeadError(f"{path.name}: {len(lead_names)} lead names for {len(header)} CSV columns.")
    if not body:
        raise EcgTooShortError(f"{path.name} has a header but no samples.")
    # Column roles: time, index (dropped), leads.
    time_col, time_scale, lead_cols, notes = None, 1.0, [], []
    for j, name in enumerate(header):
        key = name.strip().lower()
        if key in _TIME_COLUMNS_S or key in _TIME_COLUMNS_MS:
            time_col, time_scale = j, (1e-3 if key in _TIME_COLUMNS_MS else 1.0)
        elif key in _INDEX_COLUMNS:
            notes.append(f"CSV column {name!r} treated as a sample index and ignored")
        else:
            lead_cols.append(j)
    if lead_names is not None and len(lead_cols) == len(lead_names) + 1 and time_col is None:
        raise EcgLeadError(f"{path.name}: {len(lead_names)} lead names for {len(lead_cols)} CSV columns.")
    values = np.empty((len(body), len(header)), dtype=np.float64)
    for r, row in enumerate(body):
        if len(row) != len(header):
            raise EcgFormatError(
                f"{path.name} line {r + 2}: {len(row)} values but the header has {len(header)} columns."
            )
        for j, cell in enumerate(row):
            cell = cell.strip()
            if cell == "" or cell.lower() in ("nan", "na", "null"):
                values[r, j] = np.nan
                continue
            try:
                values[r, j] = float(cell)
            except ValueError:
                raise EcgFormatError(
                    f"{path.name} line {r + 2}, column {header[j]!r}: {cell[:40]!r} is not a number. Every "
                    "column must be numeric (lead samples, or a time column named 'time')."
                ) from None
    if time_col is not None and fs is None:
        t = values[:, time_col] * time_scale
        dt = np.diff(t)
        if len(t) < 2 or not np.all(np.isfinite(t)) or np.any(dt <= 0):
            raise EcgSamplingRateError(
                f"{path.name}: the time column {header[time_col]!r} must increase strictly; pass fs= instead."
            )
        step = float(np.median(dt))
        if np.max(np.abs(dt - step)) > 0.01 * step + 1e-9:
            raise EcgSamplingRateError(
                f"{path.name}: the time column {header[time_col]!r} is not uniformly spaced; resample the data "
                "to a fixed rate or pass fs=."
            )
        fs = round(1.0 / step, 6)
        notes.append(f"sampling rate {fs:g} Hz taken from the CSV time column")
    names = [header[j] for j in lead_cols]
    raw = _raw_from_array(values[:, lead_cols].T, fs, names, units, source_name=path.name)
    raw.meta.update(source=str(path), format="csv", record_name=path.stem)
    raw.meta["warnings"].extend(notes)
    return raw


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------------------------- assembly


def _invalid_runs(bad: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in a 1-D bool array."""
    padded = np.concatenate([[False], bad, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _assemble(raw: _Raw, *, min_duration_s: float | None, min_leads: int, target_fs: float | None) -> Ecg:
    """Map channels to canonical rows, repair/flag samples, enforce lead/duration limits, resample."""
    where = Path(str(raw.meta.get("source", "ECG"))).name
    fs = _check_fs(float(raw.fs))
    mapping, dropped = _map_leads(raw.names, where)
    if not mapping:
        raise EcgLeadError(f"{where}: none of the channels {raw.names} is one of the 12 standard leads.")
    n_t = raw.signal.shape[1]
    if n_t == 0:
        raise EcgTooShortError(f"{where} has no samples.")
    if min_duration_s is not None and n_t / fs < min_duration_s:
        raise EcgTooShortError(
            f"{where} is {n_t / fs:.2f} s long; at least {min_duration_s:g} s is required."
        )

    signal = np.zeros((NUM_LEADS, n_t), dtype=np.float32)  # (12, T)
    lead_mask = np.zeros(NUM_LEADS, dtype=bool)
    repairs: list[str] = []
    masked_bad: list[str] = []
    max_gap = max(1, int(round(MAX_GAP_S * fs)))
    for ch, row in mapping.items():
        x = np.array(raw.signal[ch], dtype=np.float64)  # (T,)
        lead = CANONICAL_LEADS[row]
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(x) | (np.abs(x) > MAX_ABS_MV)
        n_bad = int(bad.sum())
        if n_bad:
            runs = _invalid_runs(bad)
            longest = max(b - a for a, b in runs)
            if n_bad == n_t or n_bad > MAX_BAD_FRACTION * n_t or longest > max_gap:
                repairs.append(
                    f"lead {lead} masked: {n_bad}/{n_t} samples NaN/inf/out of range (longest gap "
                    f"{longest / fs:.3f} s)"
                )
                masked_bad.append(lead)
                continue
            good = np.flatnonzero(~bad)
            x[bad] = np.interp(np.flatnonzero(bad), good, x[good])
            repairs.append(
                f"lead {lead}: interpolated {n_bad} NaN/inf/out-of-range sample(s) in {len(runs)} gap(s) "
                f"(longest {longest / fs:.3f} s)"
            )
        signal[row] = x.astype(np.float32)
        lead_mask[row] = True

    present = [CANONICAL_LEADS[r] for r in range(NUM_LEADS) if lead_mask[r]]
    if not present:
        raise EcgSignalError(
            f"{where}: every lead is mostly NaN/inf or out of range (first: {repairs[0]}). The record is "
            "unusable; check the file or the gain/units in its header."
        )
    flat = [lead for lead in present if float(signal[CANONICAL_LEADS.index(lead)].std()) < FLAT_STD_MV]
    usable = [lead for lead in present if lead not in flat]
    if not usable:
        raise EcgSignalError(
            f"{where}: all leads are flat (standard deviation below {FLAT_STD_MV * 1000:g} uV): no ECG signal. "
            "Check the electrodes / the gain in the header."
        )
    if len(usable) < min_leads:
        missing = [lead for lead in CANONICAL_LEADS if lead not in usable]
        raise EcgLeadError(
            f"{where} has {len(usable)} usable standard lead(s) ({', '.join(usable)}); at least {min_leads} are "
            f"required here. Missing or unusable: {', '.join(missing)}."
        )

    warnings = list(raw.meta.get("warnings", []))
    if fs > HIGH_FS_WARNING:
        warnings.append(f"sampling rate {fs:g} Hz is unusually high for a diagnostic ECG")
    meta = dict(raw.meta)
    meta.update(
        fs_original=fs,
        num_samples_original=n_t,
        repairs=repairs,
        flat_leads=flat,
        masked_leads=masked_bad,
        missing_leads=[lead for lead in CANONICAL_LEADS if not lead_mask[lead_index(lead)]],
        dropped_leads=[*raw.meta.get("dropped_leads", []), *dropped],
        warnings=warnings,
    )
    meta.setdefault("comments", [])
    out_fs = fs
    if target_fs is not None and not math.isclose(float(target_fs), fs):
        signal = resample(signal, fs, float(target_fs))  # (12, T')
        signal[~lead_mask] = 0.0
        out_fs = float(target_fs)
    return Ecg(
        signal=np.ascontiguousarray(signal, dtype=np.float32), fs=out_fs, lead_mask=lead_mask, meta=meta
    )


def lead_index(name: str) -> int:
    """Row of a lead (any alias) in the canonical order; raises ``EcgLeadError`` for unknown names."""
    canon = canonical_lead_name(name)
    if canon is None:
        raise EcgLeadError(f"Unknown lead name {name!r}; expected one of {', '.join(CANONICAL_LEADS)}.")
    return CANONICAL_LEADS.index(canon)
