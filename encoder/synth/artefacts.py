"""ECG-QA's annotated recording problems, rendered on chosen leads: the four noise types and pacemaker spikes.

Noise is made per electrode (RA, LA, LL, V1..V6) so Einthoven / Goldberger still hold; the electrodes are the ones
whose leads best match the flagged leads (a limb electrode also shows, weaker, in the leads that share it).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from itertools import combinations

import numpy as np

from encoder.ecgqa.attributes import LEADS, LeadMask

_LIMB_ELECTRODES: dict[str, frozenset[int]] = {
    "I": frozenset({0, 1}), "II": frozenset({0, 2}), "III": frozenset({1, 2}),
    "aVR": frozenset({0}), "aVL": frozenset({1}), "aVF": frozenset({2}),
}  # fmt: skip
_LIMB_SUBSETS = [frozenset(c) for k in (1, 2, 3) for c in combinations(range(3), k)]

Rng = np.random.Generator


def electrodes_for(mask: LeadMask) -> list[int]:
    """Electrode indices (0-2 RA/LA/LL, 3-8 V1..V6) whose noise shows in the flagged leads."""
    limb = {LEADS[i] for i in range(6) if mask[i]}
    chosen: set[int] = set()
    if limb:

        def jaccard(sub: AbstractSet[int]) -> float:
            touched = {
                name for name, el in _LIMB_ELECTRODES.items() if el <= sub or len(el) == 1 and el & sub
            }
            return len(touched & limb) / len(touched | limb)

        chosen |= max(_LIMB_SUBSETS, key=jaccard)
    chosen |= {3 + i for i in range(6) if mask[6 + i]}
    return sorted(chosen)


def _coloured(rng: Rng, n: int, fs: float, lo: float, hi: float) -> np.ndarray:
    """(n,) unit-RMS noise band-limited to [lo, hi] Hz."""
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    spec = (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size)) * (
        (freqs >= lo) & (freqs <= hi)
    )
    x = np.fft.irfft(spec, n=n)
    return x / max(float(np.std(x)), 1e-12)


def baseline_drift(rng: Rng, n: int, fs: float) -> np.ndarray:
    """Low-frequency wander (0.05-0.7 Hz), 0.2-0.6 mV."""
    return rng.uniform(0.2, 0.6) * _coloured(rng, n, fs, 0.05, 0.7)


def static_noise(rng: Rng, n: int, fs: float) -> np.ndarray:
    """Continuous broadband noise (muscle / amplifier, 5-150 Hz), 0.04-0.1 mV RMS."""
    return rng.uniform(0.04, 0.1) * _coloured(rng, n, fs, 5.0, min(150.0, fs / 2))


def _events(rng: Rng, n: int, fs: float, event: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Sum of 1-3 random events (T,): ``event(t)`` on the time grid ``t`` (s) draws its own time and size."""
    out = np.zeros(n)
    t = np.arange(n) / fs
    for _ in range(int(rng.integers(1, 4))):
        out += event(t)
    return out


def burst_noise(rng: Rng, n: int, fs: float) -> np.ndarray:
    """1-3 short (0.2-0.8 s) high-amplitude broadband bursts, 0.2-0.5 mV RMS."""

    def burst(t: np.ndarray) -> np.ndarray:
        centre, width = rng.uniform(0.5, t[-1] - 0.5), rng.uniform(0.1, 0.4)
        envelope = np.exp(-0.5 * ((t - centre) / width) ** 8)
        return envelope * rng.uniform(0.2, 0.5) * _coloured(rng, n, fs, 3.0, 100.0)

    return _events(rng, n, fs, burst)


def electrode_problem(rng: Rng, n: int, fs: float) -> np.ndarray:
    """A loose electrode: 1-3 jumps of 0.5-1.5 mV with fast recovery."""

    def jump(t: np.ndarray) -> np.ndarray:
        t0, tau = rng.uniform(0.2, t[-1] - 0.2), rng.uniform(0.05, 0.3)
        return (
            rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.5) * np.where(t >= t0, np.exp(-(t - t0) / tau), 0.0)
        )

    return _events(rng, n, fs, jump)


NOISE_RENDERERS: dict[str, Callable[[Rng, int, float], np.ndarray]] = {
    "baseline drift": baseline_drift,
    "static noise": static_noise,
    "burst noise": burst_noise,
    "electrodes problems": electrode_problem,
}
"""ECG-QA noise type -> one electrode's noise (T,) in mV."""


def annotated_noise(masks: dict[str, LeadMask], rng: Rng, fs: float, num_samples: int) -> np.ndarray:
    """Electrode potentials (9, T) in mV carrying each noise type on the electrodes of its flagged leads."""
    out = np.zeros((9, num_samples))
    for noise_type, mask in masks.items():
        for e in electrodes_for(mask):
            out[e] += NOISE_RENDERERS[noise_type](rng, num_samples, fs)
    return out


def pacemaker_spikes(onsets: np.ndarray, rng: Rng, fs: float, num_samples: int) -> np.ndarray:
    """Heart-vector signal (3, T): a 1-sample 2-5 mV pacing spike 10 ms before each QRS onset."""
    out = np.zeros((3, num_samples))
    direction = rng.normal(0.0, 1.0, 3)
    direction *= rng.uniform(2.0, 5.0) / np.linalg.norm(direction)
    idx = np.round((onsets - 0.01) * fs).astype(int)
    idx = idx[(idx >= 0) & (idx < num_samples)]
    out[:, idx] = direction[:, None]
    return out
