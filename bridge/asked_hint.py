"""How the prompt hint states the aux head's verdicts on the labels a question names.

A name -> formatter registry (``ASKED_FORMATS``). A formatter takes ``[(label description, verdict), ...]`` in the
question's order and returns the text appended to an ECG's findings (``"; asked: ..."``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def per_label(verdicts: Sequence[tuple[str, bool]]) -> str:
    """``; asked: atrial fibrillation yes, sinus rhythm no``."""
    return "; asked: " + ", ".join(f"{name} {'yes' if shown else 'no'}" for name, shown in verdicts)


def grouped(verdicts: Sequence[tuple[str, bool]]) -> str:
    """``; asked shown: atrial fibrillation; asked not shown: sinus rhythm`` (``none`` for an empty group).

    A choose question's answer (one option, both, or none) then stands verbatim after ``asked shown:``.
    """
    shown = [name for name, v in verdicts if v] or ["none"]
    absent = [name for name, v in verdicts if not v] or ["none"]
    return f"; asked shown: {', '.join(shown)}; asked not shown: {', '.join(absent)}"


ASKED_FORMATS: dict[str, Callable[[Sequence[tuple[str, bool]]], str]] = {
    "per_label": per_label,
    "grouped": grouped,
}
