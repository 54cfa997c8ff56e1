"""PTB-XL-like label sets: prevalence, multi-label co-occurrence and exclusions.

Roughly follows PTB-XL's statistics (NORM ~40 %, sinus rhythm ~75 %, MI / STTC / CD / HYP present, AFIB ~8 %),
with rare codes raised to >= ~2 % so every modelled statement is learnable. Diagnostic statements get likelihood
100.0 and form / rhythm statements 0.0, as in PTB-XL's ``scp_codes`` column.
"""

from __future__ import annotations

import numpy as np

from encoder.synth.labels_effects import MODELLED_CODES

# Relative weights of diagnostic statements in abnormal records.
DIAGNOSTIC_WEIGHTS: dict[str, float] = {
    "IMI": 0.14, "ASMI": 0.11, "AMI": 0.045, "LVH": 0.12, "LAFB": 0.08, "ISC_": 0.08, "IRBBB": 0.065,
    "1AVB": 0.055, "CRBBB": 0.05, "CLBBB": 0.05, "NDT": 0.065, "LNGQT": 0.035, "WPW": 0.042, "LAO/LAE": 0.035,
    "NST_": 0.035, "DIG": 0.035,
}  # fmt: skip
RHYTHM_NORMAL: dict[str, float] = {"SR": 0.86, "SBRAD": 0.05, "STACH": 0.04, "SARRH": 0.05}
RHYTHM_ABNORMAL: dict[str, float] = {
    "SR": 0.66,
    "AFIB": 0.15,
    "STACH": 0.06,
    "SBRAD": 0.05,
    "SARRH": 0.04,
    "AFLT": 0.04,
}
FORM_ABNORMAL: dict[str, float] = {
    "PVC": 0.07, "PAC": 0.05, "LVOLT": 0.045, "STD_": 0.06, "STE_": 0.035, "INVT": 0.05, "LOWT": 0.05, "VCLVH": 0.03,
    "NT_": 0.05, "TAB_": 0.05, "HVOLT": 0.04,
}  # fmt: skip

# Pairs that cannot be both present (one masks or contradicts the other).
EXCLUSIVE: tuple[frozenset[str], ...] = tuple(
    frozenset(p)
    for p in [
        ("CLBBB", "CRBBB"), ("CLBBB", "IRBBB"), ("CRBBB", "IRBBB"), ("CLBBB", "LAFB"), ("CLBBB", "WPW"),
        ("WPW", "CRBBB"), ("WPW", "IRBBB"), ("WPW", "LAFB"), ("WPW", "1AVB"), ("CLBBB", "IMI"), ("CLBBB", "ASMI"),
        ("CLBBB", "AMI"), ("WPW", "IMI"), ("WPW", "ASMI"), ("WPW", "AMI"), ("ASMI", "AMI"), ("LVOLT", "LVH"),
        ("LVOLT", "VCLVH"), ("INVT", "NDT"), ("LOWT", "INVT"), ("LOWT", "NDT"), ("STD_", "STE_"), ("ISC_", "NDT"),
        ("ISC_", "LOWT"), ("CLBBB", "LVH"), ("NDT", "NT_"), ("NDT", "TAB_"), ("HVOLT", "VCLVH"), ("HVOLT", "LVOLT"),
        ("HVOLT", "LVH"), ("DIG", "LNGQT"), ("TAB_", "INVT"), ("NT_", "INVT"), ("ISC_", "TAB_"),
    ]
)  # fmt: skip
NEEDS_P_WAVES = frozenset({"1AVB", "WPW", "LAO/LAE", "PAC"})


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _compatible(code: str, chosen: set[str]) -> bool:
    return all(frozenset((code, c)) not in EXCLUSIVE for c in chosen)


def sample_scp_codes(rng: np.random.Generator, normal_fraction: float = 0.42) -> dict[str, float]:
    """One record's ``scp_codes`` (code -> likelihood) as PTB-XL writes them."""
    if rng.random() < normal_fraction:
        codes = {"NORM": 100.0, _pick(rng, RHYTHM_NORMAL): 0.0}
        if rng.random() < 0.03:
            codes[_pick(rng, {"PAC": 1.0, "PVC": 1.0})] = 0.0
        return codes
    rhythm = _pick(rng, RHYTHM_ABNORMAL)
    n_diag = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
    chosen: set[str] = set()
    for _ in range(8 * n_diag):
        if len(chosen) >= n_diag:
            break
        code = _pick(rng, DIAGNOSTIC_WEIGHTS)
        if code in chosen or not _compatible(code, chosen):
            continue
        if rhythm in ("AFIB", "AFLT") and code in NEEDS_P_WAVES:
            continue
        chosen.add(code)
    for code, p in FORM_ABNORMAL.items():
        if (
            rng.random() < p
            and _compatible(code, chosen)
            and not (rhythm in ("AFIB", "AFLT") and code in NEEDS_P_WAVES)
        ):
            chosen.add(code)
    if "LVH" in chosen and rng.random() < 0.4:
        chosen.add("VCLVH")
    if chosen & {"IMI", "ASMI", "AMI"} and rng.random() < 0.35:
        chosen.add("QWAVE")
    codes = {c: (100.0 if c in DIAGNOSTIC_WEIGHTS else 0.0) for c in sorted(chosen)}
    codes[rhythm] = 0.0
    assert set(codes) <= MODELLED_CODES
    return codes
