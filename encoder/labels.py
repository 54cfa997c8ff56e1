"""PTB-XL SCP statements, the six label tasks of the PTB-XL benchmark, and text built from labels.

Label aggregation follows Strodthoff et al. 2020 ("Deep learning for ECG analysis: benchmarks and insights
from PTB-XL"): a record's ``scp_codes`` dict is mapped to

- ``all``: every SCP code (71),
- ``diagnostic``: codes flagged diagnostic (44),
- ``subdiagnostic``: the ``diagnostic_subclass`` of each diagnostic code (23),
- ``superdiagnostic``: the ``diagnostic_class`` of each diagnostic code (5: NORM, MI, STTC, CD, HYP),
- ``form``: codes flagged form (19), ``rhythm``: codes flagged rhythm (12),
- ``all+superdiagnostic``: every SCP code plus the superclasses of the diagnostic ones (75; ``NORM`` is both),
  so a classifier answers ECG-QA's superclass questions with a head of its own instead of an OR of members.

Likelihoods: like the benchmark code, every code listed in ``scp_codes`` counts, whatever its likelihood
(``min_likelihood=0``). PTB-XL only assigns likelihoods to diagnostic statements; rhythm and form codes
carry 0.0 (e.g. ``{"NORM": 100.0, "SR": 0.0}``), so a "likelihood > 0" rule would drop sinus rhythm from
almost every record. Pass ``min_likelihood`` > 0 to keep only diagnostic codes at or above that likelihood
(non-diagnostic codes are always kept).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pandas as pd

from encoder.errors import ConfigError, DatasetError

LABEL_TASKS = (
    "all",
    "diagnostic",
    "subdiagnostic",
    "superdiagnostic",
    "form",
    "rhythm",
    "all+superdiagnostic",
)
TEXT_STYLES = ("knowledge", "codes")

SUPERCLASS_DESCRIPTIONS = {
    "NORM": "normal ECG",
    "MI": "myocardial infarction",
    "STTC": "ST/T change",
    "CD": "conduction disturbance",
    "HYP": "hypertrophy",
}
"""Descriptions of the five diagnostic superclasses (PTB-XL paper, Table 3)."""

SUBCLASS_DESCRIPTIONS = {
    "STTC": "ST/T change",
    "IMI": "inferior myocardial infarction",
    "AMI": "anterior myocardial infarction",
    "LAFB/LPFB": "left anterior/left posterior fascicular block",
    "_AVB": "AV block",
    "ISCA": "ischemic in anterior leads",
    "ISCI": "ischemic in inferior leads",
}
"""Descriptions of the diagnostic subclasses whose name is not itself an SCP code (or groups several)."""

_REQUIRED_COLUMNS = ("description", "diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass")
# Order of statement categories in generated text: rhythm first, then diagnostic, then form.
_CATEGORY_RANK = {"rhythm": 0, "diagnostic": 1, "form": 2}


def _flag(value: object) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(float(value)) and float(value) == 1.0


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    s = str(value).strip()
    return s or None


@dataclass(frozen=True)
class Statement:
    """One row of ``scp_statements.csv``."""

    code: str
    description: str
    diagnostic: bool
    form: bool
    rhythm: bool
    diagnostic_class: str | None
    diagnostic_subclass: str | None


class ScpStatements:
    """The SCP-ECG statements of PTB-XL (code -> description, category flags, diagnostic class/subclass)."""

    def __init__(self, statements: dict[str, Statement], source: str = "") -> None:
        self.statements = statements
        self.source = source

    @classmethod
    def load(cls, path: str | Path | None = None) -> ScpStatements:
        """Read ``scp_statements.csv`` (default: the copy shipped with the library)."""
        if path is None:
            ref = resources.files("encoder") / "resources" / "ptbxl" / "scp_statements.csv"
            with resources.as_file(ref) as p:
                return cls._read(Path(p), source="shipped scp_statements.csv")
        return cls._read(Path(path), source=str(path))

    @classmethod
    def _read(cls, path: Path, source: str) -> ScpStatements:
        if not path.is_file():
            raise DatasetError(
                f"SCP statements file not found: {path}. Expected PTB-XL's scp_statements.csv."
            )
        try:
            df = pd.read_csv(path, index_col=0)
        except Exception as exc:  # pandas raises many types for a broken csv
            raise DatasetError(f"Cannot parse SCP statements file {path}: {exc}") from exc
        missing = [c for c in _REQUIRED_COLUMNS if c not in df.columns]
        if missing:
            raise DatasetError(
                f"{path} is missing column(s) {missing}; expected PTB-XL's scp_statements.csv "
                f"with columns {list(_REQUIRED_COLUMNS)}."
            )
        statements = {}
        for code, row in df.iterrows():
            code = str(code).strip()
            statements[code] = Statement(
                code=code,
                description=_text(row["description"]) or code,
                diagnostic=_flag(row["diagnostic"]),
                form=_flag(row["form"]),
                rhythm=_flag(row["rhythm"]),
                diagnostic_class=_text(row["diagnostic_class"]),
                diagnostic_subclass=_text(row["diagnostic_subclass"]),
            )
        if not statements:
            raise DatasetError(f"{path} lists no SCP statements.")
        return cls(statements, source=source)

    def __contains__(self, code: str) -> bool:
        return code in self.statements

    def __len__(self) -> int:
        return len(self.statements)

    def task_labels(self, task: str) -> list[str]:
        """The full label vocabulary of a task, sorted (e.g. 5 names for ``superdiagnostic``)."""
        check_task(task)
        s = self.statements.values()
        if task == "all":
            names = {x.code for x in s}
        elif task == "all+superdiagnostic":
            names = {x.code for x in s} | {
                x.diagnostic_class for x in s if x.diagnostic and x.diagnostic_class
            }
        elif task == "diagnostic":
            names = {x.code for x in s if x.diagnostic}
        elif task == "subdiagnostic":
            names = {x.diagnostic_subclass for x in s if x.diagnostic and x.diagnostic_subclass}
        elif task == "superdiagnostic":
            names = {x.diagnostic_class for x in s if x.diagnostic and x.diagnostic_class}
        elif task == "form":
            names = {x.code for x in s if x.form}
        else:
            names = {x.code for x in s if x.rhythm}
        return sorted(names)

    def description(self, name: str) -> str:
        """Description of an SCP code, a diagnostic subclass or a diagnostic superclass."""
        if name in SUBCLASS_DESCRIPTIONS:
            return SUBCLASS_DESCRIPTIONS[name]
        if name in self.statements:
            return self.statements[name].description
        if name in SUPERCLASS_DESCRIPTIONS:
            return SUPERCLASS_DESCRIPTIONS[name]
        raise DatasetError(f"Unknown SCP label {name!r}: not an SCP code, diagnostic subclass or class.")

    def category(self, name: str) -> str:
        """``rhythm``, ``diagnostic`` or ``form`` (diagnostic wins for codes flagged both)."""
        st = self.statements.get(name)
        if st is None or st.diagnostic:
            return "diagnostic"  # subclasses and superclasses are diagnostic
        return "rhythm" if st.rhythm else "form"

    def diagnostic_class_of(self, name: str) -> str | None:
        """Superclass of a diagnostic code or subclass (None for form/rhythm codes and superclasses)."""
        st = self.statements.get(name)
        if st is not None and st.diagnostic:
            return st.diagnostic_class
        for x in self.statements.values():
            if x.diagnostic and x.diagnostic_subclass == name:
                return x.diagnostic_class
        return None


def check_task(task: str) -> str:
    if task not in LABEL_TASKS:
        raise ConfigError(f"Unknown label task {task!r}; choose one of {', '.join(LABEL_TASKS)}.")
    return task


def labels_for_record(
    scp_codes: dict[str, float],
    task: str,
    statements: ScpStatements,
    min_likelihood: float = 0.0,
) -> list[str]:
    """Map a record's ``scp_codes`` ({code: likelihood}) to the sorted, de-duplicated labels of ``task``.

    Codes missing from ``statements`` are ignored (as in the benchmark code). ``min_likelihood`` > 0
    drops diagnostic codes below it; form and rhythm codes (likelihood 0 in PTB-XL) are always kept.
    """
    check_task(task)
    out: set[str] = set()
    for code, likelihood in scp_codes.items():
        st = statements.statements.get(code)
        if st is None:
            continue
        if min_likelihood > 0 and st.diagnostic and float(likelihood or 0.0) < min_likelihood:
            continue
        if task == "all":
            out.add(code)
        elif task == "all+superdiagnostic":
            out.add(code)
            if st.diagnostic and st.diagnostic_class:
                out.add(st.diagnostic_class)
        elif task == "diagnostic":
            if st.diagnostic:
                out.add(code)
        elif task == "subdiagnostic":
            if st.diagnostic and st.diagnostic_subclass:
                out.add(st.diagnostic_subclass)
        elif task == "superdiagnostic":
            if st.diagnostic and st.diagnostic_class:
                out.add(st.diagnostic_class)
        elif task == "form":
            if st.form:
                out.add(code)
        elif st.rhythm:
            out.add(code)
    return sorted(out)


def _sorted_for_text(labels: list[str], statements: ScpStatements) -> list[str]:
    return sorted(set(labels), key=lambda x: (_CATEGORY_RANK[statements.category(x)], x))


def label_text(labels: list[str], statements: ScpStatements, style: str = "knowledge") -> str:
    """Text for a label set; deterministic (rhythm, then diagnostic, then form; alphabetical within).

    ``knowledge``: SCP descriptions, expanded with the diagnostic class, e.g.
    ``"Sinus rhythm. Inferior myocardial infarction (diagnostic class: myocardial infarction)."``
    ``codes``: the bare codes, e.g. ``"SR, IMI"``. An empty label set gives ``""``.
    """
    if style not in TEXT_STYLES:
        raise ConfigError(f"Unknown text style {style!r}; choose one of {', '.join(TEXT_STYLES)}.")
    ordered = _sorted_for_text(labels, statements)
    if style == "codes":
        return ", ".join(ordered)
    sentences = []
    for name in ordered:
        desc = statements.description(name)
        cls = statements.diagnostic_class_of(name)
        if cls is not None:
            cls_desc = SUPERCLASS_DESCRIPTIONS.get(cls, cls)
            if cls_desc.lower() != desc.lower():
                desc = f"{desc} (diagnostic class: {cls_desc})"
        sentences.append(desc[:1].upper() + desc[1:])
    return ". ".join(sentences) + ("." if sentences else "")


# PTB-XL SCP codes whose ECG-QA answer text differs from the statement's description.
SCP_CODE_TO_ECGQA: dict[str, str] = {
    "DIG": "digitalis effect",
    "LOWT": "low amplitude t-wave",
    "BIGU": "bigeminal pattern (unknown origin, supraventricular, or ventricular)",
    # superclasses (PTB-XL diagnostic_class) as ECG-QA spells them
    "CD": "conduction disturbance",
    "HYP": "hypertrophy",
    "MI": "myocardial infarction",
    "STTC": "st/t change",
    # "<site> myocardial infarction" -> "myocardial infarction in <site> leads"
    **{
        code: f"myocardial infarction in {site} leads"
        for code, site in {
            "AMI": "anterior",
            "ALMI": "anterolateral",
            "ASMI": "anteroseptal",
            "IMI": "inferior",
            "ILMI": "inferolateral",
            "IPMI": "inferoposterior",
            "IPLMI": "inferoposterolateral",
            "LMI": "lateral",
            "PMI": "posterior",
        }.items()
    },
}


@lru_cache(maxsize=1)
def scp_code_aliases() -> dict[str, str]:
    """Alias -> ECG-QA answer text for every PTB-XL SCP statement (from the shipped statements csv).

    Both the code (``"AFIB"``) and the PTB-XL description (``"inferior myocardial infarction"``) map to
    the ECG-QA spelling (``"atrial fibrillation"``, ``"myocardial infarction in inferior leads"``).
    """
    path = resources.files("encoder") / "resources" / "ptbxl" / "scp_statements.csv"
    with path.open() as f:
        rows = [r for r in list(csv.reader(f))[1:] if len(r) > 1 and r[0]]
    aliases: dict[str, str] = {}
    for code, description in ((r[0], r[1]) for r in rows):
        target = SCP_CODE_TO_ECGQA.get(code, description.lower())
        aliases[code] = target
        aliases[description.lower()] = target
    for code, target in SCP_CODE_TO_ECGQA.items():
        aliases.setdefault(code, target)
    return aliases


def ecgqa_name(code: str) -> str:
    """How ECG-QA spells a label (SCP code or superclass): ``"IMI"`` -> ``"myocardial infarction in inferior leads"``;
    unknown names are returned unchanged."""
    return scp_code_aliases().get(code, code)
