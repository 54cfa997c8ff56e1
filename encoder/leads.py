"""Canonical 12-lead order and lead-name aliases."""

from __future__ import annotations

CANONICAL_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
NUM_LEADS = len(CANONICAL_LEADS)

# Names seen in the wild for the same lead (compared case-insensitively, spaces/dashes removed).
_ALIASES: dict[str, str] = {
    **{lead.lower(): lead for lead in CANONICAL_LEADS},
    "mli": "I",
    "mlii": "II",
    "mliii": "III",
    "lead1": "I",
    "lead2": "II",
    "lead3": "III",
    "leadi": "I",
    "leadii": "II",
    "leadiii": "III",
    "1": "I",
    "2": "II",
    "3": "III",
    "d1": "I",
    "d2": "II",
    "d3": "III",
    "avr": "aVR",
    "avl": "aVL",
    "avf": "aVF",
    "ecgi": "I",
    "ecgii": "II",
    "ecgiii": "III",
    "di": "I",
    "dii": "II",
    "diii": "III",
}
# Extra channels that are not part of the 12-lead set and are dropped without complaint.
NON_STANDARD_LEADS: frozenset[str] = frozenset(
    {
        "vx",
        "vy",
        "vz",
        "x",
        "y",
        "z",
        "resp",
        "abp",
        "pleth",
        "ppg",
        "spo2",
        "pace",
        "pacer",
        "stim",
        "marker",
    }
)


def _key(name: str) -> str:
    return name.strip().lower().replace(" ", "").replace("_", "").replace("-", "")


def canonical_lead_name(name: str) -> str | None:
    """Map a lead name from a file to its canonical name, or ``None`` if it is not one of the 12 leads."""
    return _ALIASES.get(_key(name))


def is_known_extra_lead(name: str) -> bool:
    """True for well-known non-12-lead channels (Frank leads, respiration...) that may be dropped."""
    return _key(name) in NON_STANDARD_LEADS
