"""Shared test setup: everything runs offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory):
    """The bad-input corpus (tests/bad_inputs/corpus.py): list[BadInput], written once per session."""
    from bad_inputs.corpus import iter_bad_inputs

    return iter_bad_inputs(tmp_path_factory.mktemp("bad_inputs"))
