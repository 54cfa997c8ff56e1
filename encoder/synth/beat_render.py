"""Place a data-driven median beat (``shape_model.BeatShape``) at every beat of a record, with per-beat timing.

Each beat reads the template through a time map: the P wave moves with the PR change (1AVB, WPW), the ST-T part
stretches with the QT of the preceding RR (Bazett), and beats without a P wave (AFIB, flutter) lose it. Beats are
added (superposition), so a late T wave and an early P wave fuse as they do in a real recording.
"""

from __future__ import annotations

import numpy as np

from encoder.synth.shape_model import BeatShape

WINDOW_S = (-0.6, 1.1)
"""Output window of one beat around its R peak, seconds."""


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def render_beats(
    shape: BeatShape,
    r_times: np.ndarray,
    pr: float,
    qt: np.ndarray,
    has_p: np.ndarray,
    gain: np.ndarray,
    fs: float,
    num_samples: int,
) -> np.ndarray:
    """(8, T) mV: ``shape``'s beat at each R time (s) with PR ``pr`` (s), per-beat QT ``qt`` (s), P wave where
    ``has_p`` and amplitude ``gain`` (B,)."""
    out = np.zeros((8, num_samples))
    if len(r_times) == 0:
        return out
    tmpl = shape.template
    length = tmpl.shape[1]
    t = np.arange(int(WINDOW_S[0] * fs), int(WINDOW_S[1] * fs)) / fs  # (W,) output time around R
    q_on = -shape.r_off
    j_pt = q_on + float(np.clip(shape.qrs, 0.07, 0.11))
    # P wave: moves by the PR change. The gap is filled with the PR-segment level at the quietest point between
    # the P wave and the QRS (``p_cut``), so the QRS upstroke is never stretched.
    tt = np.arange(length) / shape.fs - shape.pre_s
    search = (tt > q_on - 0.09) & (tt < q_on - 0.015)
    p_cut = float(
        tt[search][np.argmin(np.sum(np.abs(np.diff(tmpl, axis=1, prepend=0.0)[:, search]), axis=0))]
    )
    dp = max(pr - shape.pr, -0.03)  # > 0: the P wave comes earlier
    src = np.where(t < p_cut - max(dp, 0.0), t + dp, np.where(t < p_cut, p_cut, t))[None, :]  # (1, W)
    stretch = (qt - (j_pt - q_on)) / max(shape.qt - (j_pt - q_on), 0.05)  # (B,) ST-T stretch per beat
    late = t > j_pt
    src = np.where(
        late[None, :], j_pt + (t[None, :] - j_pt) / np.clip(stretch, 0.5, 2.0)[:, None], src
    )  # (B, W)
    pos = src * shape.fs + shape.pre_s * shape.fs
    i0 = np.floor(pos).astype(int)
    frac = pos - i0
    inside = (i0 >= 0) & (i0 < length - 1)
    i0 = np.clip(i0, 0, length - 2)
    vals = tmpl[:, i0] * (1.0 - frac) + tmpl[:, i0 + 1] * frac  # (8, B, W)
    vals *= inside[None]
    no_p = _smoothstep((t - (q_on - 0.03)) / 0.02)  # 0 before the QRS onset region, 1 after
    mask = np.where(has_p[:, None], 1.0, no_p[None, :]) * gain[:, None]  # (B, W)
    vals *= mask[None]
    start = np.round(r_times * fs).astype(int) + int(WINDOW_S[0] * fs)
    for b, s0 in enumerate(start):
        lo, hi = max(s0, 0), min(s0 + t.size, num_samples)
        if hi > lo:
            out[:, lo:hi] += vals[:, b, lo - s0 : hi - s0]
    return out
