"""Channels of any format -> a validated 12-lead ``Ecg``: repair short gaps, mask bad leads, flag flat ones."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from encoder.errors import (
    EcgLeadError,
    EcgSignalError,
    EcgTooShortError,
)
from encoder.io.common import (
    FLAT_STD_MV,
    HIGH_FS_WARNING,
    MAX_ABS_MV,
    MAX_BAD_FRACTION,
    MAX_GAP_S,
    _check_fs,
    _map_leads,
    _Raw,
    lead_index,
)
from encoder.leads import CANONICAL_LEADS, NUM_LEADS
from encoder.preprocess import resample
from encoder.record import Ecg


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

    signal, lead_mask, repairs, masked_bad = _repair_leads(raw.signal, mapping, fs)  # (12, T), (12,)

    flat = _flat_leads_checked(signal, lead_mask, repairs, min_leads, where)

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


def _repair_leads(
    channels: np.ndarray, mapping: dict[int, int], fs: float
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Channels (C, T) -> (12, T) float32 rows: short invalid gaps interpolated, mostly-invalid leads masked.

    Returns (signal (12, T), lead_mask (12,), repair notes, masked lead names).
    """
    n_t = channels.shape[1]
    signal = np.zeros((NUM_LEADS, n_t), dtype=np.float32)  # (12, T)
    lead_mask = np.zeros(NUM_LEADS, dtype=bool)
    repairs: list[str] = []
    masked_bad: list[str] = []
    max_gap = max(1, int(round(MAX_GAP_S * fs)))
    for ch, row in mapping.items():
        x = np.array(channels[ch], dtype=np.float64)  # (T,)
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
    return signal, lead_mask, repairs, masked_bad


def _flat_leads_checked(
    signal: np.ndarray, lead_mask: np.ndarray, repairs: list[str], min_leads: int, where: str
) -> list[str]:
    """Flat lead names; refuses a record with no valid, no non-flat or too few usable leads."""
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
    return flat
