"""Stage 1: what an ECG is (reading, leads, labels, datasets, synthetic cohort) and the ECG encoder."""

from encoder.errors import EcgInputError, EcgLlmError
from encoder.record import Ecg

__all__ = ["Ecg", "EcgInputError", "EcgLlmError"]
