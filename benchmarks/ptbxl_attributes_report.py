"""Parse a real PTB-XL table with ECG-QA's rules and print the counts per attribute (docs/ecgqa_attributes.md).

    python benchmarks/ptbxl_attributes_report.py ../shared/data/ptbxl/ptbxl_database.csv
    python benchmarks/ptbxl_attributes_report.py TABLE --excerpt tests/data/ptbxl_attributes_excerpt.csv

``--excerpt`` writes the test fixture: rows chosen so every distinct value shape of the parsed columns, every
infarction stage, pacemaker value and form statement occurs at least once.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

import pandas as pd

from encoder.datasets.ptbxl_attributes import ParseReport, table_attributes
from encoder.ecgqa.attributes import FORM_LEAD_CODES, NOISE_COLUMNS, NOISE_TYPES

EXCERPT_COLUMNS = ("ecg_id", "scp_codes", "report", "heart_axis", "infarction_stadium1", "infarction_stadium2",
                   *NOISE_COLUMNS.values(), "extra_beats", "pacemaker", "strat_fold")  # fmt: skip


def _shape(value: object) -> str:
    """A value's format: digits -> 9, lead words -> L (so ``" , V6"`` and ``" , V1"`` share one shape)."""
    s = re.sub(r"\d", "9", str(value).lower())
    return re.sub(r"\b(?:i{1,3}|av[rlf]|v9?)\b", "L", s)


def excerpt(table: pd.DataFrame, rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Rows of ``table`` covering every value shape of the parsed columns (then random rows up to ``rows``)."""
    chosen: list[int] = []
    for col in (
        *NOISE_COLUMNS.values(),
        "extra_beats",
        "infarction_stadium1",
        "infarction_stadium2",
        "pacemaker",
    ):
        shapes = table[col].dropna().map(_shape)
        chosen += shapes.drop_duplicates().index.tolist()
    for code in FORM_LEAD_CODES:
        chosen += table.index[table["scp_codes"].str.contains(f"'{code}'", regex=False)][:2].tolist()
    chosen = list(dict.fromkeys(chosen))
    rest = table.drop(index=chosen).sample(max(0, rows - len(chosen)), random_state=seed).index.tolist()
    return table.loc[sorted(chosen + rest), list(EXCERPT_COLUMNS)]


def counts(table: pd.DataFrame) -> dict[str, object]:
    """Records per attribute value, and the parse report."""
    report = ParseReport()
    attrs = table_attributes(table, report)
    out: dict[str, object] = {"records": len(attrs)}
    for kind in NOISE_TYPES:
        out[f"noise: {kind}"] = sum(any(a.noise[kind]) for a in attrs)
    out["noise: any"] = sum(any(a.noisy_leads()) for a in attrs)
    out["extra systoles"] = dict(Counter(t for a in attrs for t in a.extra_systoles))
    out["infarction stage"] = dict(Counter(a.infarction_stage for a in attrs if a.infarction_stage))
    out["pacemaker (PACE code)"] = sum(a.pacemaker for a in attrs)
    out["form statements present"] = dict(Counter(c for a in attrs for c in a.form_leads))
    out["form statements with leads found"] = dict(
        Counter(c for a in attrs for c, m in a.form_leads.items() if any(m))
    )
    out["cells parsed"] = dict(report.parsed)
    out["cells naming no lead"] = dict(report.no_leads)
    out["cells unparseable"] = dict(report.unparsed)
    out["unparseable tokens"] = {c: dict(v) for c, v in report.unparseable.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", help="ptbxl_database.csv")
    parser.add_argument("--excerpt", help="write a test excerpt of the table to this CSV path")
    parser.add_argument("--rows", type=int, default=300)
    args = parser.parse_args()
    table = pd.read_csv(args.table)
    for key, value in counts(table).items():
        print(f"{key}: {value}")
    if args.excerpt:
        excerpt(table, args.rows).to_csv(args.excerpt, index=False)
        print(f"wrote {args.excerpt}")


if __name__ == "__main__":
    main()
