"""Physiological synthetic ECG generator (heart-vector model), used by ``encoder.datasets.synthetic``.

One idea per file:
    beat_model.py      per-wave 3-D heart-vector morphology (sums of Gaussians) and the Dower VCG -> 12-lead transform
    patient.py         per-patient physiology (axis, amplitudes, intervals, heart rate, noise levels)
    labels_effects.py  which SCP statements a record carries and how each one changes the physiology
    rhythm.py          beat times (HRV, respiration, AFIB / flutter, premature beats)
    noise.py           electrode-level noise (baseline wander, EMG, powerline, electrode motion)
    record.py          one complete 10 s record from a label set
    questions.py       ECG-QA-format questions whose answers are true for the generated labels
"""
