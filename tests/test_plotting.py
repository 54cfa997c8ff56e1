"""The clinical 12-lead plot (paper geometry, layout, labels) and the label-probability bar chart."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection

from encoder.io import read_ecg
from encoder.leads import CANONICAL_LEADS
from encoder.plotting import (
    COLUMN_SECONDS,
    GAIN_MM_MV,
    LEFT_MM,
    PAPER_SPEED_MM_S,
    plot_12lead,
    plot_label_probabilities,
)
from encoder.record import Ecg

FS = 500.0


def _ecg(seconds: float = 10.0, fs: float = FS, amplitude: float = 1.0) -> Ecg:
    t = np.arange(int(seconds * fs)) / fs
    signal = np.tile(amplitude * np.sin(2 * np.pi * 1.0 * t), (12, 1)).astype(np.float32)  # (12, T) mV
    return Ecg(signal, fs, np.ones(12, dtype=bool), {})


def _polylines(fig) -> list[np.ndarray]:
    ax = fig.axes[0]
    (coll,) = [c for c in ax.collections if isinstance(c, LineCollection) and c.get_gid() == "traces"]
    return [np.asarray(seg) for seg in coll.get_segments()]


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts]


def test_paper_geometry_25mm_per_s_and_10mm_per_mv():
    fig = plot_12lead(_ecg(amplitude=1.0))
    lines = _polylines(fig)
    rhythm = max(lines, key=len)  # the 10 s lead-II strip is the longest polyline
    assert len(rhythm) == int(10 * FS)
    width_mm = rhythm[:, 0].max() - rhythm[:, 0].min()
    assert width_mm == pytest.approx((10 - 1 / FS) * PAPER_SPEED_MM_S, rel=1e-6)  # 25 mm/s
    assert rhythm[0, 0] == pytest.approx(LEFT_MM)
    height_mm = rhythm[:, 1].max() - rhythm[:, 1].min()
    assert height_mm == pytest.approx(2 * 1.0 * GAIN_MM_MV, rel=1e-3)  # +-1 mV -> 20 mm
    # a 2.5 s column segment spans 2.5 s * 25 mm/s
    columns = [seg for seg in lines if len(seg) == int(COLUMN_SECONDS * FS)]
    assert len(columns) == 12
    assert np.ptp(columns[0][:, 0]) == pytest.approx((COLUMN_SECONDS - 1 / FS) * PAPER_SPEED_MM_S, rel=1e-6)


def test_calibration_pulses_are_1mv_by_200ms():
    lines = _polylines(plot_12lead(_ecg()))
    pulses = [seg for seg in lines if len(seg) == 6]
    assert len(pulses) == 4  # one per row (3 rows + rhythm strip)
    for p in pulses:
        assert p[2, 1] - p[1, 1] == pytest.approx(GAIN_MM_MV)  # 1 mV high
        assert p[3, 0] - p[2, 0] == pytest.approx(0.2 * PAPER_SPEED_MM_S)  # 0.2 s wide


def test_mm_grid_and_real_size():
    fig = plot_12lead(_ecg())
    ax = fig.axes[0]
    grids = {c.get_gid(): c.get_segments() for c in ax.collections if isinstance(c, LineCollection)}
    for gid, step in (("grid_minor", 1.0), ("grid_major", 5.0)):
        xs = sorted(seg[0][0] for seg in grids[gid] if seg[0][0] == seg[1][0])  # vertical lines
        ys = sorted(seg[0][1] for seg in grids[gid] if seg[0][1] == seg[1][1])  # horizontal lines
        assert np.allclose(np.diff(xs), step) and np.allclose(np.diff(ys), step)
        assert xs[0] == 0 and xs[-1] >= ax.get_xlim()[1] - step
    assert ax.get_aspect() == 1.0
    # one grid millimetre is one real millimetre at 100 % zoom
    x0, x1 = ax.get_xlim()
    width_in = fig.get_figwidth() * ax.get_position().width
    assert (x1 - x0) / 25.4 == pytest.approx(width_in, rel=1e-6)


def test_standard_layout_labels_and_missing_leads():
    ecg = _ecg()
    ecg.lead_mask[CANONICAL_LEADS.index("V3")] = False
    texts = _texts(plot_12lead(ecg, title="t"))
    for lead in CANONICAL_LEADS:
        if lead != "V3":
            assert lead in texts
    assert "V3 (not recorded)" in texts and "II (rhythm)" in texts
    # 3 x 4 order: first row I, aVR, V1, V4 left to right
    ax_texts = {t.get_text(): t.get_position() for t in plot_12lead(ecg).axes[0].texts}
    xs = [ax_texts[name][0] for name in ("I", "aVR", "V1", "V4")]
    ys = [ax_texts[name][1] for name in ("I", "II", "III", "II (rhythm)")]
    assert xs == sorted(xs) and ys == sorted(ys, reverse=True)


def test_real_record_renders_png_and_leaves_no_pyplot_figures(tmp_path):
    before = plt.get_fignums()
    ecg = read_ecg("encoder/resources/wfdb/s0010_re")  # 38.4 s at 1000 Hz: first 10 s shown
    fig = plot_12lead(ecg, title="s0010_re", answer="sinus rhythm " * 30)
    texts = [t.get_text() for t in fig.texts]
    assert any("first 10.0 s of 38.4 s" in t for t in texts)
    assert any(t.startswith("Model answer: sinus rhythm") for t in texts)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n" and len(buf.getvalue()) > 50_000
    (tmp_path / "s0010_re.png").write_bytes(buf.getvalue())
    assert plt.get_fignums() == before


def test_short_nan_and_empty_signals_do_not_crash():
    short = _ecg(seconds=3.0)
    short.signal[2, 10:20] = np.nan
    plot_12lead(short).savefig(io.BytesIO(), format="png")
    empty = Ecg(np.zeros((12, 0), np.float32), FS, np.zeros(12, dtype=bool), {})
    assert "II (not recorded)" in _texts(plot_12lead(empty))


def test_user_text_is_not_parsed_as_math():
    """File names and answers may contain '$' (mathtext would fail at draw time)."""
    fig = plot_12lead(_ecg(seconds=3.0), title="ECG A: a$b_c.hea", answer="costs $5 and ^_^")
    fig.savefig(io.BytesIO(), format="png")
    plot_label_probabilities({"odd$label": 0.5}, title="x$y").savefig(io.BytesIO(), format="png")


def test_label_probabilities_top_first_and_top_k():
    evidence = {"NORM": 0.1, "MI": 0.9, "STTC": 0.4, "CD": 0.05, "HYP": 0.6}
    fig = plot_label_probabilities(evidence, top_k=3)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    ys = list(ax.get_yticks())
    top_to_bottom = [name for _, name in sorted(zip(ys, labels, strict=True), reverse=True)]
    assert top_to_bottom == ["MI", "HYP", "STTC"]
    widths = sorted((p.get_width() for p in ax.patches), reverse=True)
    assert widths == pytest.approx([0.9, 0.6, 0.4])
    assert ax.get_xlim() == (0.0, 1.0)
    empty = plot_label_probabilities({})
    empty.savefig(io.BytesIO(), format="png")
