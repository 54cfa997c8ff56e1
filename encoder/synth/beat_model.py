"""Heart-vector (VCG) beat model and the VCG -> 12-lead projection.

Each wave (P, septal Q, R, S, terminal forces, ST, T) is a 3-D dipole whose magnitude over time is an asymmetric
Gaussian. A record is the sum of all wave components of all beats, projected on the leads with Dower's transform
(Dower et al., J Electrocardiol 1988: the "Dower matrix" that derives leads V1-V6, I, II from Frank X, Y, Z).
Frank axes: X to the patient's left, Y to the feet, Z to the back. The four remaining limb leads follow Einthoven
(III = II - I) and Goldberger (aVR = -(I + II) / 2, aVL = I - II / 2, aVF = II - I / 2), so they hold exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Dower transform, rows = leads V1..V6, I, II; columns = Frank X, Y, Z (mV per mV).
DOWER = np.array(
    [
        [-0.515, 0.157, -0.917],
        [0.044, 0.164, -1.387],
        [0.882, 0.098, -1.277],
        [1.213, 0.127, -0.601],
        [1.125, 0.127, -0.086],
        [0.831, 0.076, 0.230],
        [0.632, -0.235, 0.059],
        [0.235, 1.066, -0.132],
    ],
    dtype=np.float64,
)

# The independent leads Dower gives, in this order; the other four are derived.
INDEPENDENT_LEADS = ("V1", "V2", "V3", "V4", "V5", "V6", "I", "II")


@dataclass
class Waves:
    """A set of wave components: one asymmetric Gaussian dipole each.

    Attributes:
        center: (K,) peak time in seconds (relative to the QRS onset for a beat template, absolute in a record).
        sigma_left: (K,) width before the peak, seconds.
        sigma_right: (K,) width after the peak, seconds.
        vector: (K, 3) dipole at the peak in mV along Frank X, Y, Z.
        atrial: (K,) bool, True for atrial waves (P, flutter, f-waves) that do not follow ventricular jitter.
    """

    center: np.ndarray
    sigma_left: np.ndarray
    sigma_right: np.ndarray
    vector: np.ndarray
    atrial: np.ndarray

    def __len__(self) -> int:
        return int(self.center.shape[0])


def render_vcg(waves: Waves, fs: float, num_samples: int) -> np.ndarray:
    """Sum the wave components into a heart-vector signal (D, T) in mV (D = vector size, 3 for a pure VCG)."""
    out = np.zeros((waves.vector.shape[1], num_samples))  # (D, T), D = 3 (+ local dims)
    for c, sl, sr, v in zip(waves.center, waves.sigma_left, waves.sigma_right, waves.vector, strict=True):
        lo = max(int((c - 4.0 * sl) * fs), 0)
        hi = min(int((c + 4.0 * sr) * fs) + 2, num_samples)
        if hi <= lo:
            continue
        t = np.arange(lo, hi) / fs - c
        sig = np.where(t < 0.0, sl, sr)
        out[:, lo:hi] += v[:, None] * np.exp(-0.5 * (t / sig) ** 2)[None, :]
    return out


def project_independent(vcg: np.ndarray) -> np.ndarray:
    """Heart vector (3, T) -> the eight independent leads (8, T): V1..V6, I, II."""
    return DOWER @ vcg


def derive_12_leads(indep: np.ndarray) -> np.ndarray:
    """Eight independent leads (8, T) (V1..V6, I, II) -> 12 leads (12, T) in canonical order."""
    v = indep[:6]
    lead_i, lead_ii = indep[6], indep[7]
    lead_iii = lead_ii - lead_i
    avr = -(lead_i + lead_ii) / 2.0
    avl = lead_i - lead_ii / 2.0
    avf = lead_ii - lead_i / 2.0
    return np.concatenate([np.stack([lead_i, lead_ii, lead_iii, avr, avl, avf]), v], axis=0)


def rotation(frontal_deg: float, horizontal_deg: float, sagittal_deg: float = 0.0) -> np.ndarray:
    """Rotation matrix (3, 3): frontal = about Z (X towards Y), horizontal = about Y (X towards Z), sagittal about X."""
    a, b, c = np.deg2rad([frontal_deg, horizontal_deg, sagittal_deg])
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, -np.sin(b)], [0, 1, 0], [np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    return rx @ ry @ rz
