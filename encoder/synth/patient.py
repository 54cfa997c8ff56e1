"""Per-patient physiology and the normal beat template it implies.

A ``Physiology`` holds the numbers a cardiologist would read off an ECG (rate, PR, QRS, QTc, axis, voltages) plus
the respiration and noise settings of the recording. ``normal_template`` turns it into named wave components
(see ``beat_model.Waves``) relative to the QRS onset; label effects then edit the template by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from encoder.synth.beat_model import Waves, rotation


@dataclass
class Component:
    """One wave: asymmetric Gaussian dipole (times in s relative to the QRS onset, vector in mV, Frank XYZ)."""

    center: float
    sigma_left: float
    sigma_right: float
    vector: np.ndarray
    atrial: bool = False


Template = dict[str, Component]


@dataclass
class Physiology:
    """Numbers that define one patient's ECG (normal values unless a label effect changed them)."""

    heart_rate: float = 70.0
    """Mean heart rate, beats per minute."""
    pr: float = 0.16
    """P onset to QRS onset, seconds."""
    qrs: float = 0.09
    """QRS duration, seconds."""
    qtc: float = 0.41
    """Bazett-corrected QT, seconds."""
    p_amp: float = 1.0
    """P-wave amplitude factor."""
    qrs_amp: float = 1.0
    """QRS amplitude factor."""
    t_amp: float = 1.0
    """T-wave amplitude factor."""
    frontal_rot: float = 0.0
    """Patient-specific rotation of the ventricular vectors in the frontal plane, degrees."""
    horizontal_rot: float = 0.0
    """Patient-specific rotation in the horizontal plane (moves the precordial transition zone), degrees."""
    resp_rate: float = 0.25
    """Breathing frequency, Hz."""
    rsa: float = 0.03
    """Respiratory sinus arrhythmia: fractional RR modulation."""
    lf_hrv: float = 0.02
    """Low-frequency (~0.1 Hz) fractional RR modulation."""
    rr_jitter: float = 0.01
    """Beat-to-beat random fractional RR variation."""
    rhythm: str = "sinus"
    """'sinus', 'afib' or 'aflt'."""
    ectopy: list[str] = field(default_factory=list)
    """Premature beats to insert: 'pvc' and/or 'pac'."""
    resp_amp: float = 0.05
    """Respiratory modulation of QRS amplitude (fraction)."""
    noise_scale: float = 1.0
    """Overall noise level factor."""


def sample_physiology(rng: np.random.Generator, age: float) -> Physiology:
    """Normal-range physiology with per-patient variation."""
    return Physiology(
        heart_rate=float(np.clip(rng.normal(70, 9), 61, 98)),
        pr=float(np.clip(rng.normal(0.148, 0.018), 0.122, 0.19)),
        qrs=float(np.clip(rng.normal(0.104, 0.007), 0.088, 0.116)),
        qtc=float(np.clip(rng.normal(0.433, 0.016), 0.395, 0.458)),
        p_amp=float(np.exp(rng.normal(0, 0.2))),
        qrs_amp=float(np.exp(rng.normal(0, 0.25)) * (1.1 if age < 40 else 1.0)),
        t_amp=float(np.exp(rng.normal(0, 0.25))),
        frontal_rot=float(np.clip(rng.normal(0, 16), -40, 40)),
        horizontal_rot=float(np.clip(rng.normal(0, 14), -30, 30)),
        resp_rate=float(rng.uniform(0.18, 0.33)),
        rsa=float(rng.uniform(0.01, 0.05)),
        lf_hrv=float(rng.uniform(0.0, 0.035)),
        rr_jitter=float(rng.uniform(0.005, 0.018)),
        resp_amp=float(rng.uniform(0.02, 0.10)),
        noise_scale=float(np.exp(rng.normal(-0.2, 0.4))),
    )


def normal_template(ph: Physiology, rng: np.random.Generator) -> Template:
    """Normal beat: P (right + left atrial), septal q, R, S, ST (zero), T; relative to the QRS onset."""
    q = ph.qrs / 0.092  # stretch QRS components with the QRS duration
    a = ph.qrs_amp
    jit = lambda s: rng.normal(0.0, s, 3)  # noqa: E731  (small per-patient shape variation)
    p0 = -ph.pr
    tmpl: Template = {
        "P1": Component(
            p0 + 0.032, 0.014, 0.014, ph.p_amp * (np.array([0.05, 0.06, -0.01]) + jit(0.015)), True
        ),
        "P2": Component(
            p0 + 0.057, 0.015, 0.013, ph.p_amp * (np.array([0.065, 0.02, 0.03]) + jit(0.015)), True
        ),
        "Q": Component(0.013 * q, 0.0065 * q, 0.006 * q, a * (np.array([-0.17, -0.04, -0.28]) + jit(0.04))),
        "R": Component(0.037 * q, 0.0088 * q, 0.0085 * q, a * (np.array([1.0, 0.42, 0.30]) + jit(0.12))),
        "S": Component(0.060 * q, 0.008 * q, 0.009 * q, a * (np.array([-0.16, -0.05, 0.32]) + jit(0.06))),
        # Normal J-point / ST elevation in the anterior leads (V1-V3), larger in the young.
        "ST": Component(ph.qrs + 0.05, 0.03, 0.03, np.array([0.01, 0.01, -0.06]) * rng.uniform(0.2, 1.4)),
        # Slow terminal QRS forces (rightward, superior) that fade into the early ST segment.
        "J": Component(ph.qrs + 0.01, 0.025, 0.04, a * (np.array([-0.03, -0.025, -0.015]) + jit(0.01))),
    }
    # QRS micro-structure (slurs, small notches): a few narrow components, patient-specific.
    for i in range(3):
        tmpl[f"F{i}"] = Component(rng.uniform(0.01, 0.07) * q, 0.0035, 0.0035, a * rng.normal(0.0, 0.12, 3))
    rr = 60.0 / ph.heart_rate
    qt = ph.qtc * np.sqrt(rr)
    t_sr = 0.036 + rng.normal(0, 0.003)
    t_sl = 0.070 + rng.normal(0, 0.007)
    t_vec = ph.t_amp * (np.array([0.27, 0.12, -0.15]) + jit(0.05))
    tmpl["T"] = Component(qt - 2.3 * t_sr, t_sl, t_sr, t_vec)
    return tmpl


def rotate_ventricular(tmpl: Template, ph: Physiology) -> None:
    """Apply the patient's anatomical axis rotation to all ventricular components (in place)."""
    rot = rotation(ph.frontal_rot, ph.horizontal_rot)
    for comp in tmpl.values():
        if not comp.atrial:
            comp.vector = rot @ comp.vector


def template_waves(tmpl: Template) -> Waves:
    """Named template -> ``Waves`` arrays (order of the dict)."""
    comps = list(tmpl.values())
    return Waves(
        np.array([c.center for c in comps]),
        np.array([c.sigma_left for c in comps]),
        np.array([c.sigma_right for c in comps]),
        np.stack([c.vector for c in comps]).astype(np.float64),
        np.array([c.atrial for c in comps], dtype=bool),
    )
