"""Input limits, unit tables and the checks every reader shares (size, sampling rate, units, lead names)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from encoder.errors import (
    EcgFormatError,
    EcgLeadError,
    EcgSamplingRateError,
    EcgTooLargeError,
)
from encoder.leads import CANONICAL_LEADS, canonical_lead_name, is_known_extra_lead

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


@dataclass
class _Raw:
    """Channels as read from a file, before mapping to the canonical leads."""

    signal: np.ndarray  # (C, T) float64, mV, may contain NaN/inf
    names: list[str]
    fs: float
    meta: dict[str, Any] = field(default_factory=dict)


def _check_size(path: Path, max_file_bytes: int) -> int:
    size = path.stat().st_size
    if size > max_file_bytes:
        raise EcgTooLargeError(
            f"{path.name} is {size:,} bytes, above the limit of {max_file_bytes:,} bytes "
            "(raise max_file_bytes if the file is genuine)."
        )
    return size


def _check_nonempty(path: Path, max_file_bytes: int) -> int:
    """Size of a single-file record (.npy / .csv): within the limit and not empty."""
    size = _check_size(path, max_file_bytes)
    if size == 0:
        raise EcgFormatError(f"{path.name} is empty (0 bytes).")
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


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def lead_index(name: str) -> int:
    """Row of a lead (any alias) in the canonical order; raises ``EcgLeadError`` for unknown names."""
    canon = canonical_lead_name(name)
    if canon is None:
        raise EcgLeadError(f"Unknown lead name {name!r}; expected one of {', '.join(CANONICAL_LEADS)}.")
    return CANONICAL_LEADS.index(canon)
