"""A deterministic corpus of broken and hostile ECG inputs (issue 8).

``iter_bad_inputs(tmp_dir)`` writes every entry into ``tmp_dir`` and returns the list of ``BadInput``s, so
the Python API, the CLI and the demo can all run the same corpus:

    for case in iter_bad_inputs(tmp_path):
        read_ecg(case.path, **case.read_kwargs)   # expect: EcgLlmError, or accepted with meta[case.flag]

Run ``python tests/bad_inputs/make_corpus.py OUT_DIR`` to write it to a folder for manual checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


@dataclass(frozen=True)
class BadInput:
    """One corpus entry."""

    name: str
    """Short identifier, e.g. ``truncated_dat``."""
    path: Path
    """What to pass to ``read_ecg`` (a .hea, .npy, .csv ... path)."""
    expect: Literal["error", "accept-with-flag"]
    """``error``: an EcgLlmError subclass must be raised; ``accept-with-flag``: read, with ``meta[flag]`` non-empty."""
    description: str
    """What is wrong with the input."""
    error: str | None = None
    """Name of the expected ``encoder.errors`` class (for ``expect == "error"``)."""
    flag: str | None = None
    """Meta key that must be non-empty when accepted (``repairs``, ``flat_leads``, ``missing_leads``, ``warnings``)."""
    read_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``read_ecg`` (front ends map them to their options, e.g. ``--min-duration-s``)."""
    files: tuple[Path, ...] = ()
    """Every file of the entry (what a user would upload to the demo)."""


def ecg_like(n_leads: int, n_samples: int, fs: float, seed: int = 0) -> np.ndarray:
    """A smooth, deterministic ECG-ish signal in mV: (n_leads, n_samples) float64."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / fs
    beat = np.exp(-(((t % 0.8) - 0.3) ** 2) / (2 * 0.012**2))  # narrow QRS-like spike every 0.8 s
    twave = 0.3 * np.exp(-(((t % 0.8) - 0.55) ** 2) / (2 * 0.04**2))
    amps = rng.uniform(0.4, 1.5, size=(n_leads, 1)) * rng.choice([-1.0, 1.0], size=(n_leads, 1))
    noise = 0.01 * rng.standard_normal((n_leads, n_samples))
    return amps * (beat + twave)[None, :] + noise + 0.05 * np.sin(2 * np.pi * 0.3 * t)[None, :]


def write_wfdb(
    folder: Path,
    name: str,
    signal_mv: np.ndarray | None,
    fs: float | str,
    lead_names: Sequence[str],
    *,
    gain: float | str = 1000.0,
    sig_len: int | str | None = None,
    n_sig: int | None = None,
    file_name: str | None = None,
    signal_lines: int | None = None,
    units: str = "mV",
    invalid: np.ndarray | None = None,
) -> tuple[Path, Path]:
    """Write a format-16 WFDB record (header fields overridable to build broken ones). Returns (hea, dat)."""
    folder.mkdir(parents=True, exist_ok=True)
    hea, dat = folder / f"{name}.hea", folder / f"{name}.dat"
    n_channels = len(lead_names)
    if signal_mv is not None:
        g = float(gain) if float(gain) > 0 else 1000.0
        digital = np.clip(np.round(signal_mv * g), -32767, 32767).astype("<i2")  # (C, T)
        if invalid is not None:
            digital[invalid] = -32768  # WFDB's "no sample" value for format 16 -> NaN when read
        dat.write_bytes(digital.T.tobytes())  # interleaved frames
        length = digital.shape[1]
    else:
        length = 0
    sig_len = length if sig_len is None else sig_len
    lines = [f"{name} {n_channels if n_sig is None else n_sig} {fs} {sig_len}"]
    for lead in lead_names[: signal_lines if signal_lines is not None else n_channels]:
        lines.append(f"{file_name or dat.name} 16 {gain}/{units} 16 0 0 0 0 {lead}")
    lines.append("# age: 60")
    hea.write_text("\n".join(lines) + "\n")
    return hea, dat


def _build(tmp_dir: Path) -> list[BadInput]:
    out: list[BadInput] = []
    root = Path(tmp_dir)
    fs = 500

    def add(name: str, path: Path, expect: str, description: str, **kw: Any) -> None:
        files = kw.pop("files", None) or tuple(sorted(p for p in path.parent.glob(f"{path.stem}.*")))
        out.append(BadInput(name=name, path=path, expect=expect, description=description, files=files, **kw))

    def folder(name: str) -> Path:
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    good = ecg_like(12, 10 * fs, fs, seed=1)  # (12, 5000) 10 s at 500 Hz

    # --- samples ------------------------------------------------------------------------------------
    invalid = np.zeros_like(good, dtype=bool)
    invalid[7, 1000:1010] = True  # a 20 ms gap in V2
    hea, _ = write_wfdb(folder("nan_short_gap"), "rec", good, fs, LEADS, invalid=invalid)
    add("nan_short_gap", hea, "accept-with-flag", "10 NaN samples (WFDB invalid value) in V2", flag="repairs")

    arr = good.copy()
    arr[3, 200:205] = np.inf
    arr[4, 300] = -np.inf
    p = folder("inf_samples") / "rec.npy"
    np.save(p, arr.astype(np.float32))
    add(
        "inf_samples",
        p,
        "accept-with-flag",
        "+inf/-inf samples in aVR and aVL (.npy)",
        flag="repairs",
        read_kwargs={"fs": fs},
    )

    arr = good.copy()
    arr[:, : int(0.8 * arr.shape[1])] = np.nan
    p = folder("mostly_nan") / "rec.npy"
    np.save(p, arr)
    add("mostly_nan", p, "error", "80 % of every lead is NaN", error="EcgSignalError", read_kwargs={"fs": fs})

    arr = good.copy()
    arr[5] = 1e30
    arr[6, ::2] = 1e300
    p = folder("huge_values") / "rec.npy"
    np.save(p, arr)
    add(
        "huge_values",
        p,
        "accept-with-flag",
        "aVF is 1e30 mV, V1 alternates 1e300: both masked",
        flag="repairs",
        read_kwargs={"fs": fs},
    )

    sig = good.copy()
    sig[2] = 0.25
    hea, _ = write_wfdb(folder("flat_lead"), "rec", sig, fs, LEADS)
    add("flat_lead", hea, "accept-with-flag", "lead III is a constant 0.25 mV", flag="flat_leads")

    hea, _ = write_wfdb(folder("flat_record"), "rec", np.full_like(good, 0.1), fs, LEADS)
    add("flat_record", hea, "error", "every lead is constant", error="EcgSignalError")

    # --- data files -----------------------------------------------------------------------------------
    hea, dat = write_wfdb(folder("truncated_dat"), "rec", good, fs, LEADS)
    dat.write_bytes(dat.read_bytes()[: dat.stat().st_size // 2])
    add(
        "truncated_dat",
        hea,
        "error",
        ".dat holds half the samples the header promises",
        error="EcgFormatError",
    )

    hea, dat = write_wfdb(folder("empty_dat"), "rec", good, fs, LEADS)
    dat.write_bytes(b"")
    add("empty_dat", hea, "error", ".dat is 0 bytes", error="EcgFormatError")

    hea, dat = write_wfdb(folder("missing_dat"), "rec", good, fs, LEADS)
    dat.unlink()
    add(
        "missing_dat",
        hea,
        "error",
        "the .dat named in the header does not exist",
        error="EcgFileMissingError",
    )

    hea, dat = write_wfdb(folder("text_as_dat"), "rec", None, fs, LEADS, sig_len=100)
    dat.write_text("I,II,III\n" + "0.1,0.2,0.3\n" * 400)  # more bytes than promised, but text
    add("text_as_dat", hea, "error", "a CSV text file renamed .dat", error="EcgFormatError")

    d = folder("dat_without_header")
    write_wfdb(d, "rec", good, fs, LEADS)[0].unlink()
    add(
        "dat_without_header",
        d / "rec.dat",
        "error",
        "a .dat with no .hea next to it",
        error="EcgFileMissingError",
    )

    # --- headers --------------------------------------------------------------------------------------
    d = folder("corrupt_header")
    write_wfdb(d, "rec", good, fs, LEADS)
    (d / "rec.hea").write_text("this is not a header\nat all, just prose\n")
    add("corrupt_header", d / "rec.hea", "error", "the .hea holds prose", error="EcgFormatError")

    d = folder("random_bytes")
    rng = np.random.default_rng(8)
    (d / "rec.hea").write_bytes(rng.integers(0, 256, 512, dtype=np.uint8).tobytes())
    (d / "rec.dat").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    add("random_bytes", d / "rec.hea", "error", "random bytes named .hea and .dat", error="EcgFormatError")

    hea, _ = write_wfdb(folder("huge_sig_len"), "rec", good, fs, LEADS, sig_len=2_000_000_000)
    add("huge_sig_len", hea, "error", "header promises sig_len = 2e9 (48 GB)", error="EcgTooLargeError")

    hea, _ = write_wfdb(folder("fewer_signal_lines"), "rec", good, fs, LEADS, signal_lines=11)
    add("fewer_signal_lines", hea, "error", "n_sig = 12 but only 11 signal lines", error="EcgFormatError")

    hea, _ = write_wfdb(folder("zero_gain"), "rec", good, fs, LEADS, gain=0)
    add("zero_gain", hea, "error", "ADC gain 0", error="EcgSignalError")

    hea, _ = write_wfdb(folder("absurd_gain"), "rec", good, fs, LEADS, gain="1e-09")
    add("absurd_gain", hea, "error", "ADC gain 1e-9 per mV", error="EcgSignalError")

    hea, _ = write_wfdb(folder("unknown_leads"), "rec", good[:3], fs, ["foo", "bar", "baz"])
    add("unknown_leads", hea, "error", "lead names foo/bar/baz", error="EcgLeadError")

    hea, _ = write_wfdb(folder("only_extra_leads"), "rec", good[:3], fs, ["vx", "vy", "vz"])
    add("only_extra_leads", hea, "error", "only Frank leads vx/vy/vz: no usable lead", error="EcgLeadError")

    hea, _ = write_wfdb(folder("duplicate_leads"), "rec", good[:2], fs, ["II", "MLII"])
    add("duplicate_leads", hea, "error", "two channels both map to lead II", error="EcgLeadError")

    hea, _ = write_wfdb(folder("one_lead"), "rec", good[1:2], fs, ["II"])
    add("one_lead", hea, "accept-with-flag", "only lead II: 11 leads masked", flag="missing_leads")
    add(
        "one_lead_needs_12",
        hea,
        "error",
        "only lead II where 12 are required",
        error="EcgLeadError",
        read_kwargs={"min_leads": 12},
    )

    hea, _ = write_wfdb(folder("path_traversal"), "rec", good, fs, LEADS, file_name="../../etc/passwd")
    add(
        "path_traversal",
        hea,
        "error",
        "signal file name ../../etc/passwd",
        error="EcgFormatError",
        files=(hea,),
    )

    hea, _ = write_wfdb(folder("absolute_path"), "rec", good, fs, LEADS, file_name="/etc/passwd")
    add("absolute_path", hea, "error", "signal file name /etc/passwd", error="EcgFormatError", files=(hea,))

    hea, _ = write_wfdb(folder("no_fs"), "rec", good, fs, LEADS)
    hea.write_text(hea.read_text().replace(f"rec 12 {fs} {good.shape[1]}", "rec 12"))
    add(
        "no_fs",
        hea,
        "error",
        "header omits the sampling rate (wfdb would assume 250 Hz)",
        error="EcgSamplingRateError",
    )

    # --- sampling rate / duration --------------------------------------------------------------------
    hea, _ = write_wfdb(folder("fs_10khz"), "rec", ecg_like(12, 2 * 10_000, 10_000, seed=2), 10_000, LEADS)
    add("fs_10khz", hea, "accept-with-flag", "10 kHz sampling rate (accepted, warned)", flag="warnings")

    hea, _ = write_wfdb(folder("fs_20khz"), "rec", ecg_like(12, 20_000, 20_000, seed=2), 20_000, LEADS)
    add("fs_20khz", hea, "error", "20 kHz sampling rate (above 10 kHz)", error="EcgSamplingRateError")

    hea, _ = write_wfdb(folder("fs_20hz"), "rec", ecg_like(12, 200, 20, seed=3), 20, LEADS)
    add("fs_20hz", hea, "error", "20 Hz sampling rate", error="EcgSamplingRateError")

    hea, _ = write_wfdb(folder("two_seconds"), "rec", good[:, : 2 * fs], fs, LEADS)
    add(
        "two_seconds",
        hea,
        "error",
        "2-second record where 5 s are required",
        error="EcgTooShortError",
        read_kwargs={"min_duration_s": 5.0},
    )

    # --- other file types ----------------------------------------------------------------------------
    p = folder("csv_text_columns") / "rec.csv"
    rows = ["time,I,II,comment"] + [f"{i / fs:.4f},{good[0, i]:.4f},{good[1, i]:.4f},ok" for i in range(500)]
    p.write_text("\n".join(rows) + "\n")
    add("csv_text_columns", p, "error", "CSV with a text column", error="EcgFormatError")

    p = folder("csv_no_fs") / "rec.csv"
    p.write_text("I,II\n" + "\n".join(f"{good[0, i]:.4f},{good[1, i]:.4f}" for i in range(500)) + "\n")
    add("csv_no_fs", p, "error", "CSV without time column or fs", error="EcgSamplingRateError")

    p = folder("npy_pickle") / "rec.npy"
    np.save(p, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    add(
        "npy_pickle",
        p,
        "error",
        "a pickled object array in a .npy",
        error="EcgFormatError",
        read_kwargs={"fs": fs},
    )

    p = folder("npy_3d") / "rec.npy"
    np.save(p, np.zeros((2, 12, 100)))
    add("npy_3d", p, "error", "a 3-D array", error="EcgFormatError", read_kwargs={"fs": fs})

    p = folder("wrong_type") / "rec.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    add("wrong_type", p, "error", "a PNG image", error="EcgFormatError")

    p = folder("too_large") / "rec.npy"
    np.save(p, good.astype(np.float32))
    add(
        "too_large",
        p,
        "error",
        "file above max_file_bytes",
        error="EcgTooLargeError",
        read_kwargs={"fs": fs, "max_file_bytes": 10_000},
    )
    return out


def iter_bad_inputs(tmp_dir: str | Path) -> list[BadInput]:
    """Write the corpus under ``tmp_dir`` (deterministic) and return its entries."""
    return _build(Path(tmp_dir))
