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


def _pre_qrs_time_map(t: np.ndarray, q_on: float, p_cut: float, pr_tmpl: float, pr: float) -> np.ndarray:
    """Template time read at each output time ``t`` so that P onset -> QRS onset becomes ``pr`` (s)."""
    p_on = q_on - pr_tmpl  # template P onset
    if pr >= pr_tmpl:  # P wave (and everything before it) earlier by the difference, gap at the p_cut level
        dp = pr - pr_tmpl
        xs, ys = [p_on - dp, p_cut - dp, p_cut, q_on], [p_on, p_cut, p_cut, q_on]
    else:
        seg = q_on - p_cut
        from_seg = min(pr_tmpl - pr, max(seg - 0.01, 0.0))  # shorten the PR segment first
        seg_new = seg - from_seg
        p_len_new = max(pr - seg_new, 0.04)  # then compress the P wave
        xs = [q_on - seg_new - p_len_new, q_on - seg_new, q_on]
        ys = [p_on, p_cut, q_on]
    before = t < xs[0]
    return np.where(before, t + (ys[0] - xs[0]), np.where(t >= q_on, t, np.interp(t, xs, ys)))


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
    j_pt = q_on + float(np.clip(shape.qrs, 0.07, 0.11))  # as record.QRS_RANGE
    # P wave: moves by the PR change. A longer PR (1AVB) moves the P wave earlier and fills the gap with the
    # PR-segment level at the quietest point between the P wave and the QRS (``p_cut``), so the QRS upstroke is
    # never stretched. A shorter PR (WPW) first shortens the PR segment (down to 10 ms), then compresses the P
    # wave: the realised P onset -> QRS onset is ``pr`` (for ``pr`` >= 50 ms).
    tt = np.arange(length) / shape.fs - shape.pre_s
    search = (tt > q_on - 0.09) & (tt < q_on - 0.015)
    p_cut = float(
        tt[search][np.argmin(np.sum(np.abs(np.diff(tmpl, axis=1, prepend=0.0)[:, search]), axis=0))]
    )
    src = _pre_qrs_time_map(t, q_on, p_cut, shape.pr, pr)[None, :]  # (1, W)
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
