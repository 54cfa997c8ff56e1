"""The in-memory ECG record every part of the library passes around."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from encoder.leads import CANONICAL_LEADS


@dataclass
class Ecg:
    """A 12-lead ECG in canonical lead order.

    Attributes:
        signal: float32 array (12, T) in millivolts; absent leads are zero-filled.
        fs: sampling rate in Hz.
        lead_mask: bool array (12,), True where the lead was present in the source.
        meta: header comments, source path, repairs applied, flags (e.g. ``flat_leads``).
    """

    signal: np.ndarray  # (12, T) float32, mV
    fs: float
    lead_mask: np.ndarray  # (12,) bool
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def leads(self) -> tuple[str, ...]:
        return CANONICAL_LEADS

    @property
    def num_samples(self) -> int:
        return int(self.signal.shape[-1])

    @property
    def duration_s(self) -> float:
        return self.num_samples / float(self.fs)

    @property
    def present_leads(self) -> list[str]:
        return [lead for lead, ok in zip(CANONICAL_LEADS, self.lead_mask, strict=True) if ok]
