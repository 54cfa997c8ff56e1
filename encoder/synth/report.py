"""A record's report text: one sentence per SCP statement, plus the leads of its lead-localised form statements.

Lead sentences use the phrasing of PTB-XL's English reports that ``encoder.datasets.ptbxl_attributes`` reads
("st segments are depressed in v4, v5, v6"), so the same parser reads a synthetic and a real table.
"""

from __future__ import annotations

import pandas as pd

from encoder.ecgqa.attributes import LEADS, LeadMask

LEAD_SENTENCES: dict[str, str] = {
    "STD_": "st segments are depressed in {leads}",
    "STE_": "st segments are elevated in {leads}",
    "INVT": "t waves are inverted in {leads}",
    "LOWT": "t waves are low in {leads}",
    "NDT": "t waves are abnormal in {leads}",
    "QWAVE": "q waves present in {leads}",
    "VCLVH": "voltages are high in {leads}",
    "LVOLT": "low voltage in {leads}",
    "HVOLT": "hohe amplituden in {leads}",
    "NST_": "st-t-veraenderungen in {leads}",
    "NT_": "t wave flattening in {leads}",
    "TAB_": "t abnormal in {leads}",
    "DIG": "digitalis effect in {leads}",
}
"""Form statement -> sentence naming its leads, in English or German as PTB-XL's reports are. Statements whose
phrases the parser cannot tell apart (NDT and NT_ / TAB_, VCLVH and HVOLT, LVOLT and VCLVH) are never generated
together (``labels_prior.EXCLUSIVE``)."""


def write_report(codes: dict[str, float], statements: pd.DataFrame, form_leads: dict[str, LeadMask]) -> str:
    """Lower-case report: each code's description, then a lead sentence for each located form statement."""
    parts = [str(statements.loc[c, "description"]).lower() for c in codes if c in statements.index]
    for code, sentence in LEAD_SENTENCES.items():
        mask = form_leads.get(code)
        if mask is not None and any(mask):
            parts.append(
                sentence.format(leads=", ".join(x.lower() for x, on in zip(LEADS, mask, strict=True) if on))
            )
    return ". ".join(parts) + "."
