"""``ecgllm inspect``: read one ECG file the way every model path reads it, and say what was found."""

from __future__ import annotations

from dataclasses import dataclass

from encoder.io import MAX_FILE_BYTES, read_ecg
from encoder.record import Ecg


@dataclass
class InspectConfig:
    path: str
    """ECG file: a WFDB record (.hea/.dat or the record name), .npy or .csv."""
    fs: float | None = None
    """Sampling rate in Hz for .npy/.csv files (WFDB headers carry their own)."""
    target_fs: float | None = None
    """Resample to this rate (Hz) after reading."""
    min_leads: int = 1
    """Refuse records with fewer of the 12 standard leads than this."""
    min_duration_s: float | None = None
    """Refuse records shorter than this many seconds."""
    max_file_bytes: int | None = None
    """Refuse files larger than this (default: the library's limit, 256 MiB)."""
    plot: str | None = None
    """Write a 12-lead plot (clinical layout) to this PNG path."""


def describe(ecg: Ecg) -> str:
    """Human-readable summary of a record: rate, length, leads, repairs and flags."""
    missing = [lead for lead, ok in zip(ecg.leads, ecg.lead_mask, strict=True) if not ok]
    lines = [
        f"source:      {ecg.meta.get('source', '-')}",
        f"sampling:    {ecg.fs:g} Hz, {ecg.num_samples} samples ({ecg.duration_s:.2f} s)",
        f"leads:       {', '.join(ecg.present_leads)}",
        f"missing:     {', '.join(missing) if missing else 'none'} (zero-filled, masked)",
        f"repairs:     {'; '.join(ecg.meta.get('repairs', [])) or 'none'}",
        f"flat leads:  {', '.join(ecg.meta.get('flat_leads', [])) or 'none'}",
        f"range (mV):  {float(ecg.signal.min()):.2f} .. {float(ecg.signal.max()):.2f}",
    ]
    return "\n".join(lines)


def run_inspect(cfg: InspectConfig) -> Ecg:
    ecg = read_ecg(
        cfg.path,
        fs=cfg.fs,
        target_fs=cfg.target_fs,
        min_leads=cfg.min_leads,
        min_duration_s=cfg.min_duration_s,
        max_file_bytes=cfg.max_file_bytes or MAX_FILE_BYTES,
    )
    print(describe(ecg))
    if cfg.plot:
        from encoder.plotting import plot_12lead

        plot_12lead(ecg, title=str(cfg.path)).savefig(cfg.plot, dpi=100)
        print(f"plot:        {cfg.plot}")
    return ecg
