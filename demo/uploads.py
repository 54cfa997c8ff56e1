"""Server-side checks of uploaded ECG files, and the bundled examples.

The browser's file-type filter is only a hint: every upload is checked here again for count, size and type
(by content, not only by name). The files are then copied into a private temporary folder (deleted right after
reading), where ``encoder.io.read_ecg_files`` groups a .hea with the .dat it names (refusing signal-file names
with paths in them) and reads the record: the reader sees exactly the uploaded files and nothing next to them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import encoder
from encoder.errors import EcgFileMissingError, EcgFormatError, EcgTooLargeError
from encoder.record import Ecg

ALLOWED_SUFFIXES: tuple[str, ...] = (".hea", ".dat", ".xyz", ".npy", ".csv")  # .xyz: PTB Frank leads
STAGING_PREFIX = "ecgllm-demo-upload-"  # private folders of read_upload (the load test counts leftovers)
MAX_FILES = 4  # per ECG: a .hea with up to three signal files
_SNIFF_BYTES = 4096
_NPY_MAGIC = b"\x93NUMPY"

_ENCODER_RESOURCES = Path(encoder.__file__).resolve().parent / "resources"
_EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
# Display name -> WFDB record path without extension. The real record is shipped once under encoder/resources.
EXAMPLES: dict[str, Path] = {
    "s0010_re (real PTB record, 38 s, 1000 Hz)": _ENCODER_RESOURCES / "wfdb" / "s0010_re",
    "synthetic sinus rhythm, 70 bpm": _EXAMPLES_DIR / "synthetic_sinus_70bpm",
    "synthetic sinus tachycardia, 110 bpm": _EXAMPLES_DIR / "synthetic_tachycardia_110bpm",
    "synthetic sinus bradycardia, 45 bpm": _EXAMPLES_DIR / "synthetic_bradycardia_45bpm",
}


@dataclass(frozen=True)
class ReadOptions:
    """What the demo accepts; passed on to ``encoder.io.read_ecg``."""

    max_file_bytes: int = 20 * 1024 * 1024
    """Largest accepted size of one uploaded file in bytes."""
    min_duration_s: float = 5.0
    """Shortest accepted record in seconds."""
    min_leads: int = 6
    """Fewest of the 12 standard leads a record must contain."""


def _looks_like_text(head: bytes) -> bool:
    """True if ``head`` (the first bytes of a file) is printable text: no NUL, decodes as UTF-8, few controls."""
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character may be cut at the end of the sniffed block.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\r\n\f")
    return controls <= len(text) // 100


def check_file(path: str | Path, max_file_bytes: int) -> Path:
    """Check one uploaded file: a regular file, an allowed suffix, within the size limit, content of that type."""
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        raise EcgFormatError(
            f"'{name}' is not an ECG file this demo reads. Upload a WFDB record (.hea together with its .dat), "
            "a .npy array or a .csv table."
        )
    if not path.is_file() or path.is_symlink():
        raise EcgFileMissingError(f"The uploaded file '{name}' is not available any more; upload it again.")
    size = path.stat().st_size
    if size > max_file_bytes:
        raise EcgTooLargeError(
            f"'{name}' is {size / 2**20:.1f} MiB; this demo accepts files up to {max_file_bytes / 2**20:.1f} MiB."
        )
    if size == 0:
        raise EcgFormatError(f"'{name}' is empty.")
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    if suffix == ".npy" and not head.startswith(_NPY_MAGIC):
        raise EcgFormatError(
            f"'{name}' is not a NumPy .npy file (its first bytes are not the .npy signature)."
        )
    if suffix in (".hea", ".csv") and not _looks_like_text(head):
        kind = "WFDB header" if suffix == ".hea" else "CSV table"
        raise EcgFormatError(f"'{name}' is not a text file, so it cannot be a {kind}.")
    if suffix in (".dat", ".xyz") and _looks_like_text(head):
        raise EcgFormatError(
            f"'{name}' contains text, not binary WFDB signal data. Upload the record's real .dat file."
        )
    return path


def read_upload(paths: Sequence[str | Path], fs: float | None, options: ReadOptions) -> Ecg:
    """Check the uploaded files of one ECG and read them with ``encoder.io.read_ecg_files``.

    Accepted: one .npy, one .csv (``fs`` is their sampling rate; a CSV with a time column may omit it), or one
    .hea with the .dat file(s) it names.
    """
    from encoder.io import read_ecg_files

    if not paths:
        raise EcgFileMissingError("No file was uploaded. Upload an ECG file or pick an example.")
    if len(paths) > MAX_FILES:
        raise EcgFormatError(
            f"{len(paths)} files were uploaded for one ECG; upload one record (.hea + .dat, or one .npy/.csv)."
        )
    files = [check_file(p, options.max_file_bytes) for p in paths]
    suffixes = [f.suffix.lower() for f in files]
    arrays = sum(s in (".npy", ".csv") for s in suffixes)
    if arrays and len(files) > 1:
        raise EcgFormatError(
            "Upload one .npy or .csv file per ECG (or one .hea with its .dat), not several files."
        )
    if not arrays and ".hea" not in suffixes:
        raise EcgFileMissingError(
            "A WFDB record needs its header: upload the .hea file together with its .dat file (select both)."
        )
    if suffixes.count(".hea") > 1:
        raise EcgFormatError("Upload one WFDB record per ECG: one .hea file with its .dat file.")
    if len({f.name for f in files}) != len(files):
        raise EcgFormatError("Two uploaded files have the same name; upload each file once.")
    # Read copies in a private folder, so the reader sees exactly the uploaded files and nothing next to them.
    with tempfile.TemporaryDirectory(prefix=STAGING_PREFIX) as tmp:
        staged = [Path(tmp) / f.name for f in files]
        for src, dst in zip(files, staged, strict=True):
            shutil.copyfile(src, dst)
        ecgs = read_ecg_files(
            staged,
            fs=fs if arrays and fs else None,
            min_duration_s=options.min_duration_s,
            min_leads=options.min_leads,
            max_file_bytes=options.max_file_bytes,
        )
    if len(ecgs) != 1:
        raise EcgFormatError(f"The upload holds {len(ecgs)} records; upload one ECG per slot.")
    ecg = ecgs[0]
    ecg.meta["source"] = ", ".join(f.name for f in files)  # not the server's temporary path
    return ecg


def read_example(name: str, options: ReadOptions) -> Ecg:
    """Read one of the bundled ``EXAMPLES`` by display name."""
    from encoder.io import read_ecg

    if name not in EXAMPLES:
        raise EcgFileMissingError(f"Unknown example {name!r}; pick one of: {', '.join(EXAMPLES)}.")
    ecg = read_ecg(EXAMPLES[name], min_duration_s=options.min_duration_s, min_leads=options.min_leads)
    ecg.meta["source"] = f"example: {name}"
    return ecg
