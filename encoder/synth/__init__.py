"""Synthetic ECG generator (data-driven beats + heart-vector label effects), used by ``encoder.datasets.synthetic``.

One idea per file:
    shape_model.py     data-driven patients: PCA of real PTB-XL median beats (shipped fit) + their residual noise
    shape_fit.py       fitting that model from real pre-processed records (benchmarks/fit_shape_model.py)
    beat_render.py     placing the data-driven beat at each beat time (PR shift, QT stretch, no P in AFIB)
    beat_model.py      per-wave 3-D heart-vector morphology (sums of Gaussians) and the Dower VCG -> 12-lead transform
    patient.py         per-patient physiology (axis, amplitudes, intervals, heart rate, noise levels)
    labels_effects.py  which SCP statements a record carries and how each one changes the physiology; the
                       changes of each infarction stage
    real_labels.py     label rows drawn from a shipped sample of the real PTB-XL table (codes, noise, axis, stage,
                       extra beats, pacing), and the real table's cell formats
    artefacts.py       ECG-QA's annotated noise types on chosen leads, pacemaker spikes
    form_leads.py      the leads a form statement is seen in, read off the record's mean beat
    report.py          report text naming the form statements' leads (the phrasing the real parser reads)
    rhythm.py          beat times (HRV, respiration, AFIB / flutter, premature beats)
    noise.py           electrode-level background noise (baseline wander, EMG, powerline, electrode motion)
    record.py          one complete 10 s record: data-driven beat (turned to the drawn heart axis) + label effect
                       (parametric label beat minus parametric normal beat), rhythm, f-waves, PVCs, noise
    questions.py       ECG-QA-format questions whose answers are true for the generated labels
"""
