"""Regenerate the bundled synthetic example records (run once; the outputs are committed).

    .venv/bin/python demo/examples/make_examples.py

Each record is 10 s of 12-lead ECG at 500 Hz simulated with ``neurokit2.ecg_simulate(method="multileads")``
(a fixed ``random_state`` per record, so the files are reproducible), written as WFDB format 16 at 1000 adu/mV.
They are synthetic signals, not patient data.
"""

from __future__ import annotations

from pathlib import Path

import neurokit2 as nk
import numpy as np
import wfdb

from encoder.leads import CANONICAL_LEADS

FS = 500
SECONDS = 10
# record name -> (heart rate in bpm, random seed, comment)
EXAMPLES: dict[str, tuple[int, int, str]] = {
    "synthetic_sinus_70bpm": (70, 1, "synthetic sinus rhythm, 70 bpm"),
    "synthetic_tachycardia_110bpm": (110, 2, "synthetic sinus tachycardia, 110 bpm"),
    "synthetic_bradycardia_45bpm": (45, 3, "synthetic sinus bradycardia, 45 bpm"),
}


def make(out_dir: Path) -> list[Path]:
    paths = []
    for name, (hr, seed, comment) in EXAMPLES.items():
        df = nk.ecg_simulate(
            duration=SECONDS, sampling_rate=FS, heart_rate=hr, method="multileads", random_state=seed
        )
        signal = df[list(CANONICAL_LEADS)].to_numpy(dtype=np.float64)  # (T, 12) mV
        wfdb.wrsamp(
            name,
            fs=FS,
            units=["mV"] * len(CANONICAL_LEADS),
            sig_name=list(CANONICAL_LEADS),
            p_signal=signal,
            fmt=["16"] * len(CANONICAL_LEADS),
            adc_gain=[1000.0] * len(CANONICAL_LEADS),
            baseline=[0] * len(CANONICAL_LEADS),
            comments=[
                comment,
                f"made by demo/examples/make_examples.py (neurokit2 ecg_simulate, seed {seed})",
            ],
            write_dir=str(out_dir),
        )
        paths.append(out_dir / f"{name}.hea")
    return paths


if __name__ == "__main__":
    for p in make(Path(__file__).resolve().parent):
        print(p)
