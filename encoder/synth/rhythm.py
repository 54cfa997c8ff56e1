"""Beat timing and atrial activity: sinus rhythm with HRV, atrial fibrillation, atrial flutter, premature beats."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from encoder.synth.patient import Physiology

# Beat kinds.
SINUS, NO_P, PAC, PVC = 0, 1, 2, 3


@dataclass
class Beats:
    """QRS onset times of one record and what kind of beat each one is."""

    onset: np.ndarray
    """(N,) QRS onset times in seconds (may start before 0 and end after the record)."""
    kind: np.ndarray
    """(N,) int: SINUS, NO_P (AFIB / flutter conducted beat), PAC or PVC."""
    rr_prev: np.ndarray
    """(N,) preceding RR interval in seconds (drives QT adaptation)."""


def _sinus(ph: Physiology, rng: np.random.Generator, start: float, stop: float) -> np.ndarray:
    rr = 60.0 / ph.heart_rate
    phi_r, phi_lf = rng.uniform(0, 2 * np.pi, 2)
    t = start - rng.uniform(0, rr)
    times = []
    while t < stop:
        times.append(t)
        mod = ph.rsa * np.sin(2 * np.pi * ph.resp_rate * t + phi_r) + ph.lf_hrv * np.sin(
            2 * np.pi * 0.1 * t + phi_lf
        )
        t += rr * (1.0 + mod + ph.rr_jitter * rng.standard_normal())
    return np.array(times)


def _afib(ph: Physiology, rng: np.random.Generator, start: float, stop: float) -> np.ndarray:
    rr = 60.0 / ph.heart_rate
    cv = rng.uniform(0.13, 0.28)
    t = start - rng.uniform(0, rr)
    times = []
    while t < stop:
        times.append(t)
        t += max(0.3, rr * np.exp(cv * rng.standard_normal() - cv**2 / 2))
    return np.array(times)


def flutter_cycle(ph: Physiology, rng: np.random.Generator) -> float:
    """Flutter wave period in seconds (atrial rate 260-320 /min); stored on the physiology for the f-wave signal."""
    return 60.0 / rng.uniform(260, 320)


def _flutter(ph: Physiology, rng: np.random.Generator, start: float, stop: float, cycle: float) -> np.ndarray:
    ratios = rng.choice([2, 3, 4], p=[0.5, 0.15, 0.35])
    variable = rng.random() < 0.3
    av = rng.uniform(0.18, 0.26)
    k = int(np.floor(start / cycle)) - 4
    times = []
    while k * cycle + av < stop:
        times.append(k * cycle + av)
        k += int(rng.choice([2, 3, 4])) if variable else int(ratios)
    ph.heart_rate = 60.0 / (cycle * (3.0 if variable else float(ratios)))
    return np.array(times)


def _insert_premature(
    times: np.ndarray, kinds: np.ndarray, which: int, rng: np.random.Generator, seconds: float
) -> None:
    """Make one beat inside the record premature (in place). PVC: compensatory pause; PAC: the sinus node resets."""
    idx = np.flatnonzero((times > 1.0) & (times < seconds - 1.2) & (kinds != PVC) & (kinds != PAC))
    idx = idx[(idx >= 1) & (idx < len(times) - 1)]
    if idx.size == 0:
        return
    k = int(rng.choice(idx))
    rr = times[k] - times[k - 1]
    coupling = rng.uniform(0.55, 0.7) if which == PVC else rng.uniform(0.62, 0.78)
    new = times[k - 1] + coupling * rr
    if which == PAC:
        times[k + 1 :] -= times[k] - new
    times[k] = new
    kinds[k] = which


def beat_times(ph: Physiology, rng: np.random.Generator, seconds: float, flutter: float | None) -> Beats:
    """All QRS onsets covering [-0.6 s, seconds + 0.6 s]."""
    start, stop = -0.6, seconds + 0.6
    if ph.rhythm == "afib":
        times = _afib(ph, rng, start, stop)
    elif ph.rhythm == "aflt":
        times = _flutter(ph, rng, start, stop, flutter or 0.2)
    else:
        times = _sinus(ph, rng, start, stop)
    kinds = np.full(times.shape, SINUS if ph.rhythm == "sinus" else NO_P, dtype=np.int64)
    for kind in ph.ectopy:
        n = int(rng.choice([1, 1, 2])) if kind == "pvc" else int(rng.choice([1, 1, 1, 2]))
        for _ in range(n):
            if kind == "pvc":
                _insert_premature(times, kinds, PVC, rng, seconds)
            elif ph.rhythm == "sinus":
                _insert_premature(times, kinds, PAC, rng, seconds)
    rr_prev = np.diff(times, prepend=times[0] - 60.0 / ph.heart_rate)
    return Beats(times, kinds, rr_prev)


def fibrillatory_waves(rng: np.random.Generator, fs: float, num_samples: int) -> np.ndarray:
    """AFIB f-waves as a heart-vector signal (3, T): 4-9 Hz, wandering frequency and amplitude, V1-dominant."""
    t = np.arange(num_samples) / fs
    out = np.zeros((3, num_samples))
    for _ in range(2):
        f0 = rng.uniform(4.5, 8.0)
        drift = np.cumsum(rng.standard_normal(num_samples)) / np.sqrt(fs) * 0.6
        phase = 2 * np.pi * (f0 * t + drift / fs * 10) + rng.uniform(0, 2 * np.pi)
        env = 1.0 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 0.6) * t + rng.uniform(0, 2 * np.pi))
        amp = rng.uniform(0.015, 0.05)
        direction = np.array([0.15, 0.45, -0.85]) + rng.normal(0, 0.2, 3)
        direction /= np.linalg.norm(direction)
        out += amp * direction[:, None] * (env * (np.sin(phase) + 0.3 * np.sin(2 * phase)))[None, :]
    return out


def flutter_waves(rng: np.random.Generator, fs: float, num_samples: int, cycle: float) -> np.ndarray:
    """Atrial flutter F-waves (3, T): sawtooth, negative in II / III / aVF."""
    t = np.arange(num_samples) / fs
    ph = (t / cycle + rng.uniform(0, 1)) % 1.0
    saw = np.where(ph < 0.75, -ph / 0.75, -1.0 + (ph - 0.75) / 0.25) + 0.5  # slow fall, fast rise
    k = max(int(0.012 * fs), 1)
    saw = np.convolve(saw, np.ones(k) / k, mode="same")
    amp = rng.uniform(0.1, 0.2)
    direction = np.array([0.05, 1.0, 0.25])
    return amp * direction[:, None] * saw[None, :]
