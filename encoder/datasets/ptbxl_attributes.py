"""ECG-QA attributes of PTB-XL-layout records, from the database table.

A synthetic cohort stores its ground truth in an ``ecgqa_attributes`` column (``EcgAttributes.to_json``); a real
table is parsed from its own columns. Entry point: :func:`table_attributes`.
"""

from __future__ import annotations

import pandas as pd

from encoder.ecgqa.attributes import EcgAttributes

GROUND_TRUTH_COLUMN = "ecgqa_attributes"
"""Column a synthetic cohort writes its ground-truth attributes into (JSON per row)."""


def table_attributes(table: pd.DataFrame) -> list[EcgAttributes]:
    """One :class:`EcgAttributes` per row of a PTB-XL-layout table (same order).

    Groups a table cannot tell are left out of ``available`` (so questions about them are unanswerable).
    """
    if GROUND_TRUTH_COLUMN in table.columns:
        return [EcgAttributes.from_json(text) for text in table[GROUND_TRUTH_COLUMN]]
    return [EcgAttributes() for _ in range(len(table))]
