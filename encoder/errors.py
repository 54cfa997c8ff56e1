"""One exception family for the whole library.

Every error a user can cause (a bad file, a bad config, a missing model) is an ``EcgLlmError``
with a message that says what was wrong and what to do. Catch ``EcgLlmError`` to catch them all.
"""

from __future__ import annotations


class EcgLlmError(Exception):
    """Base class of every error this library raises on purpose."""


class EcgInputError(EcgLlmError, ValueError):
    """An ECG file or array cannot be used (base of the ECG-input errors below)."""


class EcgFileMissingError(EcgInputError, FileNotFoundError):
    """The record (or one of its files, e.g. the .dat next to a .hea) does not exist."""


class EcgFormatError(EcgInputError):
    """The file is not a valid ECG in the format it claims (corrupt header, truncated data, wrong type)."""


class EcgSignalError(EcgInputError):
    """The samples are unusable (mostly NaN/inf, zero gain, all leads flat)."""


class EcgLeadError(EcgInputError):
    """Lead names are unknown, or too few of the 12 standard leads are present."""


class EcgSamplingRateError(EcgInputError):
    """The sampling rate is missing or outside the range the library supports."""


class EcgTooShortError(EcgInputError):
    """The record is shorter than the model needs."""


class EcgTooLargeError(EcgInputError):
    """The file or the length its header promises is larger than the library will read."""


class DatasetError(EcgLlmError):
    """A dataset directory is missing files or does not have the expected layout."""


class ConfigError(EcgLlmError, ValueError):
    """A configuration value is invalid (unknown name, impossible combination)."""


class CheckpointError(EcgLlmError):
    """A checkpoint or model directory is missing, incomplete or unsafe to load."""


class ModelLoadError(EcgLlmError):
    """A model (LLM, text tower) cannot be found or loaded locally."""


class LeakageError(EcgLlmError):
    """ECGs (or patients) of the evaluated split were seen in training; the scores would be optimistic."""
