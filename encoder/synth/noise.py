"""Recording noise generated per electrode, then turned into lead noise, so Einthoven / Goldberger still hold.

Sources (each with a published-looking spectrum): baseline wander (0.05-0.5 Hz sinusoids plus the breathing
frequency), muscle EMG (coloured noise, 20-150 Hz band, in bursts), powerline (50 Hz + harmonic, PTB-XL was recorded
in Germany), electrode motion (step + exponential recovery), amplifier white noise.
"""

from __future__ import annotations

import numpy as np

from encoder.synth.patient import Physiology

# Electrodes: RA, LA, LL, V1..V6.
NUM_ELECTRODES = 9


def _emg_shape(freqs: np.ndarray) -> np.ndarray:
    """Amplitude spectrum of surface EMG: rises above ~20 Hz, rolls off above ~150 Hz."""
    return (freqs / 20.0) ** 2 / (1.0 + (freqs / 20.0) ** 2) / (1.0 + (freqs / 150.0) ** 2)


def electrode_noise(ph: Physiology, rng: np.random.Generator, fs: float, num_samples: int) -> np.ndarray:
    """Noise potential at each electrode (9, T) in mV, built in the frequency domain (one inverse FFT)."""
    n, N = NUM_ELECTRODES, num_samples
    s = ph.noise_scale
    freqs = np.fft.rfftfreq(N, 1.0 / fs)
    F = freqs.shape[0]
    # Stochastic part: muscle EMG (coloured) + amplifier white noise. A bin of unit complex Gaussian with
    # amplitude a contributes 4 a^2 / N^2 to the time-domain variance.
    emg_shape = _emg_shape(freqs)
    emg_level = rng.uniform(0.002, 0.012, (n, 1)) * s
    white_level = rng.uniform(0.001, 0.004) * s
    emg_amp = emg_level / np.sqrt(4.0 / N**2 * np.sum(emg_shape**2))
    white_amp = white_level / np.sqrt(4.0 / N**2 * F)
    amp = np.sqrt((emg_amp * emg_shape[None, :]) ** 2 + white_amp**2)  # (9, F)
    spec = amp * (rng.standard_normal((n, F)) + 1j * rng.standard_normal((n, F)))
    spec[:, 0] = 0.0

    def tone(rows: np.ndarray | slice, hz: np.ndarray | float, amplitude: np.ndarray | float, phase) -> None:
        k = np.clip(np.round(np.asarray(hz) * N / fs).astype(int), 1, F - 1)
        # numpy's stubs type ufunc.at's indices as one array; a (rows, columns) tuple is valid at run time
        np.add.at(spec, (rows, k), np.asarray(amplitude) * N / 2.0 * np.exp(1j * np.asarray(phase)))  # type: ignore[arg-type]

    # Baseline wander: two slow sinusoids per electrode + a shared breathing component.
    rows = np.repeat(np.arange(n), 2)
    tone(
        rows,
        rng.uniform(0.05, 0.45, 2 * n),
        rng.uniform(0.0, 0.03, 2 * n) * s,
        rng.uniform(0, 2 * np.pi, 2 * n),
    )
    tone(
        np.arange(n),
        np.full(n, ph.resp_rate),
        rng.uniform(0.0, 0.04, n) * s,
        np.full(n, rng.uniform(0, 2 * np.pi)),
    )
    # Powerline 50 Hz (+ 3rd harmonic): mostly small.
    pl = rng.uniform(0.0, 0.006) * s
    if 150.0 < fs / 2:
        tone(np.arange(n), np.full(n, 50.0), pl * rng.uniform(0.5, 1.5, n), rng.uniform(0, 2 * np.pi, n))
        tone(np.arange(n), np.full(n, 150.0), np.full(n, 0.2 * pl), np.zeros(n))
    out = np.fft.irfft(spec, n=N, axis=1)  # (9, T)
    t = np.arange(N) / fs
    # Muscle bursts on all electrodes for a moment (e.g. the patient moves).
    if rng.random() < 0.3:
        centre, width = rng.uniform(0, t[-1]), rng.uniform(0.3, 2.0)
        burst = np.fft.irfft(
            emg_amp * emg_shape * (rng.standard_normal((n, F)) + 1j * rng.standard_normal((n, F))), n=N
        )
        out += rng.uniform(1, 5) * np.exp(-0.5 * ((t - centre) / width) ** 2)[None, :] * burst
    # Electrode motion: an occasional step with exponential recovery on one electrode.
    if rng.random() < 0.15:
        e = int(rng.integers(n))
        t0, tau = rng.uniform(0, t[-1]), rng.uniform(0.2, 1.0)
        out[e] += rng.normal(0, 0.3) * s * np.where(t >= t0, np.exp(-(t - t0) / tau), 0.0)
    return out


def electrodes_to_independent_leads(e: np.ndarray) -> np.ndarray:
    """Electrode potentials (9, T) -> independent lead signals (8, T): V1..V6 (vs Wilson terminal), I, II."""
    ra, la, ll = e[0], e[1], e[2]
    wct = (ra + la + ll) / 3.0
    return np.concatenate([e[3:] - wct[None, :], (la - ra)[None, :], (ll - ra)[None, :]], axis=0)
