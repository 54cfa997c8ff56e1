"""Memory-mapped signal cache: convert a dataset once, then train from one array.

Layout of a cache directory (``<cache_root>/<name>-<key>/``)::

    signals.npy    (N, 12, T) int16 (lossless: 16-bit source, one common gain) or float16 (mV); .npy, memmapped
    labels.npy     (N, L) uint8 multi-hot in ``label_names`` order
    lead_mask.npy  (N, 12) bool, False for absent or flat leads
    lead_sums.npy  (N, 2, 12, T // SUM_BLOCK + 1) float64 prefix sums of each lead and of its square (stored
                   units) at every SUM_BLOCK-th sample: a crop's per-lead mean and std without a pass over it
    table.csv      ecg_id, filename, strat_fold, labels (JSON list), text, age, sex, ..., valid_length
    meta.json      format version, settings and key, label names, sampling rate, dtype, scale (mV per unit)

The key is a hash of every setting that changes the content (dataset path and database file, label task and
text settings, sampling rate, length, filters, format version). The directory is written under a temp name
and renamed when complete, so a crash never leaves a half cache that a later run would pick up. The cache is
never written inside the dataset directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from encoder.config_io import atomic_write_json, save_resolved_config
from encoder.datasets.ptbxl import SPLIT_FOLDS, PtbXl
from encoder.errors import ConfigError, DatasetError, EcgInputError
from encoder.leads import CANONICAL_LEADS
from encoder.preprocess import bandpass, check_normalization, lead_scales, resample

CACHE_FORMAT_VERSION = 2
"""Bump when the on-disk layout or the conversion changes (invalidates every existing cache)."""

SUM_BLOCK = 64
"""Samples between two stored prefix sums (``lead_sums.npy`` is 8 / SUM_BLOCK of the int16 signals' size)."""

# WFDB storage formats whose samples fit in 16 bits.
_SIXTEEN_BIT_FORMATS = {"8", "16", "61", "80", "160", "212", "310", "311"}
DTYPES = ("auto", "int16", "float16")
Band = tuple[float | None, float | None]
"""A band-pass ``(low, high)`` in Hz; an end of None leaves that side unfiltered (as ``preprocess.bandpass``)."""


def default_cache_root() -> Path:
    """``$ECGLLM_CACHE/signals`` (default ``~/.cache/ecgllm/signals``)."""
    return Path(os.environ.get("ECGLLM_CACHE", Path.home() / ".cache" / "ecgllm")).expanduser() / "signals"


def _check_outside(cache_root: Path, dataset_root: Path) -> None:
    """Data safety: refuse a cache location inside the user's dataset."""
    c, d = cache_root.expanduser().resolve(), dataset_root.expanduser().resolve()
    if c == d or c.is_relative_to(d):
        raise DatasetError(
            f"Refusing to write the cache to {c}: it is inside the dataset directory {d}. "
            "The library never writes into a dataset; choose a cache_dir outside it."
        )


def cache_settings(dataset: PtbXl, num_samples: int, bandpass_hz: Band | None, dtype: str) -> dict[str, Any]:
    """Every setting that changes the cache content; its hash is the cache key."""
    db = dataset.root / "ptbxl_database.csv"
    st = db.stat()
    return {
        "format_version": CACHE_FORMAT_VERSION,
        "dataset": "ptbxl",
        "root": str(dataset.root),
        "database_size": st.st_size,
        "database_mtime_ns": st.st_mtime_ns,
        **dataset.settings,
        "num_samples": int(num_samples),
        "bandpass_hz": list(bandpass_hz) if bandpass_hz else None,
        "dtype": dtype,
    }


def cache_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _common_int16_gain(dataset: PtbXl, progress: bool = True) -> float | None:
    """The one ADC gain of all records if every record is stored in <= 16 bits with that gain, else None."""
    import wfdb

    gains: set[float] = set()
    for i in tqdm(
        range(len(dataset)), desc="checking headers", unit="rec", leave=False, disable=not progress
    ):
        path = dataset.record_path(i)
        try:
            h = wfdb.rdheader(str(path))
        except Exception:
            return None  # unreadable header: let the reader report it; store float16
        fmts = {str(f) for f in (h.fmt or [])}
        if h.fs != dataset.sampling_rate or not fmts or not fmts <= _SIXTEEN_BIT_FORMATS:
            return None
        gains.update(float(g) for g in (h.adc_gain or []))
        if len(gains) != 1 or 0.0 in gains:
            return None
    return gains.pop() if len(gains) == 1 else None


def block_prefix_sums(x: np.ndarray, block: int = SUM_BLOCK) -> np.ndarray:
    """Prefix sums of each lead and of its square at every ``block``-th sample: (12, T) -> (2, 12, T // block + 1)
    float64, ``out[:, :, j]`` = sums of x and x**2 over samples [0, j * block) (exact for int16 signals)."""
    j = x.shape[-1] // block
    blocks = np.asarray(x[:, : j * block], dtype=np.float64).reshape(x.shape[0], j, block)  # (12, J, block)
    out = np.zeros((2, x.shape[0], j + 1))
    np.cumsum(blocks.sum(axis=-1), axis=-1, out=out[0, :, 1:])
    np.cumsum(np.einsum("cjt,cjt->cj", blocks, blocks), axis=-1, out=out[1, :, 1:])
    return out


def crop_moments(
    lead_sums: np.ndarray, rows: np.ndarray, crops: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-lead mean and std of ``crops[b, :, :lengths[b]]``, cut at ``starts`` from cache ``rows``.

    ``lead_sums`` (N, 2, 12, J + 1) holds the records' block prefix sums (``block_prefix_sums``); crops are
    (B, 12, c) in stored units, 0 < lengths <= c. The whole blocks inside a crop come from the stored sums (two
    gathers of (B, 2, 12)); only its first and last partial blocks (< SUM_BLOCK samples each) are summed here.
    Returns mean, std (B, 12, 1) float64.
    """
    ends = starts + lengths
    first = -(-starts // SUM_BLOCK)  # (B,) first block boundary at or after the start
    last = ends // SUM_BLOCK  # (B,) last block boundary at or before the end
    inside = first <= last  # the crop reaches a boundary; else it lies within one block: all of it is "head"
    head = np.where(inside, first * SUM_BLOCK - starts, lengths)  # (B,) samples before the first boundary
    tail = np.where(inside, ends - last * SUM_BLOCK, 0)  # (B,) samples after the last boundary
    first = np.minimum(first, last)  # (B,) = last where the crop lies within one block: no whole blocks
    whole = (
        lead_sums[rows, :, :, last] - lead_sums[rows, :, :, first]
    )  # (B, 2, 12) sums over the whole blocks
    k = min(SUM_BLOCK, crops.shape[-1])
    t = np.arange(k)
    head_x = np.asarray(crops[:, :, :k], dtype=np.float64) * (t < head[:, None])[:, None, :]  # (B, 12, k)
    if lengths.min() == lengths.max() >= k:  # the common batch (no padded record): the tail is one slice
        tail_x = np.asarray(crops[:, :, lengths[0] - k : lengths[0]], dtype=np.float64)  # (B, 12, k)
    else:
        tail_at = np.clip(lengths[:, None] - k + t, 0, None)  # (B, k) the last k real samples
        tail_x = np.take_along_axis(np.asarray(crops), tail_at[:, None, :], axis=-1).astype(np.float64)
    tail_x *= (t >= k - tail[:, None])[:, None, :]  # (B, 12, k) only the last ``tail`` of them
    s1 = whole[:, 0] + head_x.sum(-1) + tail_x.sum(-1)  # (B, 12)
    s2 = whole[:, 1] + np.einsum("bct,bct->bc", head_x, head_x) + np.einsum("bct,bct->bc", tail_x, tail_x)
    n = lengths[:, None].astype(np.float64)
    mean = s1 / n
    std = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
    return mean[..., None], std[..., None]


@dataclass
class EcgCache:
    """An opened cache directory (read-only memmaps)."""

    path: Path
    meta: dict[str, Any]
    signals: np.ndarray  # (N, 12, T) int16 or float16 memmap
    labels: np.ndarray  # (N, L) uint8
    lead_mask: np.ndarray  # (N, 12) bool
    table: pd.DataFrame
    lead_sums: np.ndarray  # (N, 2, 12, T // SUM_BLOCK + 1) float64 memmap (see ``block_prefix_sums``)

    @classmethod
    def open(cls, path: str | Path) -> EcgCache:
        path = Path(path)
        meta_path = path / "meta.json"
        if not meta_path.is_file():
            raise DatasetError(
                f"{path} is not a signal cache (no meta.json). Build one with `ecgllm data cache`."
            )
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version") != CACHE_FORMAT_VERSION:
            raise DatasetError(
                f"Cache {path} has format version {meta.get('format_version')}, this library reads "
                f"{CACHE_FORMAT_VERSION}. Rebuild it with `ecgllm data cache`."
            )
        try:
            signals = np.load(path / "signals.npy", mmap_mode="r", allow_pickle=False)
            lead_sums = np.load(path / "lead_sums.npy", mmap_mode="r", allow_pickle=False)
            labels = np.load(path / "labels.npy", allow_pickle=False)
            lead_mask = np.load(path / "lead_mask.npy", allow_pickle=False)
            table = pd.read_csv(path / "table.csv", keep_default_na=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(
                f"Cache {path} is incomplete or corrupt ({exc}); delete it and rebuild."
            ) from exc
        table["labels"] = [json.loads(s) for s in table["labels"]]
        if not (len(signals) == len(labels) == len(lead_mask) == len(table) == len(lead_sums)):
            raise DatasetError(f"Cache {path} is inconsistent (row counts differ); delete it and rebuild.")
        return cls(path, meta, signals, labels, lead_mask, table, lead_sums)

    def __len__(self) -> int:
        return int(self.signals.shape[0])

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers (spawn) get the path and re-open the memmap instead of a pickled copy of the array
        return {k: v for k, v in self.__dict__.items() if k not in ("signals", "lead_sums", "_row_of")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.signals = np.load(self.path / "signals.npy", mmap_mode="r", allow_pickle=False)
        self.lead_sums = np.load(self.path / "lead_sums.npy", mmap_mode="r", allow_pickle=False)

    @property
    def label_names(self) -> list[str]:
        return list(self.meta["label_names"])

    @property
    def sampling_rate(self) -> int:
        return int(self.meta["sampling_rate"])

    @property
    def num_samples(self) -> int:
        return int(self.signals.shape[-1])

    @property
    def scale(self) -> float:
        """Millivolts per stored unit."""
        return float(self.meta["scale"])

    def signal_mv(self, i: int) -> np.ndarray:
        """Row ``i`` as float32 millivolts (12, T)."""
        return np.asarray(self.signals[i], dtype=np.float32) * np.float32(self.scale)

    def rows_for_ecg_ids(self, ecg_ids: list[int] | np.ndarray) -> np.ndarray:
        """Cache rows of the given ecg_ids (e.g. an ECG-QA question's); one error listing all missing ids."""
        if not hasattr(self, "_row_of"):
            self._row_of = {int(e): r for r, e in enumerate(self.table["ecg_id"])}
        missing = sorted({int(e) for e in ecg_ids if int(e) not in self._row_of})
        if missing:
            raise DatasetError(
                f"{len(missing)} ecg_id(s) are not in the cache {self.path.name}: {missing[:20]}"
                " (records without a label of the task are not cached; build with drop_unlabeled=False)."
            )
        return np.asarray([self._row_of[int(e)] for e in ecg_ids], dtype=np.int64)

    def split_indices(self, split: str) -> np.ndarray:
        """Rows of the official split (``train`` folds 1-8, ``val`` 9, ``test`` 10)."""
        if split not in SPLIT_FOLDS:
            raise ConfigError(f"Unknown split {split!r}; choose one of {', '.join(SPLIT_FOLDS)}.")
        return np.flatnonzero(self.table["strat_fold"].isin(SPLIT_FOLDS[split]).to_numpy())


def build_cache(
    dataset: PtbXl,
    cache_root: str | Path | None = None,
    *,
    seconds: float = 10.0,
    bandpass_hz: Band | None = None,
    dtype: str = "auto",
    on_error: str = "skip",
    progress: bool = True,
) -> EcgCache:
    """Convert ``dataset`` into a memmapped cache under ``cache_root`` (reused when it already exists).

    Args:
        dataset: the dataset (its settings are part of the key).
        cache_root: folder holding caches (default ``default_cache_root()``); must be outside the dataset.
        seconds: stored length per record; longer records keep their first ``seconds``, shorter are zero-padded
            (``valid_length`` in the table says how many samples are real).
        bandpass_hz: optional (low, high) band-pass applied before storing (forces float16).
        dtype: ``auto`` (int16 when lossless, else float16), ``int16`` (error unless lossless) or ``float16``.
        on_error: ``skip`` (unreadable records are left out and listed in meta.json) or ``raise``.
    """
    _check_build_args(dtype, on_error, seconds)
    cache_root = Path(cache_root) if cache_root is not None else default_cache_root()
    _check_outside(cache_root, dataset.root)
    if len(dataset) == 0:
        raise DatasetError(f"{dataset!r} has no records to cache.")
    num_samples = int(round(seconds * dataset.sampling_rate))
    settings = cache_settings(dataset, num_samples, bandpass_hz, dtype)
    key = cache_key(settings)
    final = cache_root / f"ptbxl-{dataset.task}-{dataset.sampling_rate}hz-{num_samples}-{key}"
    if (final / "meta.json").is_file():
        return EcgCache.open(final)
    storage = _choose_storage(dataset, bandpass_hz, dtype, progress)
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = cache_root / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        reader = _RecordReader(dataset, storage, num_samples, bandpass_hz)
        written = _write_signals(reader, tmp, on_error, progress, desc=f"caching {final.name}")
        _write_tables(tmp, dataset, written)
        meta = {
            "format_version": CACHE_FORMAT_VERSION,
            "key": key,
            "settings": settings,
            "label_names": dataset.label_names,
            "label_task": dataset.task,
            "sampling_rate": dataset.sampling_rate,
            "num_samples": num_samples,
            "num_records": len(written.kept),
            "dtype": np.dtype(storage.dtype).name,
            "scale": 1.0 / storage.gain if storage.gain is not None else 1.0,
            "lossless": storage.gain is not None,
            "clipped_samples": written.clipped,
            "skipped": written.skipped,
        }
        atomic_write_json(tmp / "meta.json", meta)
        _publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return EcgCache.open(final)


def _check_build_args(dtype: str, on_error: str, seconds: float) -> None:
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {DTYPES}, got {dtype!r}.")
    if on_error not in ("skip", "raise"):
        raise ConfigError(f"on_error must be 'skip' or 'raise', got {on_error!r}.")
    if seconds <= 0:
        raise ConfigError(f"seconds must be positive, got {seconds}.")


@dataclass(frozen=True)
class _Storage:
    """How the samples are stored: int16 at the records' one ADC gain (lossless) or float16 mV."""

    dtype: type
    gain: float | None  # stored units per mV (int16), None for float16 mV


def _choose_storage(dataset: PtbXl, bandpass_hz: Band | None, dtype: str, progress: bool) -> _Storage:
    gain = None if (bandpass_hz or dtype == "float16") else _common_int16_gain(dataset, progress)
    if dtype == "int16" and gain is None:
        raise ConfigError(
            "dtype='int16' needs a lossless source (16-bit records with one common gain, no filter); "
            "use dtype='auto' or 'float16'."
        )
    return _Storage(np.int16, gain) if gain is not None else _Storage(np.float16, None)


@dataclass
class _RecordReader:
    """Reads record ``i`` of the dataset as the cache stores it."""

    dataset: PtbXl
    storage: _Storage
    num_samples: int
    bandpass_hz: Band | None

    def __call__(self, i: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        """-> stored (12, num_samples) zero-padded, lead mask (12,) bool (flat leads off), real samples, samples
        clipped to int16. Raises ``EcgInputError`` for an unreadable record."""
        ds, gain = self.dataset, self.storage.gain
        ecg = ds.read(i)
        x = ecg.signal  # (12, T) float32 mV
        if ecg.fs != ds.sampling_rate:
            x = resample(x, ecg.fs, ds.sampling_rate)
        if self.bandpass_hz:
            x = bandpass(x, ds.sampling_rate, low=self.bandpass_hz[0], high=self.bandpass_hz[1])
        t = min(x.shape[-1], self.num_samples)
        out: np.ndarray = np.zeros((12, self.num_samples), dtype=self.storage.dtype)  # (12, num_samples)
        clipped = 0
        if gain is not None:
            q = np.rint(x[:, :t] * gain)
            clipped = int(np.count_nonzero((q < -32768) | (q > 32767)))
            out[:, :t] = np.clip(q, -32768, 32767)
        else:
            out[:, :t] = x[:, :t]
        mask = np.asarray(ecg.lead_mask, dtype=bool).copy()
        for lead in ecg.meta.get("flat_leads", []) or []:
            if lead in CANONICAL_LEADS:
                mask[CANONICAL_LEADS.index(lead)] = False
        return out, mask, t, clipped


@dataclass
class _Written:
    """What ``_write_signals`` wrote: dataset rows kept (in cache order), skipped records and per-row arrays."""

    kept: list[int]
    skipped: list[dict[str, Any]]
    clipped: int
    lead_mask: np.ndarray  # (len(kept), 12) bool
    valid_length: np.ndarray  # (len(kept),) int64


def _write_signals(read: _RecordReader, tmp: Path, on_error: str, progress: bool, desc: str) -> _Written:
    """Every readable record into ``signals.npy`` and its prefix sums into ``lead_sums.npy`` (skipped rows are
    compacted away)."""
    ds, n, t = read.dataset, len(read.dataset), read.num_samples
    signals = np.lib.format.open_memmap(
        tmp / "signals.npy", mode="w+", dtype=read.storage.dtype, shape=(n, 12, t)
    )
    sums = np.lib.format.open_memmap(
        tmp / "lead_sums.npy", mode="w+", dtype=np.float64, shape=(n, 2, 12, t // SUM_BLOCK + 1)
    )
    lead_mask, valid_length = np.zeros((n, 12), dtype=bool), np.zeros(n, dtype=np.int64)
    written = _Written([], [], 0, lead_mask, valid_length)
    for i in tqdm(range(n), desc=desc, unit="rec", disable=not progress):
        try:
            x, mask, valid, clipped = read(i)
        except EcgInputError as exc:
            if on_error == "raise":
                raise DatasetError(f"Record {ds.record_path(i)} cannot be read: {exc}") from exc
            written.skipped.append({"ecg_id": int(ds.table["ecg_id"].iloc[i]), "error": str(exc)})
            continue
        j = len(written.kept)
        signals[j], sums[j] = x, block_prefix_sums(x)
        lead_mask[j], valid_length[j] = mask, valid
        written.clipped += clipped
        written.kept.append(i)
    signals.flush()
    sums.flush()
    del signals, sums
    k = len(written.kept)
    if not k:
        raise DatasetError(f"No record of {ds!r} could be read; first error: {written.skipped[0]['error']}")
    if k < n:  # compact: rewrite without the skipped rows
        for name in ("signals.npy", "lead_sums.npy"):
            _keep_first_rows(tmp / name, k)
    written.lead_mask, written.valid_length = lead_mask[:k], valid_length[:k]
    return written


def _keep_first_rows(path: Path, k: int) -> None:
    """Rewrite the .npy at ``path`` with only its first ``k`` rows."""
    old = np.load(path, mmap_mode="r")
    new = np.lib.format.open_memmap(
        path.with_suffix(".tmp.npy"), mode="w+", dtype=old.dtype, shape=(k, *old.shape[1:])
    )
    new[:] = old[:k]
    new.flush()
    del new, old
    os.replace(path.with_suffix(".tmp.npy"), path)


def _write_tables(tmp: Path, dataset: PtbXl, written: _Written) -> None:
    """labels.npy, lead_mask.npy and table.csv of the kept rows."""
    rows = np.asarray(written.kept)
    np.save(tmp / "labels.npy", dataset.multi_hot()[rows], allow_pickle=False)
    np.save(tmp / "lead_mask.npy", written.lead_mask, allow_pickle=False)
    table = dataset.table.iloc[rows].drop(columns=["scp_codes"], errors="ignore").reset_index(drop=True)
    table["labels"] = [json.dumps(x) for x in table["labels"]]
    table["valid_length"] = written.valid_length
    table.to_csv(tmp / "table.csv", index=False)


def _publish(tmp: Path, final: Path) -> None:
    """Rename the complete temp folder to its final name (another process may have finished it first)."""
    try:
        os.rename(tmp, final)
    except OSError:
        if (final / "meta.json").is_file():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            raise


class CachedEcgDataset(torch.utils.data.Dataset):
    """Training view of a cache: crops read straight from the memmap, z-scored per lead like inference.

    Args:
        cache: the opened cache.
        indices: cache rows to use (default: all).
        crop_samples: crop length (default: the full stored length).
        random_crop: random crop start per item (seeded; call ``set_epoch`` to draw new crops) or the centre.
        seed: seed of the random crops.
        normalization: per-lead normalisation of each crop, ``zscore`` or ``center`` (``encoder.preprocess``).
        transform: optional ``(crops (B, 12, c) float32, rng) -> (B, 12, c)`` applied to each normalised batch
            (e.g. ``encoder.augment.augment_crops``); ``rng`` is seeded by (seed, epoch, the batch's rows), so it
            runs in the loader workers and replays whatever the worker count.

    Items: ``{"ecg": float32 (12, crop_samples), "labels": float32 (L,), "index": int (cache row)}``.
    """

    def __init__(
        self,
        cache: EcgCache,
        indices: np.ndarray | list[int] | None = None,
        crop_samples: int | None = None,
        random_crop: bool = False,
        seed: int = 0,
        normalization: str = "zscore",
        transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    ) -> None:
        self.cache = cache
        self.transform = transform
        self.normalization = check_normalization(normalization)
        self.indices = np.arange(len(cache)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.crop_samples = int(crop_samples or cache.num_samples)
        if not 0 < self.crop_samples <= cache.num_samples:
            raise ConfigError(f"crop_samples must be in 1..{cache.num_samples}, got {crop_samples}.")
        self.random_crop = random_crop
        self.seed = seed
        valid = cache.table["valid_length"].to_numpy()[self.indices]  # (n,)
        self._valid = np.minimum(valid, self.crop_samples)  # real samples inside each crop
        self._max_start = np.maximum(valid - self.crop_samples, 0)  # (n,)
        self._labels = torch.from_numpy(cache.labels[self.indices].astype(np.float32))  # (n, L)
        # (N, 12, T - crop + 1, crop) view of the memmap (reads nothing): window s of row r = crop at s
        self._windows = np.lib.stride_tricks.sliding_window_view(cache.signals, self.crop_samples, axis=-1)
        self.set_epoch(0)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_windows"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._windows = np.lib.stride_tricks.sliding_window_view(
            self.cache.signals, self.crop_samples, axis=-1
        )

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's crop starts (deterministic in (seed, epoch), independent of workers)."""
        self._epoch = int(epoch)
        if self.random_crop:
            rng = np.random.default_rng((self.seed, epoch))
            self._starts = (rng.random(len(self.indices)) * (self._max_start + 1)).astype(np.int64)
        else:
            self._starts = self._max_start // 2

    def __len__(self) -> int:
        return len(self.indices)

    def _normalise(self, crops: np.ndarray, ks: np.ndarray) -> np.ndarray:
        """Per-lead normalisation of crops in stored units (B, 12, c) int16/float16 -> (B, 12, c) float32.

        Each lead's mean and std over the crop's real samples come from the cache's prefix sums
        (``crop_moments``), so the crop itself is only converted, centred and scaled (three vectorised passes); ``eps`` and the
        ``center`` unit are converted to stored units. Equal to ``normalize_leads`` on the mV crop; padding stays 0.
        """
        rows, lengths = self.indices[ks], self._valid[ks]
        mean, std = crop_moments(self.cache.lead_sums, rows, crops, self._starts[ks], lengths)  # (B, 12, 1)
        mask = self.cache.lead_mask[rows]  # (B, 12)
        unit = self.cache.scale  # mV per stored unit
        scale = lead_scales(std, None if mask.all() else mask, self.normalization, 1e-6 / unit, unit)
        # torch's int16 -> float32 conversion and in-place ops are vectorised better than numpy's (same values)
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(torch.float32)  # (B, 12, c)
        x.sub_(torch.from_numpy(mean.astype(np.float32))).mul_(
            torch.from_numpy(np.asarray(scale, np.float32))
        )
        out = x.numpy()
        for b in np.flatnonzero(lengths < self.crop_samples):  # padded records: keep the padding at 0
            out[b, :, lengths[b] :] = 0.0
        return out

    def batch(self, ks: list[int] | np.ndarray) -> dict[str, torch.Tensor]:
        """Items ``ks`` as one batch: ``{"ecg": (B, 12, crop), "labels": (B, L), "index": (B,)}``.

        One memmap gather and one vectorised normalisation for the whole batch.
        """
        ks = np.asarray(ks, dtype=np.int64)
        rows = self.indices[ks]
        starts = self._starts[ks]
        c = self.crop_samples
        if np.all(starts == starts[0]):
            crops = self.cache.signals[rows, :, starts[0] : starts[0] + c]  # (B, 12, c)
        else:
            crops = self._windows[rows, :, starts]  # (B, 12, c): one gather of B windows from the memmap
        ecg = self._normalise(crops, ks)  # (B, 12, c) float32
        if self.transform is not None:
            ecg = self.transform(ecg, np.random.default_rng([self.seed, self._epoch, *rows.tolist()]))
        return {
            "ecg": torch.from_numpy(ecg),  # (B, 12, c) float32
            "labels": self._labels[torch.from_numpy(ks)],  # (B, L) float32
            "index": torch.from_numpy(rows),  # (B,) int64 cache rows
        }

    def __getitem__(self, k: int | list[int] | np.ndarray) -> dict[str, Any]:
        """One item (``int``), or a whole batch when given a list of positions (see ``batch_loader``)."""
        if isinstance(k, (list, tuple, np.ndarray, torch.Tensor)):
            return self.batch(np.asarray(k))
        return self.__getitems__([k])[0]

    def __getitems__(self, ks: list[int]) -> list[dict[str, Any]]:
        """Batched fetch used by a plain ``DataLoader(dataset, batch_size=...)``: per-item dicts of one batch."""
        b = self.batch(ks)
        return [
            {"ecg": b["ecg"][j], "labels": b["labels"][j], "index": int(b["index"][j])}
            for j in range(len(ks))
        ]


def batch_loader(
    dataset: CachedEcgDataset,
    batch_size: int,
    shuffle: bool = True,
    drop_last: bool = False,
    seed: int = 0,
    num_workers: int = 0,
) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` that fetches whole batches (no per-item collate): the fastest way to read the cache.

    Yields ``{"ecg": (B, 12, crop) float32, "labels": (B, L) float32, "index": (B,) int64}``; the shuffling
    order is seeded by ``seed`` (the crops by the dataset's ``seed`` and ``set_epoch``).
    """
    gen = torch.Generator().manual_seed(seed)
    sampler = (
        torch.utils.data.RandomSampler(dataset, generator=gen)
        if shuffle
        else torch.utils.data.SequentialSampler(dataset)
    )
    batches = torch.utils.data.BatchSampler(sampler, batch_size=batch_size, drop_last=drop_last)
    return torch.utils.data.DataLoader(dataset, sampler=batches, batch_size=None, num_workers=num_workers)


@dataclass
class BuildCacheConfig:
    """Build (or reuse) the memory-mapped signal cache of a PTB-XL-format dataset."""

    ptbxl: str = ""
    """Root of a PTB-XL-format dataset (ptbxl_database.csv, records100/, records500/), e.g. a synthetic cohort."""
    cache_dir: str = ""
    """Folder for caches (must be outside the dataset); empty = $ECGLLM_CACHE/signals (~/.cache/ecgllm/signals)."""
    task: str = "superdiagnostic"
    """Label task: all, diagnostic, subdiagnostic, superdiagnostic, form or rhythm."""
    sampling_rate: int = 100
    """100 (records100/) or 500 (records500/)."""
    seconds: float = 10.0
    """Stored length per record in seconds (longer records keep the start, shorter ones are zero-padded)."""
    min_label_count: int = 1
    """Keep labels with at least this many records (0 = the task's full vocabulary)."""
    drop_unlabeled: bool = True
    """Leave out records without a label of the task (as the benchmark does); False keeps every record."""
    text_style: str = "knowledge"
    """Text per record: knowledge (expanded SCP descriptions) or codes."""
    include_report: bool = False
    """Append the free-text report to each record's text."""
    bandpass_low: float | None = None
    """Band-pass low cut-off in Hz applied before caching (None = no filter; filtering stores float16)."""
    bandpass_high: float | None = None
    """Band-pass high cut-off in Hz (None = no low-pass)."""
    dtype: str = "auto"
    """auto (int16 when lossless, else float16), int16 or float16."""
    on_error: str = "skip"
    """What to do with an unreadable record: skip (listed in meta.json) or raise."""


def run_build_cache(cfg: BuildCacheConfig) -> Path:
    """CLI runner of ``ecgllm data cache``: builds or reuses the cache, prints and returns its directory."""
    if not cfg.ptbxl:
        raise ConfigError("Pass --ptbxl PATH (a PTB-XL-format dataset, e.g. from `ecgllm data synth`).")
    ds = PtbXl.from_config(cfg.ptbxl, cfg)
    band = None
    if cfg.bandpass_low is not None or cfg.bandpass_high is not None:
        band = (cfg.bandpass_low, cfg.bandpass_high)
    cache = build_cache(
        ds,
        cfg.cache_dir or None,
        seconds=cfg.seconds,
        bandpass_hz=band,
        dtype=cfg.dtype,
        on_error=cfg.on_error,
    )
    if not (cache.path / "config.yaml").exists():
        save_resolved_config(cfg, cache.path)
    m = cache.meta
    print(
        f"cache: {cache.path}\n  records {m['num_records']} x 12 x {m['num_samples']} {m['dtype']} "
        f"({'lossless' if m['lossless'] else 'float16 mV'}), {len(m['label_names'])} labels, "
        f"{m['sampling_rate']} Hz, skipped {len(m['skipped'])}"
    )
    return cache.path
