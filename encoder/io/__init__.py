"""Read ECGs from WFDB records, .npy and .csv files (or arrays) into a validated 12-lead ``Ecg``.

Everything is checked *before* the samples are read: the WFDB header is parsed first and the sizes it
promises are compared with the real file sizes, so a hostile header cannot make wfdb allocate gigabytes.
Every problem is raised as an ``encoder.errors.EcgInputError`` subclass whose message says what was wrong
and what to do. Repairs (interpolated NaN gaps, masked leads) and flags (flat leads) are recorded in
``ecg.meta`` so nothing is accepted silently.

Policy (also in the table of docs/reading_ecgs.md):
- sampling rate must be within [MIN_FS, MAX_FS] = [50, 10000] Hz; higher rates up to 10 kHz are accepted,
  noted in ``meta["warnings"]`` and resampled when ``target_fs`` is given;
- samples that are NaN/inf or beyond +-MAX_ABS_MV are invalid: short gaps (<= MAX_GAP_S each, <= MAX_BAD_FRACTION
  of a lead) are linearly interpolated, otherwise the lead is masked; a record with no valid lead is refused;
- a lead whose standard deviation is below FLAT_STD_MV is listed in ``meta["flat_leads"]``; all-flat is refused;
- lead names must be one of the 12 leads (any alias) or a known extra channel (Frank vx/vy/vz, resp...), which
  is dropped; any other name is refused (pass ``lead_names=`` to rename channels).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from encoder.errors import (
    EcgFileMissingError,
    EcgFormatError,
    EcgLeadError,
    EcgTooLargeError,
)
from encoder.io.assemble import _assemble
from encoder.io.common import (
    FLAT_STD_MV,
    HIGH_FS_WARNING,
    MAX_ABS_MV,
    MAX_BAD_FRACTION,
    MAX_FILE_BYTES,
    MAX_FS,
    MAX_GAIN_PER_MV,
    MAX_GAP_S,
    MAX_HEADER_BYTES,
    MAX_SIGNALS,
    MIN_FS,
    MIN_GAIN_PER_MV,
    UNIT_TO_MV,
    WFDB_BYTES_PER_SAMPLE,
    _check_fs,
    lead_index,
)
from encoder.io.csvfile import _read_csv
from encoder.io.npy import _raw_from_array, _read_npy
from encoder.io.wfdb import _read_header_text, _read_wfdb, _signal_file_names
from encoder.leads import NUM_LEADS
from encoder.record import Ecg

__all__ = [
    "read_ecg",
    "read_ecg_files",
    "lead_index",
    "MAX_FILE_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_SIGNALS",
    "MIN_FS",
    "MAX_FS",
    "HIGH_FS_WARNING",
    "MAX_ABS_MV",
    "MAX_GAP_S",
    "MAX_BAD_FRACTION",
    "FLAT_STD_MV",
    "MIN_GAIN_PER_MV",
    "MAX_GAIN_PER_MV",
    "UNIT_TO_MV",
    "WFDB_BYTES_PER_SAMPLE",
]


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
