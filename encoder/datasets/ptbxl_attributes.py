"""ECG-QA attributes of PTB-XL-layout records, from the database table (and optionally the signals).

A synthetic cohort stores its ground truth in an ``ecgqa_attributes`` column (``EcgAttributes.to_json``); a real
table is parsed from its own columns with ECG-QA's rules: free-text lead lists of the four noise columns,
``extra_beats``, ``infarction_stadium2`` else ``infarction_stadium1``, the PACE code, and the leads of the 13 form
statements from the report. Numeric features and heart axis are measured from the signal
(:mod:`encoder.ecg_measurements`) when a reader is given. Entry point: :func:`table_attributes`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from encoder.ecgqa.attributes import (
    FORM_LEAD_CODES,
    INFARCTION_STAGES,
    LEADS,
    NO_LEADS,
    NOISE_COLUMNS,
    NOISE_TYPES,
    EcgAttributes,
    LeadMask,
)

if TYPE_CHECKING:
    from encoder.ecg_measurements import Measurements

GROUND_TRUTH_COLUMN = "ecgqa_attributes"
"""Column a synthetic cohort writes its ground-truth attributes into (JSON per row)."""

_LEAD_INDEX = {name.lower(): i for i, name in enumerate(LEADS)}
_REGIONS: dict[str, tuple[str, ...]] = {
    "alles": LEADS, "alle": LEADS, "all": LEADS, "standard": LEADS,
    "chest": LEADS[6:], "precordial": LEADS[6:], "brustwand": LEADS[6:], "limb": LEADS[:6], "peripheral": LEADS[:6],
    "extremitaeten": LEADS[:6], "anterior": ("V3", "V4"), "anterioren": ("V3", "V4"),
    "anteroseptal": ("V1", "V2", "V3", "V4"), "anterolateral": ("I", "aVL", "V3", "V4", "V5", "V6"),
    "inferior": ("II", "III", "aVF"), "inferioren": ("II", "III", "aVF"),
    "inferolateral": ("I", "II", "III", "aVL", "aVF", "V5", "V6"), "inferoseptal": ("II", "III", "aVF", "V1", "V2"),
    "lateral": ("I", "aVL", "V5", "V6"), "lateralen": ("I", "aVL", "V5", "V6"), "highlateral": ("I", "aVL"),
}  # fmt: skip
"""Lead-group words (English and German, as in PTB-XL's texts) -> leads (ECG-QA's groups)."""

_FILLER = frozenset(
    "mittel leicht stark noisy recording noise kontaktprobleme elektroden vertauscht in and und leads lead "
    "ableitungen ableitung v drift stark starke stufe stufen napf abl period typen 2typen pace ja".split()
)
"""Words of the lead-list columns that name no lead (severity, comments); ignored, not unparseable."""


@dataclass
class ParseReport:
    """What a real table's parse found: values per column and the ones that could not be read."""

    parsed: Counter = field(default_factory=Counter)
    """Column -> non-empty cells that gave a result."""
    no_leads: Counter = field(default_factory=Counter)
    """Column -> non-empty cells naming no lead (e.g. "mittel"): no noise mask, as in ECG-QA."""
    unparsed: Counter = field(default_factory=Counter)
    """Column -> non-empty cells that gave nothing and hold unknown tokens."""
    unparseable: dict[str, Counter] = field(default_factory=dict)
    """Column -> unknown token -> count (cells holding them keep the leads they do name)."""

    def unknown(self, column: str, token: str) -> None:
        self.unparseable.setdefault(column, Counter())[token] += 1


def _lead_token(token: str) -> tuple[str, ...] | None:
    """Leads named by one token (``"v1-6"``, ``"i-avf"``, ``"avl"``, ``"alles"``); None when it names none."""
    if token in _REGIONS:
        return _REGIONS[token]
    if token.isdigit():
        token = f"v{token}"
    if token in _LEAD_INDEX:
        return (LEADS[_LEAD_INDEX[token]],)
    if "-" in token:
        left, _, right = token.partition("-")
        right = right.lstrip("-")
        if right.isdigit():
            right = f"v{right}"
        if left.isdigit():
            left = f"v{left}"
        if left in _LEAD_INDEX and right in _LEAD_INDEX:  # a reversed range ("avl-iii") spans the same leads
            lo, hi = sorted((_LEAD_INDEX[left], _LEAD_INDEX[right]))
            return LEADS[lo : hi + 1]
    return None


def parse_lead_list(text: object) -> tuple[LeadMask, list[str]]:
    """A free-text lead list (``" , I-V1,  "``, ``"alles"``, ``"v1-v6"``, ``"inferior"``) -> (mask, unknown tokens).

    Empty / NaN cells give no leads; filler words (severity, comments) are skipped.
    """
    if not isinstance(text, str) or not text.strip():
        return NO_LEADS, []
    s = re.sub(r"\s*-+\s*", "-", text.lower().replace("?", " "))
    s = s.replace("ä", "ae").replace("alf", "avf").replace("!", "1")  # typos ECG-QA also repairs
    s = re.sub(r"(v\d)(?=v\d)", r"\1,", s)  # "v1v6"
    mask = [False] * len(LEADS)
    unknown: list[str] = []
    for token in re.split(r"[,;.\s)(&/]+", s):
        token = token.strip("-")
        if not token or token in _FILLER:
            continue
        leads = _lead_token(token)
        if leads is None:
            unknown.append(token)
            continue
        for lead in leads:
            mask[_LEAD_INDEX[lead.lower()]] = True
    return tuple(mask), unknown


def parse_extra_beats(text: object) -> tuple[frozenset[str], LeadMask, list[str]]:
    """``extra_beats`` (``"1VES"``, ``"SVES"``, ``"4ES"``, ``"VES1,alles"``, ``"1,V1"``) -> (types, leads, unknown).

    ``SVES`` -> supraventricular, ``VES`` -> ventricular, ``ES`` or a bare count -> "extrasystoles".
    """
    if not isinstance(text, str) or not text.strip():
        return frozenset(), NO_LEADS, []
    types: set[str] = set()
    lead_parts: list[str] = []
    for part in re.split(r"[,;()]+", text.lower()):
        part = part.strip()
        kind = re.fullmatch(r"\d*\s*(sves|ves|es)\s*\d*", part)
        if kind:
            types.add(
                {"sves": "supraventricular extrasystoles", "ves": "ventricular extrasystoles"}.get(
                    kind.group(1), "extrasystoles"
                )
            )
        elif part.isdigit():
            types.add("extrasystoles")
        elif part:
            lead_parts.append(part)
    mask, unknown = parse_lead_list(",".join(lead_parts))
    if not types:
        unknown.append(text.strip())
    return frozenset(types), mask, unknown


_STAGES = {
    "stadium i": INFARCTION_STAGES[0],
    "stadium i-ii": INFARCTION_STAGES[0],
    "stadium ii": INFARCTION_STAGES[1],
    "stadium ii-iii": INFARCTION_STAGES[1],
    "stadium iii": INFARCTION_STAGES[2],
    "unknown": INFARCTION_STAGES[3],
}
"""PTB-XL's infarction_stadium values -> ECG-QA's stage answers (I, I-II early; II, II-III middle; III old)."""


def parse_infarction_stage(stadium1: object, stadium2: object) -> tuple[str | None, bool]:
    """``infarction_stadium2`` else ``infarction_stadium1`` -> (stage or None, parsed ok)."""
    for value in (stadium2, stadium1):
        if isinstance(value, str) and value.strip():
            stage = _STAGES.get(" ".join(value.lower().split()))
            return stage, stage is not None
    return None, True


# Phrases that introduce the leads of each form statement in PTB-XL's reports (English and German, lower case).
_FORM_PHRASES: dict[str, str] = {
    "NDT": r"t waves? (?:are )?(?:\w+ ){0,6}in|t[- ]?(?:changes?|wave changes?)(?: \w+){0,3} in|t (?:abnorm|neg|flach|negativ)\w* in",
    "NST_": r"st-t (?:wave )?changes?(?: \w+){0,3} in|st-t changes|st[- ]?t[- ]?(?:ver\w+|abnorm\w*) in",
    "DIG": r"digitalis\w*(?: \w+){0,3} (?:in|trough)",
    "STD_": r"st[- ]?(?:segments? )?(?:are )?(?:\w+ ){0,3}(?:depress\w*|lowering|reduction|senkung)(?: \w+){0,6}? in|st-senkung",
    "VCLVH": r"voltages? (?:are high )?in|voltage criteria(?: \w+){0,5} in",
    "QWAVE": r"q(?: waves?)? (?:are )?(?:present )?in|q[- ]?zacken? in|qs complexes in",
    "LOWT": r"t waves are (?:low or flat|low) in|t (?:flach|abgeflacht) in",
    "NT_": r"t wave (?:flattening|changes)(?: \w+){0,4} in",
    "INVT": r"t waves? (?:are )?(?:\w+ ){0,3}invert\w* in|t wave inversion in|t-negativierung in",
    "LVOLT": r"low (?:limb lead )?voltage(?: in)?|peripheral low[- ](?:voltage|tension)|niedervolt\w*",
    "HVOLT": r"high v lead voltages|voltages (?:are high )?in|hohe amplitude\w* in",
    "TAB_": r"t[- ]?(?:changes?|abnormal|abnorm)(?: \w+){0,3} in|t abnorm in",
    "STE_": r"st[- ]?(?:segments? )?(?:are )?(?:\w+ ){0,2}(?:elevat\w*|hebung)(?: \w+){0,3}? in|st-hebung",
}
_LEAD_RUN = re.compile(
    r"^(?:[\s,/&]|and|und|leads?|ableitungen?)*((?:(?:v?\d(?:-v?\d)?|i{1,3}(?:-(?:avr|avl|avf|v\d|i{1,3}))?|avr|avl|avf|"
    r"all leads|chest|limb|anterior\w*|antero-?\s?(?:septal|lateral)|inferior\w*|infero-?\s?(?:lateral|septal)|"
    r"lateral\w*|high-?\s?lateral|precordial|peripheral)(?![a-z])(?:[\s,/&]|and|und|leads?|ableitungen?)*)+)"
)


def parse_form_leads(report: object, codes: dict[str, float]) -> dict[str, LeadMask]:
    """Leads the report gives for each of the 13 form statements among ``codes`` (no leads found -> all False)."""
    out: dict[str, LeadMask] = {}
    text = " ".join(str(report).lower().split()) if isinstance(report, str) else ""
    for code in FORM_LEAD_CODES:
        if code not in codes:
            continue
        mask = NO_LEADS
        for m in re.finditer(_FORM_PHRASES[code], text):
            run = _LEAD_RUN.match(text[m.end() :])
            if run:
                found, _ = parse_lead_list(run.group(1).replace("all leads", "alles").replace(" ", ","))
                mask = tuple(a or b for a, b in zip(mask, found, strict=True))
        out[code] = mask
    return out


def table_attributes(
    table: pd.DataFrame,
    report: ParseReport | None = None,
    measure: Callable[[int], Measurements] | None = None,
) -> list[EcgAttributes]:
    """One :class:`EcgAttributes` per row of a PTB-XL-layout table (same order).

    Args:
        table: ground-truth ``ecgqa_attributes`` column (synthetic cohort) or the real PTB-XL columns.
        report: filled with parse counts and unparseable values when given.
        measure: row position -> ``encoder.ecg_measurements.Measurements`` (numeric features, axis); without it
            ``numeric_feature`` and ``heart_axis`` are not available.

    Groups a table cannot tell are left out of ``available`` (so questions about them are unanswerable).
    """
    if GROUND_TRUTH_COLUMN in table.columns:
        return [EcgAttributes.from_json(text) for text in table[GROUND_TRUTH_COLUMN]]
    report = report if report is not None else ParseReport()
    return [_row_attributes(i, row, report, measure) for i, (_, row) in enumerate(table.iterrows())]


def _codes(row: pd.Series) -> dict[str, float] | None:
    if "scp_codes" not in row.index:
        return None
    value = row["scp_codes"]
    if isinstance(value, dict):
        return value
    from encoder.datasets.ptbxl import parse_scp_codes

    return parse_scp_codes(value)


def _row_attributes(
    i: int, row: pd.Series, report: ParseReport, measure: Callable[[int], Measurements] | None
) -> EcgAttributes:
    available: set[str] = set()
    noise: dict[str, LeadMask] = {}
    if all(c in row.index for c in NOISE_COLUMNS.values()):
        available.add("noise")
        for kind in NOISE_TYPES:
            col = NOISE_COLUMNS[kind]
            noise[kind], unknown = parse_lead_list(row[col])
            _count(report, col, row[col], noise[kind], unknown)
    extra: frozenset[str] = frozenset()
    extra_leads = NO_LEADS
    if "extra_beats" in row.index:
        available.add("extra_systole")
        extra, extra_leads, unknown = parse_extra_beats(row["extra_beats"])
        _count(report, "extra_beats", row["extra_beats"], (bool(extra),), unknown)
    stage = None
    if "infarction_stadium1" in row.index:
        available.add("stage_of_infarction")
        stage, ok = parse_infarction_stage(row["infarction_stadium1"], row.get("infarction_stadium2"))
        _count(report, "infarction_stadium", row["infarction_stadium1"], (True,), [] if ok else ["stadium"])
    codes = _codes(row)
    form_leads: dict[str, LeadMask] = {}
    pacemaker = False
    if codes is not None:
        available.add("pacemaker")
        pacemaker = "PACE" in codes
        if "report" in row.index:
            available.add("form_leads")
            form_leads = parse_form_leads(row["report"], codes)
    numeric_ms: dict[str, tuple[float, float]] = {}
    axis = None
    if measure is not None:
        m = measure(i)
        dirty = tuple(a or b for a, b in zip(_any_noise(noise), extra_leads, strict=True))
        if not dirty[LEADS.index("II")] and m.numeric_ms:
            numeric_ms = dict(m.numeric_ms)
            available.add("numeric_feature")
        if not (dirty[LEADS.index("I")] or dirty[LEADS.index("aVF")]) and m.heart_axis is not None:
            axis = m.heart_axis
            available.add("heart_axis")
    return EcgAttributes(
        noise=noise,
        extra_systoles=extra,
        heart_axis=axis,
        infarction_stage=stage,
        pacemaker=pacemaker,
        form_leads=form_leads,
        numeric_ms=numeric_ms,
        available=frozenset(available),
    )


def _any_noise(noise: dict[str, LeadMask]) -> LeadMask:
    return tuple(any(m[i] for m in noise.values()) for i in range(len(LEADS))) if noise else NO_LEADS


def _count(
    report: ParseReport, column: str, value: object, result: tuple[bool, ...], unknown: list[str]
) -> None:
    if not isinstance(value, str) or not value.strip():
        return
    for token in unknown:
        report.unknown(column, token)
    if any(result):
        report.parsed[column] += 1
    elif unknown:
        report.unparsed[column] += 1
    else:
        report.no_leads[column] += 1
