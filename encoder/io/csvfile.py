"""CSV/text tables: one column per lead, optional time or index column."""

from __future__ import annotations

import csv
import io as _stdio
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from encoder.errors import (
    EcgFormatError,
    EcgLeadError,
    EcgSamplingRateError,
    EcgTooShortError,
)
from encoder.io.common import _check_nonempty, _is_number, _Raw
from encoder.io.npy import _raw_from_array

_TIME_COLUMNS_S = {"t", "time", "time_s", "times", "seconds", "sec", "s", "time(s)", "time [s]"}


_TIME_COLUMNS_MS = {"time_ms", "ms", "t_ms", "time(ms)", "time [ms]", "milliseconds"}


_INDEX_COLUMNS = {"", "index", "sample", "samples", "unnamed: 0", "idx"}


def _read_csv(
    path: Path, fs: float | None, lead_names: Sequence[str] | None, units: str | None, max_file_bytes: int
) -> _Raw:
    _check_nonempty(path, max_file_bytes)
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
    values = _parse_cells(path, header, body)  # (T, columns)
    if time_col is not None and fs is None:
        fs = _fs_from_time_column(path, header[time_col], values[:, time_col] * time_scale)
        notes.append(f"sampling rate {fs:g} Hz taken from the CSV time column")
    names = [header[j] for j in lead_cols]
    raw = _raw_from_array(values[:, lead_cols].T, fs, names, units, source_name=path.name)
    raw.meta.update(source=str(path), format="csv", record_name=path.stem)
    raw.meta["warnings"].extend(notes)
    return raw


def _parse_cells(path: Path, header: list[str], body: list[list[str]]) -> np.ndarray:
    """Rows of text cells -> (rows, columns) float64; empty/NaN cells become NaN, text is refused."""
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
    return values


def _fs_from_time_column(path: Path, column: str, t: np.ndarray) -> float:
    """Sampling rate (Hz) from a strictly increasing, uniformly spaced time column (seconds)."""
    dt = np.diff(t)
    if len(t) < 2 or not np.all(np.isfinite(t)) or np.any(dt <= 0):
        raise EcgSamplingRateError(
            f"{path.name}: the time column {column!r} must increase strictly; pass fs= instead."
        )
    step = float(np.median(dt))
    if np.max(np.abs(dt - step)) > 0.01 * step + 1e-9:
        raise EcgSamplingRateError(
            f"{path.name}: the time column {column!r} is not uniformly spaced; resample the data "
            "to a fixed rate or pass fs=."
        )
    return round(1.0 / step, 6)
