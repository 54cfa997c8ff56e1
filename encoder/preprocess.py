"""Signal preprocessing: resampling, band-pass / baseline removal, per-lead normalisation, model input.

``model_input`` is the one function every inference path uses (stage-1 eval, stage 2, demo); training crops
from the cache are normalised with ``normalize_leads`` on the crop, so train and inference match. Two
normalisations (the encoder config's ``input_normalization``): ``zscore`` (per lead and record: shape only) and
``center`` (per-lead mean removed, amplitudes kept in units of ``CENTER_UNIT_MV``: voltage criteria, low QRS/T
voltage stay visible).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import signal as sps

from encoder.errors import ConfigError, EcgSamplingRateError
from encoder.leads import CANONICAL_LEADS

if TYPE_CHECKING:
    from encoder.record import Ecg

# Rational approximation limit for fs ratios (e.g. 360 -> 100 Hz is 5/18; 499.7 Hz is approximated).
_MAX_DENOMINATOR = 1000


def _check_rate(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise EcgSamplingRateError(f"{name} must be a positive number of Hz, got {value!r}.")
    return value


def resample_ratio(fs: float, target_fs: float) -> tuple[int, int]:
    """(up, down) integers with ``target_fs / fs ~= up / down`` for polyphase resampling."""
    ratio = Fraction(_check_rate("target_fs", target_fs) / _check_rate("fs", fs)).limit_denominator(
        _MAX_DENOMINATOR
    )
    if ratio.numerator == 0:
        raise EcgSamplingRateError(
            f"Cannot resample from {fs} Hz to {target_fs} Hz: the ratio is too extreme."
        )
    return ratio.numerator, ratio.denominator


def resample(signal: np.ndarray, fs: float, target_fs: float) -> np.ndarray:
    """Polyphase resampling along the last axis: (C, T) at ``fs`` -> (C, T') at ``target_fs`` (float32)."""
    signal = np.asarray(signal, dtype=np.float32)
    up, down = resample_ratio(fs, target_fs)
    if up == down:
        return signal.copy()
    if signal.shape[-1] == 0:
        return np.zeros((*signal.shape[:-1], 0), dtype=np.float32)
    out = sps.resample_poly(signal, up, down, axis=-1)  # (C, ceil(T * up / down))
    return out.astype(np.float32, copy=False)


def bandpass(
    signal: np.ndarray, fs: float, low: float | None = 0.5, high: float | None = 40.0, order: int = 3
) -> np.ndarray:
    """Zero-phase Butterworth band-pass along the last axis (C, T) -> (C, T).

    ``low=None`` gives a low-pass, ``high=None`` a high-pass (baseline removal). A ``high`` at or above
    Nyquist is ignored. Signals too short for the filter's padding are filtered with less padding.
    """
    fs = _check_rate("fs", fs)
    signal = np.asarray(signal, dtype=np.float32)
    nyq = fs / 2.0
    if high is not None and high >= nyq * 0.99:
        high = None
    if low is not None and low <= 0:
        low = None
    if low is not None and high is not None and low >= high:
        raise ConfigError(f"bandpass: low ({low} Hz) must be below high ({high} Hz).")
    if low is not None and low >= nyq:
        raise ConfigError(f"bandpass: low cut-off {low} Hz is above Nyquist ({nyq} Hz) for fs={fs} Hz.")
    if low is None and high is None:
        return signal.copy()
    if low is not None and high is not None:
        sos = sps.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    elif low is not None:
        sos = sps.butter(order, low, btype="highpass", fs=fs, output="sos")
    else:
        sos = sps.butter(order, high, btype="lowpass", fs=fs, output="sos")
    n = signal.shape[-1]
    if n < 2:
        return signal.copy()
    padlen = min(3 * (2 * len(sos) + 1), n - 1)
    out = sps.sosfiltfilt(sos, signal, axis=-1, padlen=padlen)
    return out.astype(np.float32, copy=False)


def remove_baseline(signal: np.ndarray, fs: float, cutoff: float = 0.5) -> np.ndarray:
    """Baseline-wander removal: zero-phase high-pass at ``cutoff`` Hz, (C, T) -> (C, T)."""
    return bandpass(signal, fs, low=cutoff, high=None)


CENTER_UNIT_MV = 0.3
"""``center`` normalisation divides by this many mV (about a lead's typical standard deviation)."""


_LEAD_FACTORS = {
    "zscore": lambda std, eps, mv_per_unit: 1.0 / (std + eps),  # unit-free
    "center": lambda std, eps, mv_per_unit: np.full_like(
        std, mv_per_unit / CENTER_UNIT_MV
    ),  # in CENTER_UNIT_MV
}


def lead_scales(
    std: np.ndarray, lead_mask: np.ndarray | None, mode: str, eps: float = 1e-6, mv_per_unit: float = 1.0
) -> np.ndarray:
    """The factor ``mode`` multiplies each centred lead by: std (..., C, 1) -> (..., C, 1) float32.

    ``std`` and ``eps`` are in the signal's units (``mv_per_unit`` mV each, e.g. a cache's stored units); the
    factor is 0 for flat leads (std <= eps: they carry no information) and where ``lead_mask`` ((C,) or (..., C))
    is False.
    """
    factor = _LEAD_FACTORS[check_normalization(mode)](std, eps, mv_per_unit)
    scale = np.where(std > eps, factor, 0.0).astype(np.float32)
    if lead_mask is not None:
        scale = scale * np.asarray(lead_mask, dtype=np.float32)[..., None]
    return scale


def _per_lead(signal: np.ndarray, lead_mask: np.ndarray | None, eps: float, mode: str) -> np.ndarray:
    """Centre each lead and multiply it by ``lead_scales``; (..., C, T) -> (..., C, T) float32.

    Any real dtype in (e.g. a cache's int16 crops); a new float32 array out, the caller's signal is never changed.
    One float32 copy changed in place, no temporaries of the signal's size and no threads (it runs in
    DataLoader workers and next to the training step's threads).
    """
    x = np.array(signal, dtype=np.float32)  # (..., C, T) a copy, changed in place below
    rows = x.reshape(-1, x.shape[-1])  # (R, T) view
    rows -= rows.mean(axis=-1, keepdims=True)  # centred
    std = np.sqrt(np.einsum("rt,rt->r", rows, rows) / rows.shape[-1]).reshape(*x.shape[:-1], 1)  # (..., C, 1)
    x *= lead_scales(std, lead_mask, mode, eps)
    return x


def normalize_per_lead(
    signal: np.ndarray, lead_mask: np.ndarray | None = None, eps: float = 1e-6
) -> np.ndarray:
    """Z-score each lead over time (shape only): (..., C, T) -> (..., C, T) float32; masked/flat leads -> 0."""
    return _per_lead(signal, lead_mask, eps, "zscore")


def center_per_lead(signal: np.ndarray, lead_mask: np.ndarray | None = None, eps: float = 1e-6) -> np.ndarray:
    """Remove each lead's mean, keep the amplitude in units of ``CENTER_UNIT_MV``: (..., C, T) mV -> float32;
    masked/flat leads -> 0."""
    return _per_lead(signal, lead_mask, eps, "center")


NORMALIZATIONS = {"zscore": normalize_per_lead, "center": center_per_lead}
"""Per-lead input normalisations by name (``EcgEncoderConfig.input_normalization``)."""


def check_normalization(name: str) -> str:
    if name not in NORMALIZATIONS:
        raise ConfigError(f"Unknown input_normalization {name!r}; choose one of {sorted(NORMALIZATIONS)}.")
    return name


def normalize_leads(
    signal: np.ndarray, lead_mask: np.ndarray | None = None, mode: str = "zscore", eps: float = 1e-6
) -> np.ndarray:
    """Apply the ``mode`` normalisation (``zscore`` or ``center``) to mV signals (..., C, T)."""
    return NORMALIZATIONS[check_normalization(mode)](signal, lead_mask, eps=eps)


def crop_or_pad(
    signal: np.ndarray, num_samples: int, crop: Literal["center", "start"] = "center"
) -> np.ndarray:
    """(C, T) -> (C, num_samples): crop (centre or start) when longer, zero-pad at the end when shorter."""
    if crop not in ("center", "start"):
        raise ConfigError(f"crop must be 'center' or 'start', got {crop!r}.")
    t = signal.shape[-1]
    if t >= num_samples:
        start = (t - num_samples) // 2 if crop == "center" else 0
        return signal[..., start : start + num_samples]
    out = np.zeros((*signal.shape[:-1], num_samples), dtype=signal.dtype)
    out[..., :t] = signal
    return out


def model_input(
    ecg: Ecg,
    sampling_rate: int,
    num_samples: int,
    crop: Literal["center", "start"] = "center",
    normalization: str = "zscore",
) -> np.ndarray:
    """The model-ready array (12, num_samples) float32 for one ``Ecg``.

    Resample to ``sampling_rate`` -> crop (centre or start) to ``num_samples`` -> per-lead ``normalization``
    (``zscore`` or ``center``; pass the encoder config's ``input_normalization``).
    A record shorter than ``num_samples`` is normalised on its real samples and then zero-padded at the
    end. Absent leads (``lead_mask`` False) and flat leads (``meta["flat_leads"]``) are all zeros.
    """
    if num_samples <= 0:
        raise ConfigError(f"num_samples must be positive, got {num_samples}.")
    check_normalization(normalization)
    x = resample(ecg.signal, ecg.fs, sampling_rate)  # (12, T')
    t = min(x.shape[-1], num_samples)
    x = crop_or_pad(x, t, crop)  # (12, t)
    mask = np.asarray(ecg.lead_mask, dtype=bool).copy()
    for lead in ecg.meta.get("flat_leads", []) or []:
        if lead in CANONICAL_LEADS:
            mask[CANONICAL_LEADS.index(lead)] = False
    x = normalize_leads(x, mask, normalization)
    return crop_or_pad(x, num_samples, "start")  # (12, num_samples)
