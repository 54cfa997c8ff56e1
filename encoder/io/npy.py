"""NumPy arrays and .npy files: (leads, samples) or (samples, leads), no pickles."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from encoder.errors import (
    EcgFormatError,
    EcgLeadError,
    EcgSamplingRateError,
)
from encoder.io.common import _check_fs, _check_nonempty, _Raw, _unit_scale
from encoder.leads import CANONICAL_LEADS, NUM_LEADS


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
    _check_nonempty(path, max_file_bytes)
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
