"""How each modelled SCP statement changes the physiology and the beat template.

``EFFECTS`` maps an SCP code to an ``Effect`` with up to two steps: ``physiology`` (rates, intervals, rhythm;
applied before the template is built) and ``morphology`` (edits the named wave components; applied after).
Codes are applied in ``EFFECT_ORDER`` so combinations (e.g. LAFB + CRBBB) compose predictably.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from encoder.synth.patient import Component, Physiology, Template

Rng = np.random.Generator


@dataclass(frozen=True)
class Effect:
    """What one SCP statement does to a record."""

    physiology: Callable[[Physiology, Rng], None] | None = None
    morphology: Callable[[Template, Physiology, frozenset[str], Rng], None] | None = None


def _rate(lo: float, hi: float) -> Callable[[Physiology, Rng], None]:
    def fn(ph: Physiology, rng: Rng) -> None:
        ph.heart_rate = float(rng.uniform(lo, hi))

    return fn


def _sarrh(ph: Physiology, rng: Rng) -> None:
    ph.heart_rate = float(rng.uniform(58, 88))
    ph.rsa = float(rng.uniform(0.09, 0.17))
    ph.lf_hrv = float(rng.uniform(0.02, 0.05))


def _afib(ph: Physiology, rng: Rng) -> None:
    ph.rhythm = "afib"
    ph.heart_rate = float(rng.uniform(62, 125))


def _aflt(ph: Physiology, rng: Rng) -> None:
    ph.rhythm = "aflt"


def _avb1(ph: Physiology, rng: Rng) -> None:
    ph.pr = float(rng.uniform(0.22, 0.32))


def _wpw_phys(ph: Physiology, rng: Rng) -> None:
    ph.pr = float(rng.uniform(0.085, 0.11))


def _wpw(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
    shift = float(rng.uniform(0.03, 0.045))
    for name in ("Q", "R", "S"):
        t[name].center += shift
    r = t["R"].vector
    t["Q"].vector = t["Q"].vector * 0.2
    t["DELTA"] = Component(0.022, 0.022, 0.012, r * rng.uniform(0.28, 0.4))
    ph.qrs = ph.qrs + shift
    t["ST"].center += shift
    t["T"].vector = t["T"].vector * 0.6 - 0.25 * r / max(float(np.linalg.norm(r)), 1e-6) * 0.3


def _clbbb_phys(ph: Physiology, rng: Rng) -> None:
    ph.qrs = float(rng.uniform(0.15, 0.19))


def _clbbb(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
    q = ph.qrs / 0.15
    a = ph.qrs_amp * rng.uniform(1.0, 1.4)
    t["Q"] = Component(0.018 * q, 0.009 * q, 0.009 * q, a * np.array([0.18, 0.05, 0.22]))
    t["R"] = Component(0.055 * q, 0.02 * q, 0.018 * q, a * np.array([0.75, 0.2, 0.85]))
    t["R2"] = Component(0.100 * q, 0.018 * q, 0.016 * q, a * np.array([0.7, 0.05, 1.0]))
    t["S"].vector = np.zeros(3)
    t["T"].vector = -ph.t_amp * rng.uniform(0.9, 1.3) * np.array([0.35, 0.08, 0.45])
    t["ST"] = Component(ph.qrs + 0.045, 0.035, 0.04, -np.array([0.06, 0.0, 0.10]) * rng.uniform(0.8, 1.4))


def _rbbb(strength: tuple[float, float], center: float, width: float) -> Callable:
    def fn(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
        k = ph.qrs_amp * rng.uniform(*strength)
        c = center + rng.uniform(-0.004, 0.006)
        t["RP"] = Component(c, width, width * 0.85, k * np.array([-0.55, 0.05, -0.75]))
        t["S"].vector = t["S"].vector * 0.6
        ph.qrs = max(ph.qrs, c + 2.4 * width * 0.85)
        t["ST"].center = ph.qrs + 0.05
        if center > 0.085:  # complete block: secondary T inversion in V1-V2
            t["T"].vector = t["T"].vector + ph.t_amp * np.array([0.05, 0.0, 0.3])

    return fn


def _lafb(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
    r = t["R"].vector
    mag = float(np.hypot(r[0], r[1]))
    ang = np.deg2rad(rng.uniform(-68, -48))
    t["R"].vector = np.array([mag * np.cos(ang), mag * np.sin(ang), r[2]])
    t["Q"].vector = ph.qrs_amp * np.array([-0.08, 0.22, -0.18])
    t["S"].vector = t["S"].vector * np.array([0.8, 0.2, 1.0])
    ph.frontal_rot = float(np.clip(ph.frontal_rot, -8, 8))


def _voltage(lo: float, hi: float, strain: float) -> Callable:
    def fn(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
        if "LVH" in codes and strain == 0.0:  # VCLVH alongside LVH: LVH already raised the voltage
            return
        k = rng.uniform(lo, hi)
        t["R"].vector = t["R"].vector * np.array([k, 0.8 * k, 0.9 * k])
        t["S"].vector = t["S"].vector * k * 1.15
        ph.frontal_rot = float(np.clip(ph.frontal_rot, -30, 20))
        # Strain: ST-T opposite to the left-posterior QRS (down in I, aVL, V5-V6, up in V1-V3).
        if rng.random() < strain:
            t["T"].vector = t["T"].vector * np.array([-0.6, -0.3, 1.2]) + ph.t_amp * np.array(
                [0.0, 0.0, -0.08]
            )
            t["ST"].vector = t["ST"].vector + np.array([-0.06, -0.02, -0.04])

    return fn


def _lvolt(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
    k = rng.uniform(0.28, 0.4)
    for name in ("Q", "R", "R2", "S", "J", "RP", "DELTA"):
        if name in t:
            t[name].vector = t[name].vector * k
    t["T"].vector = t["T"].vector * 0.6


def _imi(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
    a = ph.qrs_amp
    t["Q"] = Component(0.02, 0.010, 0.013, a * np.array([0.05, -0.26, -0.08]) * rng.uniform(0.8, 1.3))
    t["R"].vector = t["R"].vector * np.array([1.0, 0.55, 1.0])
    if rng.random() < 0.6:
        t["T"].vector = t["T"].vector * np.array([1.0, -0.6, 1.0])


def _asmi(lateral: bool) -> Callable:
    def fn(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
        a = ph.qrs_amp
        t["Q"] = Component(0.02, 0.010, 0.012, a * np.array([0.02, 0.05, 0.24]) * rng.uniform(0.8, 1.3))
        t["R"].vector = t["R"].vector + a * np.array([0.0, 0.0, 0.3])
        if lateral:
            t["R"].vector = t["R"].vector * np.array([0.6, 1.0, 1.0])
        if rng.random() < 0.5:
            t["T"].vector = t["T"].vector + ph.t_amp * np.array([0.0, 0.0, 0.35])
        if rng.random() < 0.3:
            t["ST"].vector = t["ST"].vector + np.array([0.0, 0.0, -0.09])

    return fn


def _isc(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
    t["T"].vector = -t["T"].vector * rng.uniform(0.4, 0.8)
    t["ST"].vector = t["ST"].vector + np.array([-0.05, -0.03, 0.03]) * rng.uniform(0.5, 1.5)


def _std(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
    t["ST"].vector = t["ST"].vector + np.array([-0.07, -0.05, 0.05]) * rng.uniform(0.9, 1.6)
    t["ST"].sigma_left = t["ST"].sigma_right = 0.04


def _ste(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
    t["ST"].vector = t["ST"].vector + np.array([0.03, 0.05, -0.09]) * rng.uniform(0.9, 1.6)
    t["ST"].sigma_left = t["ST"].sigma_right = 0.04


def _invt(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
    if "ISC_" not in codes:
        t["T"].vector = -t["T"].vector * rng.uniform(0.5, 0.9)


def _ndt(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
    ang = np.deg2rad(rng.uniform(40, 80) * rng.choice([-1, 1]))
    v = t["T"].vector
    t["T"].vector = rng.uniform(0.3, 0.55) * np.array(
        [v[0] * np.cos(ang) - v[2] * np.sin(ang), v[1], v[0] * np.sin(ang) + v[2] * np.cos(ang)]
    )


def _lowt(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
    t["T"].vector = t["T"].vector * rng.uniform(0.15, 0.3)


def _nst(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
    """Non-specific ST-T changes: slight ST shift and flatter T."""
    t["ST"].vector = t["ST"].vector + np.array([-0.04, -0.03, 0.03]) * rng.uniform(0.8, 1.4)
    t["T"].vector = t["T"].vector * rng.uniform(0.45, 0.7)


def _nt(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
    """Non-specific T-wave changes: flatter T turned 25-45 degrees in the horizontal plane."""
    ang = np.deg2rad(rng.uniform(25, 45) * rng.choice([-1, 1]))
    v = t["T"].vector * rng.uniform(0.45, 0.7)
    t["T"].vector = np.array(
        [v[0] * np.cos(ang) - v[2] * np.sin(ang), v[1], v[0] * np.sin(ang) + v[2] * np.cos(ang)]
    )


def _tab(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
    """T-wave abnormality: T turned away from the left ventricle (flat or negative in I, aVL, V5-V6)."""
    t["T"].vector = t["T"].vector * np.array([-0.4, 0.6, 1.0]) + ph.t_amp * np.array([0.0, 0.0, 0.06])


def _dig_phys(ph: Physiology, rng: Rng) -> None:
    ph.qtc = float(rng.uniform(0.36, 0.4))


def _dig(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
    """Digitalis effect: scooped (wide, sagging) ST depression, low T, short QT."""
    t["ST"].vector = t["ST"].vector + np.array([-0.07, -0.06, 0.04]) * rng.uniform(0.9, 1.4)
    t["ST"].sigma_left = t["ST"].sigma_right = 0.06
    t["T"].vector = t["T"].vector * rng.uniform(0.4, 0.6)


def _lngqt(ph: Physiology, rng: Rng) -> None:
    ph.qtc = float(rng.uniform(0.49, 0.56))


def _lae(t: Template, ph: Physiology, codes: frozenset[str], rng: Rng) -> None:
    p2 = t["P2"]
    p2.center += 0.025
    p2.sigma_left, p2.sigma_right = 0.02, 0.018
    p2.vector = p2.vector * 1.4 + np.array([0.0, 0.0, 0.07])


def _ectopy(kind: str) -> Callable[[Physiology, Rng], None]:
    def fn(ph: Physiology, rng: Rng) -> None:
        ph.ectopy.append(kind)

    return fn


EFFECTS: dict[str, Effect] = {
    "NORM": Effect(),
    "SR": Effect(),
    "SBRAD": Effect(physiology=_rate(42, 57)),
    "STACH": Effect(physiology=_rate(104, 140)),
    "SARRH": Effect(physiology=_sarrh),
    "AFIB": Effect(physiology=_afib),
    "AFLT": Effect(physiology=_aflt),
    "1AVB": Effect(physiology=_avb1),
    "WPW": Effect(physiology=_wpw_phys, morphology=_wpw),
    "CLBBB": Effect(physiology=_clbbb_phys, morphology=_clbbb),
    "LAFB": Effect(morphology=_lafb),
    "CRBBB": Effect(morphology=_rbbb((0.9, 1.3), 0.10, 0.020)),
    "IRBBB": Effect(morphology=_rbbb((0.45, 0.7), 0.078, 0.012)),
    "LVH": Effect(morphology=_voltage(2.3, 2.9, strain=0.6)),
    "VCLVH": Effect(morphology=_voltage(2.1, 2.6, strain=0.0)),
    "LVOLT": Effect(morphology=_lvolt),
    "HVOLT": Effect(morphology=_voltage(1.6, 2.0, strain=0.0)),
    "IMI": Effect(morphology=_imi),
    "ASMI": Effect(morphology=_asmi(lateral=False)),
    "AMI": Effect(morphology=_asmi(lateral=True)),
    "ISC_": Effect(morphology=_isc),
    "STD_": Effect(morphology=_std),
    "STE_": Effect(morphology=_ste),
    "INVT": Effect(morphology=_invt),
    "NDT": Effect(morphology=_ndt),
    "LOWT": Effect(morphology=_lowt),
    "NST_": Effect(morphology=_nst),
    "NT_": Effect(morphology=_nt),
    "TAB_": Effect(morphology=_tab),
    "DIG": Effect(physiology=_dig_phys, morphology=_dig),
    "LNGQT": Effect(physiology=_lngqt),
    "LAO/LAE": Effect(morphology=_lae),
    "QWAVE": Effect(),
    "PVC": Effect(physiology=_ectopy("pvc")),
    "PAC": Effect(physiology=_ectopy("pac")),
}

# Application order: rate/rhythm first, conduction, then voltage, infarction and repolarisation.
EFFECT_ORDER: tuple[str, ...] = (
    "NORM", "SR", "SBRAD", "STACH", "SARRH", "AFIB", "AFLT", "1AVB", "WPW", "CLBBB", "LAFB", "CRBBB", "IRBBB",
    "LVH", "VCLVH", "HVOLT", "LVOLT", "IMI", "ASMI", "AMI", "ISC_", "STD_", "STE_", "INVT", "NDT", "LOWT", "NST_",
    "NT_", "TAB_", "DIG", "LNGQT", "LAO/LAE", "QWAVE", "PVC", "PAC",
)  # fmt: skip

MODELLED_CODES: frozenset[str] = frozenset(EFFECTS)


# --- infarction stage (ECG-QA's stage_of_infarction; PTB-XL's infarction_stadium) ------------------------------

INFARCT_WALL: dict[str, tuple[float, float, float]] = {
    "IMI": (0.0, 1.0, 0.0),
    "ASMI": (0.0, 0.0, -1.0),
    "AMI": (0.45, 0.0, -0.9),
}
"""Infarction code -> direction towards the infarcted wall (Frank XYZ: +x left, +y inferior, -z anterior)."""


def infarct_wall(codes: frozenset[str]) -> np.ndarray | None:
    """Unit vector (3,) towards the infarcted wall(s) of ``codes``; None without a modelled infarction."""
    walls = [np.array(v) for c, v in INFARCT_WALL.items() if c in codes]
    if not walls:
        return None
    d = np.sum(walls, axis=0)
    return d / max(float(np.linalg.norm(d)), 1e-9)


def _stage_early(t: Template, ph: Physiology, wall: np.ndarray, rng: Rng) -> None:
    """Acute (Stadium I, I-II): ST elevation and tall (hyperacute) T towards the wall, Q waves not yet formed."""
    t["ST"].vector = t["ST"].vector + wall * rng.uniform(0.4, 0.6)
    t["ST"].sigma_left = t["ST"].sigma_right = 0.05
    t["T"].vector = t["T"].vector + wall * float(np.linalg.norm(t["T"].vector)) * rng.uniform(0.8, 1.3)
    t["Q"].vector = t["Q"].vector * 0.3


def _stage_middle(t: Template, ph: Physiology, wall: np.ndarray, rng: Rng) -> None:
    """Evolving (Stadium II, II-III): Q waves, residual ST elevation, T inverted over the wall."""
    t["ST"].vector = t["ST"].vector + wall * rng.uniform(0.03, 0.07)
    towards = float(t["T"].vector @ wall)
    size = float(np.linalg.norm(t["T"].vector))
    t["T"].vector = t["T"].vector - wall * (towards + size * rng.uniform(0.6, 1.0))


def _stage_old(t: Template, ph: Physiology, wall: np.ndarray, rng: Rng) -> None:
    """Old (Stadium III): Q waves only; ST back at baseline and T upright again over the wall."""
    towards = float(t["T"].vector @ wall)
    if towards < 0.0:
        t["T"].vector = t["T"].vector - wall * towards * rng.uniform(1.1, 1.5)


STAGE_EFFECTS: dict[str, Callable[[Template, Physiology, np.ndarray, Rng], None]] = {
    "early stage of myocardial infarction": _stage_early,
    "middle stage of myocardial infarction": _stage_middle,
    "old stage of myocardial infarction": _stage_old,
}
"""ECG-QA stage -> change of an infarction beat (after the codes' effects); "unknown" stage changes nothing."""
