"""One synthetic 12-lead record from a label set: data-driven patient beat + label effect -> beats -> leads + noise."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from encoder.ecgqa.attributes import LeadMask
from encoder.synth.artefacts import annotated_noise, pacemaker_spikes
from encoder.synth.beat_model import Waves, derive_12_leads, project_independent, render_vcg
from encoder.synth.beat_render import WINDOW_S, render_beats
from encoder.synth.form_leads import beat_levels, form_lead_masks
from encoder.synth.labels_effects import EFFECT_ORDER, EFFECTS, STAGE_EFFECTS, infarct_wall
from encoder.synth.measurements import numeric_features, numeric_min_max
from encoder.synth.noise import electrode_noise, electrodes_to_independent_leads
from encoder.synth.patient import (
    Component,
    Physiology,
    normal_template,
    rotate_ventricular,
    sample_physiology,
)
from encoder.synth.patient import template_waves as to_waves
from encoder.synth.rhythm import (
    PAC,
    PVC,
    SINUS,
    Beats,
    beat_times,
    fibrillatory_waves,
    flutter_cycle,
    flutter_waves,
)
from encoder.synth.shape_model import BeatShape, load_shape_model, shaped_noise


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
    numeric_ms: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Ground-truth (min, max) over the record's beats in ms (see ``measurements.numeric_min_max``)."""
    axis_deg: float = float("nan")
    """Heart axis (degrees) of the mean beat by ECG-QA's rule (``frontal_axis``)."""
    form_leads: dict[str, LeadMask] = field(default_factory=dict)
    """Lead-localised form statement among the codes -> leads its change is seen in (``form_leads``)."""


@dataclass
class RecordExtras:
    """What a record carries besides its SCP codes (ECG-QA's annotated attributes)."""

    noise: dict[str, LeadMask] = field(default_factory=dict)
    """Noise type (``attributes.NOISE_TYPES``) -> leads it is put on."""
    axis_deg: float | None = None
    """Frontal QRS axis to set (degrees, -180..180, positive = towards aVF); ``None`` keeps the patient's."""
    infarction_stage: str | None = None
    """ECG-QA stage (``labels_effects.STAGE_EFFECTS``) the infarction codes are shown in; None = as coded."""


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


def _pac_p_delta(
    normal: dict, rng: np.random.Generator, fs: float, r_off: float, p_normal: np.ndarray
) -> np.ndarray:
    """(8, W) change of the P wave of a premature atrial beat: an ectopic focus low in the atrium (P axis superior,
    smaller leftward part), as parametric P wave minus the normal parametric beat."""
    ecto = {k: replace(c) for k, c in normal.items()}
    for name in ("P1", "P2"):
        ecto[name].vector = ecto[name].vector * np.array([0.6, -0.7, 1.0]) + rng.normal(0.0, 0.01, 3)
    return _beat_leads(to_waves(ecto), -r_off, fs) - p_normal


REPLACE_QRS = frozenset({"CLBBB", "WPW"})
"""Codes whose QRS replaces the data-driven QRS (left bundle branch block and pre-excitation change the whole
ventricular activation; right bundle branch block only adds late forces, so it goes on top)."""

FORM_SCALE = 0.7
"""Size of the infarction, axis and ST-T label effects relative to the parametric model's (whose sizes were tuned
on its own beats; on real-data beats they stood out)."""
FULL_SIZE = frozenset({"LVH", "VCLVH", "CLBBB", "WPW"})
"""Codes whose effect keeps the parametric size (voltage criteria, bundle branch block widths)."""

QRS_RANGE = (0.07, 0.11)
"""Range (s) of the data beat's QRS duration used as ground truth (as ``beat_render`` uses it)."""

DATA_SCALED = frozenset({"LVOLT"})
"""Codes applied by scaling the data-driven beat instead of a parametric difference."""

DATA_NOISE = 0.6
"""Scale of the data-driven residual noise: the residual of a real record also holds beat-to-beat variation of
the P and T waves, which the per-beat amplitude modulation already produces."""

ELECTRODE_NOISE = 0.1
"""Scale of the parametric electrode noise (baseline wander, motion, powerline, EMG) on top of the data-driven residual."""


def _label_templates(
    codes: frozenset[str], rng: np.random.Generator, age: float, shape: BeatShape, stage: str | None = None
) -> tuple[Physiology, dict, dict, tuple[dict, dict] | None]:
    """Physiology (intervals from the data-driven beat, then the label effects) and parametric templates with the
    same jitter: the normal beat and the beat with all codes' morphology, and (if ``codes`` hold full-size codes)
    a normal / label pair with the ``FULL_SIZE`` codes' morphology only. The differences are the label effects
    that go on top of the data-driven beat."""
    ph = sample_physiology(rng, age)
    # the data beat's rate, kept sinus-normal; rate codes override it below
    ph.heart_rate = float(np.clip(60.0 / shape.rr * np.exp(rng.normal(0.0, 0.04)), 61.0, 99.0))
    ph.pr = float(np.clip(shape.pr, 0.11, 0.2))
    ph.qtc = float(np.clip(shape.qt / np.sqrt(shape.rr), 0.38, 0.47))
    qrs_normal = ph.qrs
    for code in EFFECT_ORDER:
        change = EFFECTS[code].physiology
        if code in codes and change is not None:
            change(ph, rng)
    seed = int(rng.integers(2**62))
    morph = [  # (code, its morphology effect)
        (c, m)
        for c in EFFECT_ORDER
        if c in codes and c not in DATA_SCALED and (m := EFFECTS[c].morphology) is not None
    ]
    code_seed = {
        c: (seed, i) for i, (c, _) in enumerate(morph)
    }  # same draws for a code in both label templates
    has_full = bool(codes & FULL_SIZE)
    ph_full = replace(ph)
    full = normal_template(ph_full, np.random.default_rng(seed)) if has_full else None
    tmpl = normal_template(ph, np.random.default_rng(seed))
    for code, morphology in morph:
        morphology(tmpl, ph, codes, np.random.default_rng(code_seed[code]))
        if code in FULL_SIZE and full is not None:  # full is built whenever codes hold a FULL_SIZE code
            morphology(full, ph_full, codes, np.random.default_rng(code_seed[code]))
    wall = infarct_wall(codes)
    if stage in STAGE_EFFECTS and wall is not None:
        STAGE_EFFECTS[stage](tmpl, ph, wall, np.random.default_rng([seed, 1]))
    normal = normal_template(replace(ph, qrs=qrs_normal), np.random.default_rng(seed))
    rotate_ventricular(tmpl, ph)
    rotate_ventricular(normal, ph)
    full_pair = None
    if full is not None:  # has_full
        normal_full = normal_template(replace(ph_full, qrs=qrs_normal), np.random.default_rng(seed))
        rotate_ventricular(full, ph_full)
        rotate_ventricular(normal_full, ph_full)
        full_pair = (normal_full, full)
    if not codes & REPLACE_QRS:
        # The signal carries the data QRS; a widening effect (RBBB) adds late forces at a fixed time after the
        # QRS onset, so the QRS then ends at the later of the two ends.
        data_qrs = float(np.clip(shape.qrs, QRS_RANGE[0], QRS_RANGE[1]))
        ph.qrs = max(data_qrs, ph.qrs) if ph.qrs > qrs_normal else data_qrs
    return ph, normal, tmpl, full_pair


_TO_MODEL_ORDER = np.array([6, 7, 0, 1, 2, 3, 4, 5])  # Dower's V1..V6, I, II -> I, II, V1..V6
_TO_DOWER_ORDER = np.array([2, 3, 4, 5, 6, 7, 0, 1])


def _beat_leads(w: Waves, onset: float, fs: float) -> np.ndarray:
    """One beat of ``w`` (QRS onset at ``onset`` s relative to the R peak) on the ``WINDOW_S`` grid -> (8, W) mV."""
    shifted = Waves(w.center + onset - WINDOW_S[0], w.sigma_left, w.sigma_right, w.vector[:, :3], w.atrial)
    n = int(WINDOW_S[1] * fs) - int(WINDOW_S[0] * fs)
    return project_independent(render_vcg(shifted, fs, n))[_TO_MODEL_ORDER]


def _region_gain(
    data: np.ndarray, param: np.ndarray, t: np.ndarray, shape: BeatShape, qt: float
) -> np.ndarray:
    """(W,) gain that gives the parametric waves the data beat's size: P, QRS and ST-T regions separately."""
    q_on = -shape.r_off
    edges = [(q_on - shape.pr, q_on - 0.02), (q_on, q_on + 0.1), (q_on + 0.15, q_on + qt)]
    gains = []
    for lo, hi in edges:
        sel = (t >= lo) & (t < hi)
        g = (
            np.sqrt(np.mean(data[:, sel] ** 2) / max(np.mean(param[:, sel] ** 2), 1e-12))
            if sel.any()
            else 1.0
        )
        gains.append(float(np.clip(g, 0.3, 3.0)))
    xs = [q_on - 0.02, q_on, q_on + 0.1, q_on + 0.15]
    return np.interp(t, xs, [gains[0], gains[1], gains[1], gains[2]])


AXIS_WINDOW_S = 0.1
"""Half-width (s) around the R peak for the net QRS amplitude (ECG-QA's axis rule, as ``encoder.ecg_measurements``)."""


def frontal_axis(beat: np.ndarray, t: np.ndarray, q_on: float) -> float:
    """ECG-QA's heart axis (degrees) of a mean beat (8, W) on grid ``t`` (s, R peak at 0): the angle of the net QRS
    amplitude (max + min within ``AXIS_WINDOW_S`` of the R peak, relative to the QRS onset) in I and aVF."""
    sel = np.abs(t) < AXIS_WINDOW_S
    onset = int(np.searchsorted(t, q_on))

    def net(x: np.ndarray) -> float:
        seg = x[sel] - x[onset]
        return float(seg.max() + seg.min())

    return float(np.degrees(np.arctan2(net(beat[1] - 0.5 * beat[0]), net(beat[0]))))


def rotate_limb_leads(indep: np.ndarray, degrees: float) -> None:
    """Rotate the frontal-plane part (rows I, II of ``indep`` (8, T)) by ``degrees`` (towards aVF), in place."""
    x = indep[0]
    y = (2.0 * indep[1] - indep[0]) / np.sqrt(3.0)
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    x2, y2 = c * x - s * y, s * x + c * y
    indep[0] = x2
    indep[1] = 0.5 * x2 + np.sqrt(3.0) / 2.0 * y2


def _place_beats(
    indep: np.ndarray,
    delta: np.ndarray,
    pvc_beat: np.ndarray,
    pac_delta: np.ndarray | None,
    r_times: np.ndarray,
    amp: np.ndarray,
    kinds: np.ndarray,
    fs: float,
) -> None:
    """Add each beat's label effect (8, W) (or the PVC beat; a PAC's ectopic P wave) to ``indep`` (8, T) in place."""
    w, num_samples = delta.shape[1], indep.shape[1]
    for r, a, kind in zip(r_times, amp, kinds, strict=True):
        s0 = int(round(r * fs)) + int(WINDOW_S[0] * fs)
        lo, hi = max(s0, 0), min(s0 + w, num_samples)
        if hi > lo:
            is_vent = kind != PVC
            indep[:, lo:hi] += (delta if is_vent else pvc_beat)[:, lo - s0 : hi - s0] * (
                a if is_vent else 1.0
            )
            if kind == PAC and pac_delta is not None:  # ectopic atrial focus: a different P wave
                indep[:, lo:hi] += pac_delta[:, lo - s0 : hi - s0] * a


def _add_recording(
    indep: np.ndarray,
    paced: bool,
    onsets: np.ndarray,
    noise: dict[str, LeadMask],
    ph: Physiology,
    shape: BeatShape,
    rng: np.random.Generator,
    fs: float,
    noise_scale: float,
) -> None:
    """Add to ``indep`` (8, T) in place what the recording adds: pacing spikes, ECG-QA's annotated noise on its
    leads, the data-driven residual and the parametric electrode noise."""
    num_samples = indep.shape[1]
    if paced:
        indep += project_independent(pacemaker_spikes(onsets, rng, fs, num_samples))[_TO_MODEL_ORDER]
    indep += electrodes_to_independent_leads(annotated_noise(noise, rng, fs, num_samples))[_TO_MODEL_ORDER]
    indep += noise_scale * DATA_NOISE * shaped_noise(shape, rng, fs, num_samples)
    ph.noise_scale *= noise_scale * ELECTRODE_NOISE
    indep += electrodes_to_independent_leads(electrode_noise(ph, rng, fs, num_samples))[_TO_MODEL_ORDER]


def _axis_turn(data_mean: np.ndarray, delta: np.ndarray, t: np.ndarray, q_on: float, target: float) -> float:
    """Frontal rotation (degrees) of the data beat (8, W) that puts the axis of data beat + label effect at
    ``target`` (a few fixed-point steps; a large label effect may leave it short)."""
    turn = 0.0
    for _ in range(6):
        beat = data_mean.copy()
        rotate_limb_leads(beat, turn)
        miss = target - frontal_axis(beat + delta, t, q_on)
        turn += (miss + 180.0) % 360.0 - 180.0
    return turn


def _patient_shape(rng: np.random.Generator, age: float, shape_seed: int | None) -> BeatShape:
    """The data-driven beat of the patient; a patient's records share ``shape_seed`` (the same heart under each
    label set), else it is drawn from ``rng``."""
    shape_rng = rng if shape_seed is None else np.random.default_rng(shape_seed)
    return load_shape_model().sample(
        shape_rng, amplitude=float(np.exp(shape_rng.normal(0, 0.2))) * (1.1 if age < 40 else 1.0)
    )


@dataclass
class _MeanBeat:
    """The record's mean beat on the beat grid ``t`` (s, R peak at 0): the data-driven beat and the label effect."""

    t: np.ndarray
    """(W,) beat grid (s)."""
    data: np.ndarray
    """(8, W) data-driven beat, turned to the record's heart axis."""
    delta: np.ndarray
    """(8, W) label effect (parametric label beat minus parametric normal beat), sized like the data beat."""
    gain: np.ndarray
    """(W,) region gain from parametric to data-beat size (``_region_gain``)."""
    p_normal: np.ndarray
    """(8, W) parametric normal beat."""
    turn: float
    """Frontal rotation (degrees) applied to the data-driven beat."""
    qt: float
    """QT (s) of the mean beat."""


def _mean_beat(
    codes: frozenset[str],
    shape: BeatShape,
    ph: Physiology,
    templates: tuple[dict, dict, tuple[dict, dict] | None],
    axis_deg: float | None,
    fs: float,
) -> _MeanBeat:
    """Label effect on the beat grid, sized like the data beat region by region; the full-size codes' effect at
    full size, the rest at ``FORM_SCALE``. ``axis_deg`` turns the data-driven (normal) beat in the frontal plane;
    the label effects (infarct Q waves, ST-T changes) stay where their anatomy puts them. ``templates``: normal,
    label and full-size pair from ``_label_templates``."""
    normal, tmpl, full_pair = templates
    t = np.arange(int(WINDOW_S[0] * fs), int(WINDOW_S[1] * fs)) / fs
    p_normal = _beat_leads(to_waves(normal), -shape.r_off, fs)
    p_label = _beat_leads(to_waves(tmpl), -shape.r_off, fs)
    full_delta = 0.0
    if full_pair is not None:
        full_delta = _beat_leads(to_waves(full_pair[1]), -shape.r_off, fs) - _beat_leads(
            to_waves(full_pair[0]), -shape.r_off, fs
        )
    rr_mean = 60.0 / ph.heart_rate
    qt_mean = ph.qtc * np.sqrt(rr_mean)
    data_mean = render_beats(
        shape, np.array([-WINDOW_S[0]]), ph.pr, np.array([qt_mean]), np.array([True]), np.ones(1), fs, t.size
    )
    gain = _region_gain(data_mean, p_normal, t, shape, qt_mean)
    label_delta = p_label - p_normal
    delta = (FORM_SCALE * label_delta + (1.0 - FORM_SCALE) * full_delta) * gain[None, :]  # (8, W)
    turn = 0.0
    if axis_deg is not None:
        turn = _axis_turn(data_mean, delta, t, -shape.r_off, axis_deg)
        rotate_limb_leads(data_mean, turn)
    if codes & REPLACE_QRS:  # a different activation sequence: the label's QRS replaces the data QRS
        q_on = -shape.r_off
        m = np.clip((t - (q_on - 0.012)) / 0.008, 0, 1) * np.clip(
            (q_on + max(shape.qrs, ph.qrs) + 0.02 - t) / 0.015, 0, 1
        )
        delta += (p_label * gain[None, :] - data_mean - delta) * m[None, :]
    return _MeanBeat(t, data_mean, delta, gain, p_normal, turn, qt_mean)


def _render_rhythm(
    shape: BeatShape,
    ph: Physiology,
    normal: dict,
    beats: Beats,
    beat: _MeanBeat,
    cycle: float | None,
    rng: np.random.Generator,
    fs: float,
    num_samples: int,
) -> np.ndarray:
    """The record's beats (data-driven beats with their label effect, respiration-modulated; PVC and PAC beats)
    and atrial fibrillation / flutter waves -> independent leads (8, T) in mV."""
    pac_delta = None  # (8, W) when the record has PACs
    if (beats.kind == PAC).any():
        pac_delta = _pac_p_delta(normal, rng, fs, shape.r_off, beat.p_normal) * beat.gain[None, :]
    resp_phase = rng.uniform(0, 2 * np.pi)
    amp = 1.0 + ph.resp_amp * np.sin(2 * np.pi * ph.resp_rate * beats.onset + resp_phase)
    amp = amp + rng.normal(0, 0.025, amp.shape)
    vent = beats.kind != PVC
    r_times = beats.onset + shape.r_off
    qt = ph.qtc * np.sqrt(np.clip(beats.rr_prev, 0.3, 2.0))
    has_p = (beats.kind == SINUS) | (beats.kind == PAC)
    indep = render_beats(shape, r_times[vent], ph.pr, qt[vent], has_p[vent], amp[vent], fs, num_samples)
    rotate_limb_leads(indep, beat.turn)
    pvc = _pvc_waves(ph, rng)
    pvc_beat = _beat_leads(pvc, -shape.r_off, fs) * float(beat.gain[np.searchsorted(beat.t, 0.0)])
    _place_beats(indep, beat.delta, pvc_beat, pac_delta, r_times, amp, beats.kind, fs)
    if ph.rhythm == "afib":
        indep += project_independent(fibrillatory_waves(rng, fs, num_samples))[_TO_MODEL_ORDER]
    elif ph.rhythm == "aflt":
        indep += project_independent(flutter_waves(rng, fs, num_samples, cycle or 0.2))[_TO_MODEL_ORDER]
    return indep


def _axis_and_form_leads(
    codes: frozenset[str], beat: _MeanBeat, shape: BeatShape, ph: Physiology
) -> tuple[float, dict[str, LeadMask]]:
    """Ground truth from the mean beat: its heart axis (``frontal_axis``) and the leads each lead-localised form
    statement shows in (``form_lead_masks``, against the data-driven beat without the label effect)."""
    mean_beat = beat.data + beat.delta  # (8, W)
    axis = frontal_axis(mean_beat, beat.t, -shape.r_off)
    levels = [
        beat_levels(derive_12_leads(b[_TO_DOWER_ORDER]), beat.t, -shape.r_off, ph.qrs, beat.qt)
        for b in (mean_beat, beat.data)
    ]
    return axis, form_lead_masks(codes, *levels)


def synthesize_record(
    codes: frozenset[str],
    rng: np.random.Generator,
    *,
    age: float = 60.0,
    fs: float = 500.0,
    seconds: float = 10.0,
    noise_scale: float = 1.0,
    extras: RecordExtras | None = None,
    shape_seed: int | None = None,
) -> SyntheticRecord:
    """Generate one record (12, fs * seconds) in mV whose morphology and rhythm carry ``codes``.

    The beat is a real-data-driven patient (``shape_model``) plus the label effect (parametric label beat minus
    parametric normal beat, sized like the data beat); rhythm, AFIB f-waves, PVCs and electrode noise come from
    the parametric model, the residual noise from the data-driven patient. ``extras`` adds ECG-QA's annotated
    noise, sets the heart axis (turning the data-driven beat) and the infarction stage; PACE adds pacing spikes."""
    num_samples = int(round(fs * seconds))
    shape = _patient_shape(rng, age, shape_seed)
    extras = extras or RecordExtras()
    ph, normal, tmpl, full_pair = _label_templates(codes, rng, age, shape, extras.infarction_stage)
    if "LVOLT" in codes:  # low voltage: the whole data-driven beat is small (the noise is not)
        shape.template = shape.template * rng.uniform(0.3, 0.42)
    cycle = flutter_cycle(ph, rng) if ph.rhythm == "aflt" else None
    beats = beat_times(ph, rng, seconds, cycle)
    beat = _mean_beat(codes, shape, ph, (normal, tmpl, full_pair), extras.axis_deg, fs)
    indep = _render_rhythm(shape, ph, normal, beats, beat, cycle, rng, fs, num_samples)
    axis, form_leads = _axis_and_form_leads(codes, beat, shape, ph)
    _add_recording(indep, "PACE" in codes, beats.onset, extras.noise, ph, shape, rng, fs, noise_scale)
    inside = (beats.onset >= 0) & (beats.onset < seconds)
    feats = numeric_features(ph, tmpl)
    signal = derive_12_leads(indep[_TO_DOWER_ORDER])
    minmax = numeric_min_max(feats, beats.rr_prev[inside], ph.qtc)
    return SyntheticRecord(
        signal, fs, ph, beats.onset[inside], beats.kind[inside], feats, minmax, axis, form_leads
    )
