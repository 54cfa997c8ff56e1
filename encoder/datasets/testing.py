"""A tiny PTB-XL-format directory for tests and benchmarks (not a realistic ECG generator).

The signals are simple periodic waveforms plus noise; only the *layout* matches PTB-XL (database csv,
scp_statements.csv, records100/ and records500/ WFDB files, 16-bit, gain 1000/mV). For realistic signals use
``encoder.datasets.synthetic.generate_cohort``.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

PTBXL_LEAD_NAMES = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")
"""Lead names as written in PTB-XL headers."""

# A few realistic code sets (diagnostic likelihoods as in PTB-XL, rhythm/form codes at 0.0).
_CODE_SETS = (
    {"NORM": 100.0, "SR": 0.0},
    {"NORM": 80.0, "SR": 0.0},
    {"IMI": 100.0, "SR": 0.0},
    {"IMI": 50.0, "ABQRS": 0.0, "SR": 0.0},
    {"ASMI": 100.0, "SR": 0.0},
    {"LVH": 100.0, "VCLVH": 0.0, "SR": 0.0},
    {"CLBBB": 100.0, "SR": 0.0},
    {"CRBBB": 100.0, "SBRAD": 0.0},
    {"1AVB": 100.0, "SR": 0.0},
    {"NDT": 100.0, "SR": 0.0},
    {"AFIB": 0.0, "ISC_": 50.0},
    {"STACH": 0.0, "NST_": 100.0},
    {"SR": 0.0},  # no diagnostic label
)


def write_tiny_ptbxl(
    out: str | Path,
    num_records: int = 16,
    seed: int = 0,
    seconds: float = 10.0,
    rates: tuple[int, ...] = (100, 500),
) -> Path:
    """Write ``num_records`` PTB-XL-format records (folds cycle 1..10) into ``out``; returns ``out``."""
    import wfdb

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ref = resources.files("encoder") / "resources" / "ptbxl" / "scp_statements.csv"
    with resources.as_file(ref) as p:
        shutil.copyfile(p, out / "scp_statements.csv")
    rows = []
    for k in range(num_records):
        ecg_id = k + 1
        folder = f"{(ecg_id // 1000) * 1000:05d}"
        codes = _CODE_SETS[k % len(_CODE_SETS)]
        hr = rng.uniform(50, 110)
        files = {}
        for fs in rates:
            n = int(round(seconds * fs))
            t = np.arange(n) / fs
            phase = 2 * np.pi * hr / 60 * t
            beat = np.exp(-((np.mod(phase, 2 * np.pi) - np.pi) ** 2) * 40)  # (T,) narrow spike per beat
            weights = rng.normal(1.0, 0.4, size=12)
            sig = beat[:, None] * weights[None, :] + 0.05 * rng.standard_normal((n, 12))  # (T, 12) mV
            sig = np.round(sig * 1000) / 1000
            suffix = "lr" if fs == 100 else "hr"
            rel = f"records{fs}/{folder}/{ecg_id:05d}_{suffix}"
            (out / f"records{fs}" / folder).mkdir(parents=True, exist_ok=True)
            wfdb.wrsamp(
                f"{ecg_id:05d}_{suffix}",
                fs=fs,
                units=["mV"] * 12,
                sig_name=list(PTBXL_LEAD_NAMES),
                p_signal=sig,
                fmt=["16"] * 12,
                adc_gain=[1000.0] * 12,
                baseline=[0] * 12,
                write_dir=str(out / f"records{fs}" / folder),
            )
            files[fs] = rel
        rows.append(
            {
                "ecg_id": ecg_id,
                "patient_id": 1000 + k // 2,
                "age": int(rng.integers(20, 90)),
                "sex": int(rng.integers(0, 2)),
                "report": "sinus rhythm, tiny test record",
                "scp_codes": repr(codes),
                "strat_fold": k % 10 + 1,
                "filename_lr": files.get(100, ""),
                "filename_hr": files.get(500, ""),
            }
        )
    pd.DataFrame(rows).to_csv(out / "ptbxl_database.csv", index=False)
    return out
