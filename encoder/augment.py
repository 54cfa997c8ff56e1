"""Training-time signal augmentation of stage-1 batches: the variation real recordings have and the synthetic
cohort lacks.

``augment_crops(x, rng, cfg=..., fs=..., normalization=...)`` changes normalised crops (B, 12, T). Each record
draws, with its own probability, every transform of ``AUGMENTATIONS`` in order (amplitude scaling, baseline wander,
Gaussian noise, EMG noise, electrode artefacts, band-pass with jittered cut-offs, lead dropout), then each lead is
normalised again (``zscore``: mean 0, std 1; ``center``: mean 0), so training inputs keep the statistics inference
inputs have. Stage 1 passes it as the training ``CachedEcgDataset``'s ``transform`` (off unless ``cfg.enabled``):
it runs in the loader workers, and its draws are seeded by (seed, epoch, the batch's rows), so a resumed run
replays the same augmentation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import signal as sps

from encoder.config_io import check_config
from encoder.errors import ConfigError


@dataclass
class AugmentConfig:
    """Which augmentations stage-1 training applies to each batch, and how strong (signals in per-lead units)."""

    enabled: bool = False
    """Augment the training batches (validation and test inputs are never augmented)."""
    p_amplitude: float = field(default=0.5, metadata={"ge": 0.0, "le": 1.0})
    """Probability of scaling each lead by its own log-uniform factor in [1 / amplitude_max, amplitude_max]."""
    amplitude_max: float = field(default=1.5, metadata={"ge": 1.0})
    """Largest amplitude factor."""
    p_baseline: float = field(default=0.3, metadata={"ge": 0.0, "le": 1.0})
    """Probability of adding baseline wander (a 0.05-0.5 Hz sinusoid per lead, amplitude up to ``baseline_max``)."""
    baseline_max: float = field(default=0.3, metadata={"ge": 0.0})
    """Largest baseline-wander amplitude."""
    p_gaussian: float = field(default=0.5, metadata={"ge": 0.0, "le": 1.0})
    """Probability of adding white Gaussian noise of std uniform in [0, gaussian_max]."""
    gaussian_max: float = field(default=0.08, metadata={"ge": 0.0})
    """Largest white-noise std."""
    p_emg: float = field(default=0.3, metadata={"ge": 0.0, "le": 1.0})
    """Probability of adding EMG-like noise (white noise high-passed at 15 Hz, in bursts) to a few leads."""
    emg_max: float = field(default=0.15, metadata={"ge": 0.0})
    """Largest EMG-noise std."""
    p_electrode: float = field(default=0.2, metadata={"ge": 0.0, "le": 1.0})
    """Probability of an electrode artefact (a step that decays, or a motion burst) in one to three leads."""
    electrode_max: float = field(default=1.0, metadata={"ge": 0.0})
    """Largest electrode-artefact amplitude."""
    p_bandpass: float = field(default=0.8, metadata={"ge": 0.0, "le": 1.0})
    """Probability of a zero-phase Butterworth band-pass with cut-offs drawn from ``low_hz`` and ``high_hz``
    (real recorders filter; the shared real records are band-passed 0.5-40 Hz)."""
    low_hz: list[float] = field(default_factory=lambda: [0.3, 0.8], metadata={"gt": 0.0})
    """Range of the high-pass cut-off in Hz."""
    high_hz: list[float] = field(default_factory=lambda: [25.0, 45.0], metadata={"gt": 0.0})
    """Range of the low-pass cut-off in Hz (ignored at or above 0.95 x Nyquist)."""
    p_dropout: float = field(default=0.05, metadata={"ge": 0.0, "le": 1.0})
    """Probability of zeroing each lead (as an absent lead reaches the encoder)."""

    def __post_init__(self) -> None:
        check_config(self)
        for name in ("low_hz", "high_hz"):
            if len(getattr(self, name)) != 2:
                raise ConfigError(f"{name} must be a [min, max] range in Hz, got {getattr(self, name)!r}.")


Transform = Callable[[np.ndarray, float, AugmentConfig, np.random.Generator], np.ndarray]
"""(12, T) record, fs, config, generator -> (12, T) record."""


def amplitude(x: np.ndarray, fs: float, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    log_max = np.log(cfg.amplitude_max)
    return x * np.exp(rng.uniform(-log_max, log_max, size=(x.shape[0], 1)))


def baseline_wander(x: np.ndarray, fs: float, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(x.shape[-1]) / fs  # (T,)
    freq = rng.uniform(0.05, 0.5, size=(x.shape[0], 1))
    amp = rng.uniform(0.0, cfg.baseline_max, size=(x.shape[0], 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(x.shape[0], 1))
    return x + amp * np.sin(2 * np.pi * freq * t[None, :] + phase)


def gaussian_noise(x: np.ndarray, fs: float, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    return x + rng.uniform(0.0, cfg.gaussian_max) * rng.standard_normal(x.shape)


def emg_noise(x: np.ndarray, fs: float, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    leads = rng.choice(x.shape[0], size=int(rng.integers(1, 5)), replace=False)
    sos = sps.butter(2, min(15.0, 0.4 * fs), btype="highpass", fs=fs, output="sos")
    noise = sps.sosfilt(sos, rng.standard_normal((len(leads), x.shape[-1])), axis=-1)
    noise /= noise.std(axis=-1, keepdims=True) + 1e-8
    t = x.shape[-1]
    start, length = int(rng.integers(0, t)), int(rng.integers(t // 10, t + 1))
    envelope = np.zeros(t)
    envelope[start : start + length] = 1.0  # a burst
    out = x.copy()
    out[leads] += rng.uniform(0.0, cfg.emg_max) * noise * envelope
    return out


def electrode_artefact(x: np.ndarray, fs: float, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    leads = rng.choice(x.shape[0], size=int(rng.integers(1, 4)), replace=False)
    t = np.arange(x.shape[-1]) / fs  # (T,)
    onset = rng.uniform(0.0, t[-1] if len(t) else 0.0)
    after = np.clip(t - onset, 0.0, None)
    if rng.random() < 0.5:  # electrode pop: a step that decays back
        shape = np.where(t >= onset, np.exp(-after / rng.uniform(0.1, 1.0)), 0.0)
    else:  # motion: a short low-frequency burst
        width = rng.uniform(0.2, 1.0)
        shape = np.exp(-0.5 * ((t - onset) / (width / 2)) ** 2) * np.sin(
            2 * np.pi * rng.uniform(1.0, 5.0) * t
        )
    out = x.copy()
    out[leads] += rng.uniform(-cfg.electrode_max, cfg.electrode_max, size=(len(leads), 1)) * shape[None, :]
    return out


def bandpass_jitter(x: np.ndarray, fs: float, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    from encoder.preprocess import bandpass

    low, high = rng.uniform(cfg.low_hz[0], cfg.low_hz[1]), rng.uniform(cfg.high_hz[0], cfg.high_hz[1])
    return bandpass(
        x, fs, low=low, high=high if high < 0.95 * fs / 2 else None, order=int(rng.integers(2, 5))
    )


def lead_dropout(x: np.ndarray, fs: float, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    keep = rng.random(len(x)) >= cfg.p_dropout  # (12,)
    if not keep.any():
        keep[int(rng.integers(x.shape[0]))] = True  # never drop every lead
    return x * keep[:, None]


AUGMENTATIONS: dict[str, tuple[str | None, Transform]] = {
    "amplitude": ("p_amplitude", amplitude),
    "baseline_wander": ("p_baseline", baseline_wander),
    "gaussian_noise": ("p_gaussian", gaussian_noise),
    "emg_noise": ("p_emg", emg_noise),
    "electrode_artefact": ("p_electrode", electrode_artefact),
    "bandpass_jitter": ("p_bandpass", bandpass_jitter),
    "lead_dropout": (None, lead_dropout),  # per lead, inside the transform
}
"""Name -> (probability field of ``AugmentConfig`` or None for 'always', transform), applied in this order."""


def augment_record(
    x: np.ndarray, fs: float, cfg: AugmentConfig, rng: np.random.Generator, normalization: str = "zscore"
) -> np.ndarray:
    """One record (12, T) -> augmented and re-normalised (``zscore`` or ``center``) (12, T) float32; leads that
    were all zero stay zero."""
    from encoder.preprocess import normalize_leads

    present = np.abs(x).max(axis=-1) > 0  # (12,) absent / flat leads stay absent
    y = np.asarray(x, dtype=np.float64)
    for p_field, transform in AUGMENTATIONS.values():
        if p_field is None or rng.random() < getattr(cfg, p_field):
            y = transform(y, fs, cfg, rng)
    y = (y * present[:, None]).astype(np.float32)
    return normalize_leads(y, np.abs(y).max(axis=-1) > 0, normalization)


def augment_crops(
    x: np.ndarray, rng: np.random.Generator, *, cfg: AugmentConfig, fs: float, normalization: str = "zscore"
) -> np.ndarray:
    """Normalised crops (B, 12, T) float32 -> augmented and re-normalised (B, 12, T) float32, record by record.

    The ``transform`` of :class:`encoder.datasets.cache.CachedEcgDataset` (so it runs in the loader workers):
    bind ``cfg``, ``fs`` and ``normalization`` with ``functools.partial``.
    """
    return np.stack([augment_record(r, fs, cfg, rng, normalization) for r in x])
