"""Label rows drawn from a shipped sample of the real PTB-XL table (labels, noise, axis, stage, extra beats).

Each synthetic record takes one real row: its SCP codes (restricted to the codes the generator renders), its noise
lead lists, extra beats, heart axis, infarction stage and pacemaker strings, so frequencies and co-occurrence follow
the real table. ``build_sample`` makes the resource from a real ``ptbxl_database.csv`` (run once, offline)::

    python -m encoder.synth.real_labels /path/to/ptbxl_database.csv
"""

from __future__ import annotations

import ast
import math
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from encoder.ecgqa.attributes import LEADS, NOISE_COLUMNS, LeadMask
from encoder.synth.labels_effects import MODELLED_CODES
from encoder.synth.labels_prior import EXCLUSIVE, NEEDS_P_WAVES

SAMPLE_FILE = "ptbxl_label_sample.csv.gz"
SAMPLE_COLUMNS = ["scp_codes", "heart_axis", "infarction_stadium1", "infarction_stadium2", "baseline_drift",
                  "static_noise", "burst_noise", "electrodes_problems", "extra_beats", "pacemaker", "report"]  # fmt: skip
RHYTHMS = ("SR", "AFIB", "AFLT", "STACH", "SBRAD", "SARRH")
DIAGNOSTIC = frozenset({"NORM", "IMI", "ASMI", "AMI", "LVH", "LAFB", "ISC_", "IRBBB", "1AVB", "CRBBB", "CLBBB",
                        "NDT", "LNGQT", "WPW", "LAO/LAE", "NST_", "DIG"})  # fmt: skip
ALIASES: dict[str, str] = {
    "ILMI": "IMI", "IPLMI": "IMI", "IPMI": "IMI", "PMI": "IMI", "INJIN": "IMI", "INJIL": "IMI",
    "ALMI": "AMI", "LMI": "AMI", "INJAL": "AMI", "INJLA": "AMI", "INJAS": "ASMI",
    "ISCAL": "ISC_", "ISCIN": "ISC_", "ISCIL": "ISC_", "ISCAS": "ISC_", "ISCLA": "ISC_", "ISCAN": "ISC_",
    "BIGU": "PVC", "TRIGU": "PVC", "LNGPR": "1AVB",
}  # fmt: skip
"""Real codes the generator does not model -> the modelled code it renders them as (infarction and ischaemia
territories, bigeminy / trigeminy, long PR), so infarction stages keep their infarction."""
KEPT = frozenset({"PACE"})
"""Unmodelled codes kept as they are (PACE: the record gets pacing spikes)."""


@dataclass(frozen=True)
class LabelRow:
    """One real row's label-relevant cells (strings as in the real table; ``""`` = empty)."""

    scp_codes: dict[str, float]
    """Codes the generator renders, with the real likelihoods."""
    heart_axis: str
    infarction_stadium1: str
    infarction_stadium2: str
    noise: dict[str, str]
    """Table column (``baseline_drift`` ...) -> lead-list string."""
    extra_beats: str
    pacemaker: str


def build_sample(table_csv: str | Path, out: str | Path, n: int = 3000, seed: int = 0) -> None:
    """Write ``n`` rows of folds 1-8 (folds 9/10 hold the real evaluation records) of the real table, label columns only."""
    table = pd.read_csv(table_csv)
    table = table[table.strat_fold <= 8]
    table.sample(n=min(n, len(table)), random_state=seed)[SAMPLE_COLUMNS].to_csv(out, index=False)


@lru_cache(maxsize=1)
def load_sample() -> pd.DataFrame:
    """The shipped sample (``encoder/resources/synth``), empty cells as ``""``."""
    path = resources.files("encoder") / "resources" / "synth" / SAMPLE_FILE
    return pd.read_csv(str(path), dtype=str, keep_default_na=False)


def real_cells(column: str) -> list[str]:
    """The non-empty cells of one column of the shipped sample (e.g. ``electrodes_problems``), in its order."""
    return [c for c in load_sample()[column] if c.strip()]


def _cell(value: object) -> str:
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return text.strip()


def renderable_codes(codes: dict[str, float]) -> dict[str, float]:
    """The modelled codes of a real label set, dropping those the generator cannot combine; SR if no rhythm."""
    kept: dict[str, float] = {}
    mapped: dict[str, float] = {}
    for code, likelihood in codes.items():
        code = ALIASES.get(code, code)
        mapped[code] = max(mapped.get(code, 0.0), float(likelihood))
    codes = mapped
    rhythm = next((c for c in RHYTHMS if c in codes), "SR")
    no_p = rhythm in ("AFIB", "AFLT")
    for code in sorted(codes, key=lambda c: -codes[c]):
        if code in KEPT:
            kept[code] = float(codes[code])
            continue
        if code not in MODELLED_CODES or code in RHYTHMS or (no_p and code in NEEDS_P_WAVES):
            continue
        if all(frozenset((code, c)) not in EXCLUSIVE for c in kept):
            kept[code] = float(codes[code])
    if not kept.keys() & DIAGNOSTIC:
        kept["NORM"] = 100.0 if not kept else 0.0
        if kept["NORM"] == 0.0:
            del kept["NORM"]
    kept[rhythm] = float(codes.get(rhythm, 0.0))
    return dict(sorted(kept.items()))


def sample_label_row(rng: np.random.Generator) -> LabelRow:
    """One real row of the shipped sample, at random."""
    sample = load_sample()
    row = sample.iloc[int(rng.integers(len(sample)))]
    return LabelRow(
        scp_codes=renderable_codes(ast.literal_eval(row.scp_codes)),
        heart_axis=_cell(row.heart_axis),
        infarction_stadium1=_cell(row.infarction_stadium1),
        infarction_stadium2=_cell(row.infarction_stadium2),
        noise={col: _cell(row[col]) for col in NOISE_COLUMNS.values()},
        extra_beats=_cell(row.extra_beats),
        pacemaker=_cell(row.pacemaker),
    )


AXIS_DEGREES: dict[str, tuple[float, float]] = {
    "MID": (-20.0, 80.0), "LAD": (-60.0, -35.0), "ALAD": (-85.0, -45.0), "RAD": (95.0, 130.0),
    "ARAD": (115.0, 170.0), "AXL": (-170.0, -100.0), "AXR": (-170.0, -100.0), "SAG": (-20.0, 80.0), "": (-20.0, 80.0),
}  # fmt: skip
"""PTB-XL ``heart_axis`` code -> range of frontal QRS axis (degrees) the generator sets."""


def axis_target(code: str, rng: np.random.Generator) -> float:
    """A frontal QRS axis (degrees) for a PTB-XL heart-axis code."""
    lo, hi = AXIS_DEGREES.get(code, AXIS_DEGREES[""])
    return float(rng.uniform(lo, hi))


def axis_code(degrees: float) -> str:
    """The PTB-XL ``heart_axis`` code of a realised axis."""
    if -30.0 <= degrees <= 90.0:
        return "MID"
    if -90.0 <= degrees < -30.0:
        return "LAD" if degrees >= -45.0 else "ALAD"
    if degrees > 90.0:
        return "RAD" if degrees <= 120.0 else "ARAD"
    return "AXL"


def format_lead_list(mask: LeadMask) -> str:
    """A 12-lead mask in the real table's lead-list style (``" , I-AVF,V6"``, ``"alles"``; empty -> ``""``)."""
    if all(mask):
        return "alles"
    names = [lead.upper() for lead in LEADS]
    parts, i = [], 0
    while i < len(mask):
        if not mask[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(mask) and mask[j + 1]:
            j += 1
        parts.append(names[i] if j - i < 2 else f"{names[i]}-{names[j]}")
        if 0 < j - i < 2:
            parts.append(names[j])
        i = j + 1
    return " , " + ",".join(parts) if parts else ""


def extra_beat_codes(text: str) -> set[str]:
    """Codes that make the generator insert the premature beats of an ``extra_beats`` cell (SVES -> PAC, else PVC)."""
    text = text.upper()
    if not text:
        return set()
    return {"PAC"} if "SVES" in text and "VES" not in text.replace("SVES", "") else {"PVC"}


def extra_beats_text(n_pvc: int, n_pac: int) -> str:
    """The rendered premature beats in the table's ``extra_beats`` format ("1VES", "2SVES", "1VES,1SVES")."""
    parts = [f"{n}{name}" for n, name in ((n_pvc, "VES"), (n_pac, "SVES")) if n]
    return ",".join(parts)


def evolve(earlier: LabelRow, fresh: LabelRow, rng: np.random.Generator) -> LabelRow:
    """A patient's later label row: the earlier codes with one finding gone or one from ``fresh`` added, the
    recording conditions (noise, extra beats) of ``fresh``; same axis code, the infarction aged if any."""
    codes = dict(earlier.scp_codes)
    u = rng.random()
    droppable = [c for c in codes if c not in RHYTHMS and c != "NORM" and c not in KEPT]
    if u < 0.3 and droppable:
        del codes[droppable[int(rng.integers(len(droppable)))]]
    elif u < 0.6:
        new = [c for c in fresh.scp_codes if c not in codes and c not in RHYTHMS and c not in ("NORM", *KEPT)]
        if new:
            codes.pop("NORM", None)
            codes[new[int(rng.integers(len(new)))]] = 100.0
    st1 = earlier.infarction_stadium1
    if st1 in ("Stadium I", "Stadium I-II", "Stadium II"):
        st1 = "Stadium II-III" if st1 == "Stadium II" else "Stadium II"
    return LabelRow(
        renderable_codes(codes), earlier.heart_axis, st1, earlier.infarction_stadium2, fresh.noise,
        fresh.extra_beats, earlier.pacemaker,
    )  # fmt: skip


if __name__ == "__main__":
    build_sample(sys.argv[1], Path(__file__).parents[1] / "resources" / "synth" / SAMPLE_FILE)
