"""Measure numeric features and heart axis on a real-record npz (ECG-QA rules) and compare the axis with the table.

    python benchmarks/ecg_measurements_real.py ../shared/data/ptbxl-real/ptbxl_real_183_500hz.npz \
        ../shared/data/ptbxl/ptbxl_database.csv

The npz holds ``signal`` (N, T, 12) at 500 Hz and ``ecg_id``; results go to docs/ecgqa_attributes.md.
"""

from __future__ import annotations

import sys
import time
from collections import Counter

import numpy as np
import pandas as pd

from encoder.ecg_measurements import measure_signal
from encoder.ecgqa.attributes import NUMERIC_FEATURES

TABLE_AXIS = {
    "MID": "normal heart axis",
    "LAD": "left axis deviation",
    "ALAD": "left axis deviation",
    "RAD": "right axis deviation",
    "ARAD": "right axis deviation",
}
"""PTB-XL heart_axis codes with a clear ECG-QA class (AXL, AXR, SAG left out)."""


def main() -> None:
    z = np.load(sys.argv[1])
    signals = z["signal"].astype(np.float32)  # (N, T, 12)
    t0 = time.time()
    res = [measure_signal(s.T, 500) for s in signals]
    print(f"records {len(res)}, {(time.time() - t0) / len(res) * 1000:.0f} ms/record")
    print("numeric measured", sum(bool(r.numeric_ms) for r in res))
    for f in NUMERIC_FEATURES:
        v = np.array([r.numeric_ms[f] for r in res if f in r.numeric_ms])  # (n, 2)
        print(f, len(v), "median of min / max (ms):", np.median(v[:, 0]).round(), np.median(v[:, 1]).round())
    print(Counter(r.heart_axis for r in res))
    if len(sys.argv) > 2:
        db = pd.read_csv(sys.argv[2]).set_index("ecg_id")
        col = db.loc[z["ecg_id"], "heart_axis"].to_numpy()
        pairs = [
            (TABLE_AXIS[c], r.heart_axis)
            for c, r in zip(col, res, strict=True)
            if c in TABLE_AXIS and r.heart_axis
        ]
        print("axis agrees with the table column:", sum(a == b for a, b in pairs), "of", len(pairs))


if __name__ == "__main__":
    main()
