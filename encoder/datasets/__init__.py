"""Datasets: PTB-XL (local copy), ECG-QA (JSON layout), MIMIC-IV-ECG join, memory-mapped cache, synthetic cohort."""

from encoder.datasets.ptbxl import SPLIT_FOLDS, PtbXl

__all__ = ["SPLIT_FOLDS", "PtbXl"]
