"""Data-driven beat shape model: median beats of real PTB-XL records (PCA), their noise, new patients from them.

The model (``encoder/resources/synth/shape_model.npz``, fitted by ``benchmarks/fit_shape_model.py`` on a fixed half
of the shared real records, see ``shape_fit``) holds, per fitted record: PCA coefficients of the median beat of the
eight independent leads (I, II, V1-V6; z-units of the real record), intervals (RR, PR, QRS, QT, R-peak offset), the
limb-lead scale ratio sigma_II / sigma_I, and the residual noise (per-lead spectrum, 8 x 8 correlation). A new
patient is a fitted record's coefficients plus Gaussian jitter (a smoothed bootstrap in PCA space), put in mV with
per-lead scales (``lead_scale_mv``: typical std of each lead in mV, from the parametric VCG model) and the measured
limb ratio, so Einthoven and Goldberger hold once the other four leads are derived.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from encoder.errors import DatasetError

JITTER = 0.35
"""Std of the Gaussian jitter of the PCA coefficients, as a fraction of each coefficient's population std."""


@dataclass
class BeatShape:
    """One sampled patient: median beat (8, L) in mV (I, II, V1..V6) around the R peak, and what goes with it."""

    template: np.ndarray
    pre_s: float
    """Seconds of the template before the R peak."""
    fs: float
    rr: float
    pr: float
    qrs: float
    qt: float
    r_off: float
    """R peak minus QRS onset, seconds."""
    scale_mv: np.ndarray
    """(8,) mV per z-unit of each lead."""
    noise_psd: np.ndarray
    """(8, F) residual noise spectrum, z-units^2 / Hz, at ``noise_freqs``."""
    noise_freqs: np.ndarray
    noise_corr: np.ndarray
    """(8, 8) correlation of the residual noise between the independent leads."""


@dataclass
class ShapeModel:
    """Arrays of a fitted model (see ``shape_fit.fit_shape_model``)."""

    arrays: dict[str, np.ndarray]

    @property
    def size(self) -> int:
        return int(self.arrays["coeffs"].shape[0])

    def sample(self, rng: np.random.Generator, amplitude: float = 1.0) -> BeatShape:
        """A new patient near a random fitted record; ``amplitude`` multiplies the overall mV scale."""
        a = self.arrays
        j = int(rng.integers(self.size))
        coeffs = a["coeffs"]
        c = coeffs[j] + rng.normal(0.0, JITTER, coeffs.shape[1]) * coeffs.std(axis=0)
        flat = a["mean"].astype(np.float64) + c @ a["components"].astype(np.float64)
        tmpl = flat.reshape(tuple(int(v) for v in a["template_shape"]))
        tmpl = resample_poly(tmpl, 2, 1, axis=1)  # stored at half the rate
        lead = a["lead_scale_mv"].astype(np.float64)
        sigma_ii = lead[1] * amplitude
        scale = lead / lead[1] * sigma_ii * np.exp(rng.normal(0.0, 0.12, 8))
        scale[1] = sigma_ii
        scale[0] = sigma_ii / float(a["limb_ratio"][j])
        return BeatShape(
            template=tmpl * scale[:, None],
            pre_s=float(a["pre_s"]),
            fs=2.0 * float(a["fs"]),
            rr=float(a["rr"][j]),
            pr=float(a["pr"][j]),
            qrs=float(a["qrs"][j]),
            qt=float(a["qt"][j]),
            r_off=float(a["r_off"][j]),
            scale_mv=scale,
            noise_psd=np.exp(a["noise_psd"][j].astype(np.float64)),
            noise_freqs=a["noise_freqs"].astype(np.float64),
            noise_corr=a["noise_corr"][j].astype(np.float64),
        )


def default_path() -> Path:
    return Path(str(resources.files("encoder") / "resources" / "synth" / "shape_model.npz"))


REQUIRED_KEYS = (
    "mean", "components", "coeffs", "template_shape", "pre_s", "fs", "limb_ratio", "rr", "pr", "qrs", "qt",
    "r_off", "noise_psd", "noise_corr", "noise_freqs", "lead_scale_mv", "fitted_indices",
)  # fmt: skip


@lru_cache(maxsize=4)
def load_shape_model(path: str | None = None) -> ShapeModel:
    """The shipped model (or the one at ``path``); a missing or incomplete file raises ``DatasetError``."""
    file = Path(path) if path else default_path()
    try:
        with np.load(file, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise DatasetError(f"cannot read the synthetic shape model {file}: {e}") from e
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise DatasetError(
            f"synthetic shape model {file} lacks {', '.join(missing)}; refit it with benchmarks/fit_shape_model.py"
        )
    return ShapeModel(arrays)


def shaped_noise(shape: BeatShape, rng: np.random.Generator, fs: float, num_samples: int) -> np.ndarray:
    """Noise of the eight independent leads (8, T) in mV with the patient's residual spectrum and correlation."""
    white = rng.standard_normal((8, num_samples))
    chol = np.linalg.cholesky(shape.noise_corr + 1e-3 * np.eye(8))
    freqs = np.fft.rfftfreq(num_samples, 1.0 / fs)
    psd = np.stack([np.interp(freqs, shape.noise_freqs, p) for p in shape.noise_psd])  # (8, F)
    spec = np.fft.rfft(chol @ white, axis=1) * np.sqrt(psd * fs / 2.0)
    return np.fft.irfft(spec, n=num_samples, axis=1) * shape.scale_mv[:, None]
