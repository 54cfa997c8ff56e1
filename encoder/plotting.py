"""ECG plots: the standard clinical 12-lead sheet and the aux head's per-label probabilities.

Both functions build figures with matplotlib's object API (``matplotlib.figure.Figure``, no pyplot state), so
they are safe to call from several threads (the demo's queue workers) and never leak figures.
"""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from encoder.leads import CANONICAL_LEADS
from encoder.record import Ecg

# Paper conventions of a clinical ECG printout.
PAPER_SPEED_MM_S = 25.0  # mm per second
GAIN_MM_MV = 10.0  # mm per millivolt
SHEET_SECONDS = 10.0  # seconds shown on one sheet (rhythm strip length)
COLUMN_SECONDS = 2.5  # each of the 4 columns shows the next 2.5 s
ROW_PITCH_MM = 30.0  # vertical distance between the baselines of two rows
LEFT_MM = 12.0  # left margin holding the calibration pulse
RIGHT_MM = 3.0
CAL_START_MM, CAL_WIDTH_MM = 3.0, 5.0  # 1 mV x 0.2 s calibration pulse

# 3 x 4 layout (rows top to bottom, columns left to right) + a lead-II rhythm strip.
LAYOUT: tuple[tuple[str, ...], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
)
RHYTHM_LEAD = "II"

_MINOR_COLOR, _MAJOR_COLOR, _TRACE_COLOR = "#f6c5c5", "#e58a8a", "black"


def _calibration_pulse(baseline_mm: float) -> np.ndarray:
    """Polyline (K, 2) of a 1 mV, 0.2 s square calibration pulse starting on ``baseline_mm``."""
    x0, x1 = CAL_START_MM, CAL_START_MM + CAL_WIDTH_MM
    top = baseline_mm + 1.0 * GAIN_MM_MV
    return np.array(
        [
            [x0 - 2, baseline_mm],
            [x0, baseline_mm],
            [x0, top],
            [x1, top],
            [x1, baseline_mm],
            [x1 + 2, baseline_mm],
        ]
    )


def _grid_lines(width_mm: float, height_mm: float, step: float) -> list[np.ndarray]:
    """Vertical and horizontal grid lines every ``step`` mm (drawn as one collection: far faster than ticks)."""
    xs = np.arange(0.0, width_mm + 1e-6, step)
    ys = np.arange(0.0, height_mm + 1e-6, step)
    return [np.array([[x, 0.0], [x, height_mm]]) for x in xs] + [
        np.array([[0.0, y], [width_mm, y]]) for y in ys
    ]


def _trace(signal_mv: np.ndarray, fs: float, t0_s: float, baseline_mm: float) -> np.ndarray:
    """Polyline (T, 2) in paper millimetres for a signal segment starting at time ``t0_s`` on the sheet."""
    t = np.arange(signal_mv.shape[0]) / fs + t0_s  # (T,)
    x = LEFT_MM + t * PAPER_SPEED_MM_S
    y = baseline_mm + signal_mv * GAIN_MM_MV
    return np.stack([x, y], axis=1)


def plot_12lead(ecg: Ecg, title: str | None = None, answer: str | None = None) -> Figure:
    """Draw ``ecg`` in the standard clinical layout and return the figure.

    3 rows x 4 columns (I/aVR/V1/V4, II/aVL/V2/V5, III/aVF/V3/V6), each column showing the next 2.5 s, plus a
    10 s lead-II rhythm strip; red millimetre grid (1 mm minor, 5 mm major), 25 mm/s, 10 mm/mV, a 1 mV
    calibration pulse at the start of every row. The figure is sized so that one grid millimetre is one real
    millimetre at 100 % zoom. Each lead's median over the shown window is removed (display only). Records
    longer than 10 s show their first 10 s; absent leads are marked "not recorded".
    """
    signal = np.nan_to_num(np.asarray(ecg.signal, dtype=np.float64))  # (12, T)
    fs = float(ecg.fs)
    shown = min(signal.shape[1], int(round(SHEET_SECONDS * fs)))
    window = signal[:, :shown]  # (12, S)
    window = window - np.median(window, axis=1, keepdims=True) if shown else window
    mask = np.asarray(ecg.lead_mask, dtype=bool)

    n_rows = len(LAYOUT) + 1
    width_mm = LEFT_MM + SHEET_SECONDS * PAPER_SPEED_MM_S + RIGHT_MM
    height_mm = n_rows * ROW_PITCH_MM
    baselines = [height_mm - ROW_PITCH_MM * (r + 0.6) for r in range(n_rows)]  # top row first
    traces, labels = _sheet_traces(window, mask, fs, baselines)

    header_in = 0.35 if title else 0.0
    answer_lines = textwrap.wrap(answer, 150)[:4] if answer else []
    footer_in = 0.3 + 0.2 * len(answer_lines)
    w_in, h_in = width_mm / 25.4, height_mm / 25.4
    total_in = h_in + header_in + footer_in
    fig = Figure(figsize=(w_in, total_in), dpi=150)
    ax = fig.add_axes((0.0, footer_in / total_in, 1.0, h_in / total_in))
    _draw_sheet(ax, width_mm, height_mm, traces, labels)

    if title:
        fig.text(0.01, 1 - 0.5 * header_in / total_in, title, fontsize=11, va="center", parse_math=False)
    total_s = ecg.num_samples / fs if fs > 0 else 0.0
    shown_note = (
        f"first {shown / fs:.1f} s of {total_s:.1f} s" if shown < ecg.num_samples else f"{total_s:.1f} s"
    )
    footer = (
        f"{PAPER_SPEED_MM_S:g} mm/s   {GAIN_MM_MV:g} mm/mV   fs {fs:g} Hz   {shown_note}   "
        f"leads present {int(mask.sum())}/12"
    )
    y = (footer_in - 0.15) / total_in
    fig.text(0.01, y, footer, fontsize=8, va="center", color="#444444", parse_math=False)
    for k, line in enumerate(answer_lines):
        prefix = "Model answer: " if k == 0 else ""
        fig.text(0.01, y - (k + 1) * 0.2 / total_in, prefix + line, fontsize=8, va="center", parse_math=False)
    return fig


def _sheet_traces(
    window: np.ndarray, mask: np.ndarray, fs: float, baselines: list[float]
) -> tuple[list[np.ndarray], list[tuple[float, float, str]]]:
    """Polylines (paper mm) of the 3 x 4 layout and the rhythm strip, and (t0_s, baseline_mm, text) labels.

    ``window`` is (12, S) mV in canonical order, ``mask`` (12,) the present leads, ``baselines`` one per row.
    """
    index = {lead: i for i, lead in enumerate(CANONICAL_LEADS)}
    col_samples = int(round(COLUMN_SECONDS * fs))
    traces, labels = [], []
    for r, row in enumerate(LAYOUT):
        traces.append(_calibration_pulse(baselines[r]))
        for c, lead in enumerate(row):
            i = index[lead]
            seg = window[i, c * col_samples : (c + 1) * col_samples]
            t0 = c * COLUMN_SECONDS
            if mask[i] and seg.size:
                traces.append(_trace(seg, fs, t0, baselines[r]))
                labels.append((t0, baselines[r], lead))
            else:
                labels.append((t0, baselines[r], f"{lead} (not recorded)"))
            if c > 0:  # short separator tick between columns
                x = LEFT_MM + t0 * PAPER_SPEED_MM_S
                traces.append(np.array([[x, baselines[r] - 3], [x, baselines[r] + 3]]))
    rb = baselines[-1]
    traces.append(_calibration_pulse(rb))
    i = index[RHYTHM_LEAD]
    if mask[i] and window.shape[1]:
        traces.append(_trace(window[i], fs, 0.0, rb))
        labels.append((0.0, rb, f"{RHYTHM_LEAD} (rhythm)"))
    else:
        labels.append((0.0, rb, f"{RHYTHM_LEAD} (not recorded)"))
    return traces, labels


def _draw_sheet(
    ax, width_mm: float, height_mm: float, traces: list[np.ndarray], labels: list[tuple[float, float, str]]
) -> None:
    """ECG paper (minor + major grid), the traces and the lead labels on ``ax`` (axes in paper mm)."""
    ax.set_xlim(0, width_mm)
    ax.set_ylim(0, height_mm)
    ax.set_aspect("equal")
    ax.set_facecolor("#fff7f7")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    for step, color, lw, gid in (
        (1.0, _MINOR_COLOR, 0.3, "grid_minor"),
        (5.0, _MAJOR_COLOR, 0.7, "grid_major"),
    ):
        ax.add_collection(
            LineCollection(_grid_lines(width_mm, height_mm, step), colors=color, linewidths=lw, gid=gid)
        )
    ax.add_collection(LineCollection(traces, colors=_TRACE_COLOR, linewidths=0.7, gid="traces"))
    for t0, base, text in labels:
        ax.text(
            LEFT_MM + t0 * PAPER_SPEED_MM_S + 1.5,
            base + 11,
            text,
            fontsize=8,
            fontweight="bold",
            va="bottom",
            parse_math=False,
            bbox={"facecolor": "white", "alpha": 0.6, "edgecolor": "none", "pad": 0.5},
        )


def plot_label_probabilities(
    evidence: dict[str, float], top_k: int = 10, threshold: float | None = 0.5, title: str | None = None
) -> Figure:
    """Horizontal bar chart of the aux head's per-label probabilities, highest at the top.

    Shows the ``top_k`` labels with the highest probability; bars at or above ``threshold`` are highlighted and
    the threshold is drawn as a dashed line (``None`` hides it).
    """
    items = sorted(evidence.items(), key=lambda kv: float(kv[1]), reverse=True)[: max(int(top_k), 0)]
    names = [str(k) for k, _ in items]
    probs = np.array([float(v) for _, v in items], dtype=np.float64)  # (K,)
    fig = Figure(figsize=(4.2, 1.1 + 0.28 * max(len(items), 2)), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(items))[::-1]  # first (highest) item at the top
    if len(items):
        hot = probs >= threshold if threshold is not None else np.zeros_like(probs, dtype=bool)
        ax.barh(y, probs, color=np.where(hot, "#c0392b", "#7f8c8d"), height=0.7)
        for yi, p in zip(y, probs, strict=True):
            ax.text(min(p + 0.01, 0.88), yi, f"{p:.2f}", va="center", fontsize=9)
    else:
        ax.text(0.5, 0.5, "no label probabilities", ha="center", va="center", transform=ax.transAxes)
    ax.set_yticks(y, names, parse_math=False)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("probability (aux classifier head)", fontsize=9)
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=0.8)
    ax.set_title(title or f"Top {len(items)} findings", fontsize=10, parse_math=False)
    fig.tight_layout()
    return fig
