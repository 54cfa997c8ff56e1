"""Reproducible subsets for quick evaluation runs (``--limit`` / ``--sample N`` + a sampled-id file).

``--limit N`` keeps the first N questions in file order. ``--sample N`` draws N ``sample_id``s at random
(seeded) and writes them to a JSON file; passing that file back (``--sample_file``) evaluates exactly the
same questions again, on any machine. ECG-QA ``sample_id``s are unique within a split.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from encoder.config_io import atomic_write_json
from encoder.errors import ConfigError, DatasetError


def sample_ids(all_ids: Sequence[int], n: int, seed: int) -> list[int]:
    """``n`` ids drawn without replacement with ``random.Random(seed)``, returned sorted."""
    ids = sorted(int(i) for i in all_ids)
    if n >= len(ids):
        return ids
    return sorted(random.Random(seed).sample(ids, n))


def write_sample_file(path: str | Path, ids: Sequence[int], **provenance) -> Path:
    """Write the sampled ids (plus where they came from) as JSON; returns the path."""
    path = Path(path)
    atomic_write_json(path, {**provenance, "n": len(ids), "sample_ids": [int(i) for i in ids]})
    return path


def read_sample_file(path: str | Path) -> list[int]:
    """Read the ids of a file written by :func:`write_sample_file` (or a plain JSON list of ids)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Sample-id file {path} does not exist; run once with --sample N to create it.")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"Sample-id file {path} is not valid JSON ({e}); delete it and re-sample.") from e
    ids = data["sample_ids"] if isinstance(data, dict) else data
    return [int(i) for i in ids]


def select_indices(
    sample_id_column: Sequence[int],
    *,
    limit: int | None = None,
    sample: int | None = None,
    sample_file: str | Path | None = None,
    seed: int = 0,
    provenance: dict | None = None,
) -> list[int]:
    """Row indices to evaluate.

    Precedence: an existing ``sample_file`` is read (its ids must all be in the dataset); else ``sample``
    draws ids and, if ``sample_file`` is given, writes them there; else ``limit`` keeps the first rows;
    else every row.
    """
    if limit is not None and sample is not None:
        raise ConfigError("Use either --limit or --sample, not both.")
    position = {int(s): i for i, s in enumerate(sample_id_column)}
    if sample_file is not None and Path(sample_file).is_file():
        ids = read_sample_file(sample_file)
        missing = [i for i in ids if i not in position]
        if missing:
            raise DatasetError(
                f"{len(missing)} sample ids of {sample_file} (e.g. {missing[:5]}) are not in this dataset split; "
                "was the file written for another split or variant? Delete it to re-sample."
            )
        return [position[i] for i in ids]
    if sample is not None:
        if sample <= 0:
            raise ConfigError(f"--sample must be positive, got {sample}.")
        ids = sample_ids(list(position), sample, seed)
        if sample_file is not None:
            write_sample_file(sample_file, ids, seed=seed, **(provenance or {}))
        return [position[i] for i in ids]
    if limit is not None:
        if limit <= 0:
            raise ConfigError(f"--limit must be positive, got {limit}.")
        return list(range(min(limit, len(position))))
    return list(range(len(position)))
