"""One synthetic 12-lead record from a label set: physiology -> template -> beats -> heart vector -> leads + noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from encoder.synth.beat_model import Waves, derive_12_leads, project_independent, render_vcg, rotation
from encoder.synth.labels_effects import EFFECT_ORDER, EFFECTS
from encoder.synth.measurements import numeric_features
from encoder.synth.noise import electrode_noise, electrodes_to_independent_leads
from encoder.synth.patient import (
    Component,
    Physiology,
    normal_template,
    rotate_ventricular,
    sample_physiology,
)
from encoder.synth.patient import template_waves as to_waves
from encoder.synth.rhythm import NO_P, PAC, PVC, beat_times, fibrillatory_waves, flutter_cycle, flutter_waves


@dataclass
class SyntheticRecord:
    """A generated record and the ground truth it was generated from."""

    signal: np.ndarray
    """(12, T) float64 in mV, canonical lead order."""
    fs: float
    physiology: Physiology
    beat_onsets: np.ndarray
    """(N,) QRS onsets (s) of the beats inside the record."""
    beat_kinds: np.ndarray
    """(N,) beat kinds (see ``rhythm``)."""
    features: dict[str, float]
    """Ground-truth intervals in ms (see ``measurements.numeric_features``)."""


def _pvc_waves(ph: Physiology, rng: np.random.Generator) -> Waves:
    """One ectopic ventricular beat: wide bizarre QRS (two slow lobes) and a discordant T."""
    main = rng.normal(0, 1, 3)
    main /= np.linalg.norm(main)
    second = main + rng.normal(0, 0.6, 3)
    a = ph.qrs_amp * rng.uniform(1.2, 2.0)
    qrs1 = Component(0.045, 0.022, 0.02, a * main)
    qrs2 = Component(0.105, 0.02, 0.018, 0.6 * a * second / np.linalg.norm(second))
    t = Component(0.36, 0.075, 0.05, -0.35 * a * main)
    return to_waves({"V1": qrs1, "V2": qrs2, "T": t})


LOCAL_FRACTION = 0.12
"""Size of the non-dipolar, electrode-local part of each wave relative to its heart-vector magnitude."""


def _with_local(w: Waves, rng: np.random.Generator) -> Waves:
    """Append 9 electrode-local weights to each component's vector: a real torso is not a single dipole, and
    electrode placement varies, so leads are not exact linear mixtures of three signals."""
    mag = np.linalg.norm(w.vector, axis=1, keepdims=True)  # (K, 1)
    local = rng.normal(0.0, LOCAL_FRACTION, (len(w), 9)) * mag
    return Waves(w.center, w.sigma_left, w.sigma_right, np.concatenate([w.vector, local], axis=1), w.atrial)


def build_template(codes: frozenset[str], rng: np.random.Generator, age: float) -> tuple[Physiology, dict]:
    """Physiology and named beat template for a label set (normal, then each effect in ``EFFECT_ORDER``)."""
    ph = sample_physiology(rng, age)
    for code in EFFECT_ORDER:
        if code in codes and EFFECTS[code].physiology is not None:
            EFFECTS[code].physiology(ph, rng)
    tmpl = normal_template(ph, rng)
    for code in EFFECT_ORDER:
        if code in codes and EFFECTS[code].morphology is not None:
            EFFECTS[code].morphology(tmpl, ph, codes, rng)
    rotate_ventricular(tmpl, ph)
    return ph, tmpl


def synthesize_record(
    codes: frozenset[str],
    rng: np.random.Generator,
    *,
    age: float = 60.0,
    fs: float = 500.0,
    seconds: float = 10.0,
    noise_scale: float = 1.0,
) -> SyntheticRecord:
    """Generate one record (12, fs * seconds) in mV whose morphology and rhythm carry ``codes``."""
    num_samples = int(round(fs * seconds))
    ph, tmpl = build_template(codes, rng, age)
    ph.noise_scale *= noise_scale
    cycle = flutter_cycle(ph, rng) if ph.rhythm == "aflt" else None
    beats = beat_times(ph, rng, seconds, cycle)
    base = _with_local(to_waves(tmpl), rng)  # vectors (K, 3 + 9): heart vector + electrode-local part
    atrial = base.atrial
    pac_p = base.vector[atrial].copy()
    pac_p[:, :3] = pac_p[:, :3] * np.array([0.6, -0.7, 1.0]) + rng.normal(0, 0.02, (int(atrial.sum()), 3))
    pvc = _with_local(_pvc_waves(ph, rng), rng)
    rr_mean = 60.0 / ph.heart_rate
    is_t = np.array([name == "T" for name in tmpl])
    parts: list[Waves] = []
    resp_phase = rng.uniform(0, 2 * np.pi)
    for onset, kind, rr_prev in zip(beats.onset, beats.kind, beats.rr_prev, strict=True):
        resp = np.sin(2 * np.pi * ph.resp_rate * onset + resp_phase)
        if kind == PVC:
            w = pvc
            keep = np.ones(len(w), dtype=bool)
        else:
            w = base
            keep = ~atrial if kind == NO_P else np.ones(len(w), dtype=bool)
        centre = w.center + rng.normal(0, 0.0015, len(w))
        vec = w.vector.copy()
        if kind == PAC:
            vec[atrial] = pac_p
            centre = np.where(atrial, centre + 0.02, centre)
        if kind != PVC:  # QT follows the preceding RR (Bazett)
            centre = centre + is_t * ph.qtc * (np.sqrt(np.clip(rr_prev, 0.3, 2.0)) - np.sqrt(rr_mean))
        amp = 1.0 + ph.resp_amp * resp + rng.normal(0, 0.025)
        rot = rotation(2.5 * resp, 2.0 * resp)
        vent = ~w.atrial
        vec[vent, :3] = vec[vent, :3] @ rot.T
        vec[vent] *= amp
        vec[~vent] *= 1.0 + rng.normal(0, 0.05)
        parts.append(
            Waves(centre[keep] + onset, w.sigma_left[keep], w.sigma_right[keep], vec[keep], w.atrial[keep])
        )
    sources = render_vcg(Waves.concat(parts), fs, num_samples)  # (12, T): heart vector (3) + local (9)
    vcg = sources[:3]
    if ph.rhythm == "afib":
        vcg += fibrillatory_waves(rng, fs, num_samples)
    elif ph.rhythm == "aflt":
        vcg += flutter_waves(rng, fs, num_samples, cycle or 0.2)
    indep = project_independent(vcg)  # (8, T)
    electrodes = sources[3:] + electrode_noise(ph, rng, fs, num_samples)  # (9, T)
    indep += electrodes_to_independent_leads(electrodes)
    inside = (beats.onset >= 0) & (beats.onset < seconds)
    feats = numeric_features(ph, tmpl)
    return SyntheticRecord(derive_12_leads(indep), fs, ph, beats.onset[inside], beats.kind[inside], feats)
