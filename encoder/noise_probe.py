"""Noise probe: a stage-1 noise head on paired synthetic records, each rendered with and without one noise type.

The synthetic test fold cannot score every noise type: its label rows follow the real PTB-XL table, which flags
electrode problems on about 0.14 % of ECGs, so fold 10 of the quickstart cohort holds one such record. The probe
renders ``pairs`` records per noise type from real label rows (codes, axis, stage, extra beats and the row's other
noise), twice: once with the type on the leads of a real row that carries it and once without it. The twins share
labels, beat shape, axis and rhythm (the same random state up to the noise); their background noise is drawn
afresh. A record's score is the head's highest lead probability for that type (as in the fold-10 report),
so the AUROC answers "does the head see this noise on an ECG that otherwise looks the same". Signals take the
cohort's path to the encoder (100 Hz int16 counts at 1000/mV, then ``preprocess.model_input``).

    python benchmarks/noise_probe.py --encoder runs/quickstart/stage1 --out_dir runs/noise_probe
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import resample_poly
from tqdm import tqdm

from encoder.config_io import atomic_write_json, atomic_write_text, check_config
from encoder.datasets.ptbxl_attributes import parse_infarction_stage, parse_lead_list
from encoder.ecgqa.attributes import LEADS, NOISE_COLUMNS, NOISE_TYPES, LeadMask
from encoder.errors import ConfigError
from encoder.synth import real_labels
from encoder.synth.record import RecordExtras, synthesize_record

RENDER_FS = 500.0
"""The generator's rate; records are then brought to 100 Hz as the cohort's ``records100`` are."""


@dataclass
class NoiseProbeConfig:
    """Settings of the noise probe."""

    encoder: str = ""
    """Stage-1 run folder (holding ``encoder/``) or an encoder folder (save_pretrained) with a ``noise`` aux head."""
    out_dir: str = "runs/noise_probe"
    """Where noise_probe.json and noise_probe.md go."""
    pairs: int = field(default=150, metadata={"ge": 2})
    """Record pairs (with / without the noise) per noise type."""
    seed: int = 0
    """Seed of the label rows, the renders and the bootstrap."""
    noise_scale: float = field(default=1.0, metadata={"ge": 0.0})
    """The generator's background noise scale (the cohort's ``noise_scale``)."""
    n_boot: int = field(default=500, metadata={"ge": 10})
    """Bootstrap resamples of every CI."""

    def __post_init__(self) -> None:
        check_config(self)


@dataclass(frozen=True)
class ProbePair:
    """One label row rendered twice: ``with_noise`` carries ``noise_type`` on ``leads``, ``without`` does not."""

    noise_type: str
    leads: LeadMask
    with_noise: np.ndarray
    """(12, T) mV at 100 Hz."""
    without: np.ndarray
    """(12, T) mV at 100 Hz."""


def real_masks(noise_type: str) -> list[LeadMask]:
    """The lead masks of the shipped real label rows that carry ``noise_type`` (ECG-QA's lead-list parser)."""
    masks = [parse_lead_list(c)[0] for c in real_labels.real_cells(NOISE_COLUMNS[noise_type])]
    return [m for m in masks if any(m)]


def _as_recorded(signal: np.ndarray) -> np.ndarray:
    """(12, T) mV at 500 Hz -> what a reader gets from the cohort's 100 Hz WFDB record, (12, T / 5) mV."""
    from encoder.datasets.synthetic import digital_counts

    return digital_counts(resample_poly(signal, 1, 5, axis=1)).astype(np.float32) / 1000.0


def render_pair(
    noise_type: str, masks: list[LeadMask], seed: int, index: int, noise_scale: float
) -> ProbePair:
    """Pair ``index`` of ``noise_type``: a real label row, its other noise kept, ``noise_type`` on a real mask."""
    rng = np.random.default_rng([seed, NOISE_TYPES.index(noise_type), index])
    row = real_labels.sample_label_row(rng)
    background = {
        t: parse_lead_list(row.noise[col])[0] for t, col in NOISE_COLUMNS.items() if t != noise_type
    }
    background = {t: m for t, m in background.items() if any(m)}
    leads = masks[int(rng.integers(len(masks)))]
    codes = set(row.scp_codes) | real_labels.extra_beat_codes(row.extra_beats)
    if codes & {"AFIB", "AFLT"}:
        codes -= {"PAC"}
    stage = parse_infarction_stage(row.infarction_stadium1, row.infarction_stadium2)[0]
    axis = real_labels.axis_target(row.heart_axis, rng)
    age = float(np.clip(round(rng.normal(61, 17)), 18, 95))
    shape_seed = int(rng.integers(2**62))
    render_seed = int(rng.integers(2**62))

    def render(noise: dict[str, LeadMask]) -> np.ndarray:
        extras = RecordExtras(noise=noise, axis_deg=axis, infarction_stage=stage)
        rec = synthesize_record(
            frozenset(codes), np.random.default_rng(render_seed), age=age, fs=RENDER_FS,
            noise_scale=noise_scale, extras=extras, shape_seed=shape_seed,
        )  # fmt: skip
        return _as_recorded(rec.signal)

    return ProbePair(noise_type, leads, render(background | {noise_type: leads}), render(background))


def record_scores(noise_probs: np.ndarray, noise_type: str) -> np.ndarray:
    """(N, 5 * 12) noise-head probabilities -> (N,) the highest lead probability of ``noise_type``."""
    i, n = NOISE_TYPES.index(noise_type), len(LEADS)
    return noise_probs[:, i * n : (i + 1) * n].max(axis=1)


def record_flags(noise_probs: np.ndarray, thresholds: list[float], noise_type: str) -> np.ndarray:
    """(N,) whether any lead's probability of ``noise_type`` reaches its tuned threshold."""
    i, n = NOISE_TYPES.index(noise_type), len(LEADS)
    cut = np.asarray(thresholds[i * n : (i + 1) * n])
    return np.asarray((noise_probs[:, i * n : (i + 1) * n] >= cut).any(axis=1))


def _noise_probs(model: Any, records: np.ndarray) -> np.ndarray:
    """Records (N, 12, T) mV at 100 Hz -> the noise head's probabilities (N, 60)."""
    from encoder.multitask import head_outputs
    from encoder.preprocess import model_input
    from encoder.record import Ecg

    n = int(round(model.config.sampling_rate * model.config.input_seconds))
    ones = np.ones(12, dtype=bool)
    rate, norm = model.config.sampling_rate, model.config.input_normalization
    x = np.stack([model_input(Ecg(r, 100.0, ones), rate, n, normalization=norm) for r in records])
    return head_outputs(model, x)["noise"]


def score_pairs(model: Any, pairs: list[ProbePair], n_boot: int, seed: int) -> dict[str, Any]:
    """Record-level AUROC (bootstrap CI) and, at the encoder's tuned thresholds, the share of noisy records
    flagged (sensitivity) and of clean twins flagged (false-positive rate) for one noise type's pairs."""
    from encoder.sim_to_real import bootstrap_auroc

    noise_type = pairs[0].noise_type
    records = np.stack([p.with_noise for p in pairs] + [p.without for p in pairs])
    y = np.r_[np.ones(len(pairs)), np.zeros(len(pairs))]
    probs = _noise_probs(model, records)
    scores = record_scores(probs, noise_type)
    boot = bootstrap_auroc(y[:, None], scores[:, None], [noise_type], n_boot=n_boot, seed=seed)
    auc = boot["labels"][noise_type]
    out: dict[str, Any] = {"pairs": len(pairs), "auroc": auc["auroc"], "ci": auc["ci"]}
    thresholds = (model.config.aux_thresholds or {}).get("noise")
    if thresholds:
        flags = record_flags(probs, thresholds, noise_type)
        out["sensitivity"] = float(flags[y == 1].mean())
        out["false_positive_rate"] = float(flags[y == 0].mean())
    return out


def run_noise_probe(cfg: NoiseProbeConfig) -> dict[str, Any]:
    """Render the pairs, score them, write noise_probe.json / noise_probe.md and return the results."""
    from encoder.modeling import EcgEncoder
    from encoder.sim_to_real import encoder_dir_of

    enc_dir, _ = encoder_dir_of(cfg.encoder)
    model = EcgEncoder.from_pretrained(enc_dir).eval()
    if "noise" not in (model.config.aux_tasks or []):
        raise ConfigError(
            f"The encoder in {enc_dir} has no noise head (aux_tasks {model.config.aux_tasks}); "
            "train stage 1 with the 'noise' aux task."
        )
    results: dict[str, Any] = {"encoder": str(enc_dir), "pairs": cfg.pairs, "seed": cfg.seed, "types": {}}
    for noise_type in NOISE_TYPES:
        masks = real_masks(noise_type)
        pairs = [
            render_pair(noise_type, masks, cfg.seed, i, cfg.noise_scale)
            for i in tqdm(range(cfg.pairs), desc=noise_type, unit="pair")
        ]
        results["types"][noise_type] = score_pairs(model, pairs, cfg.n_boot, cfg.seed) | {
            "real_masks": len(masks)
        }
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "noise_probe.json", results)
    atomic_write_text(out / "noise_probe.md", report_markdown(results))
    return results


def report_markdown(results: dict[str, Any]) -> str:
    """The probe's table: per noise type, AUROC [CI] and the tuned-threshold sensitivity / false-positive rate."""

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{100 * v:.1f} %"

    lines = [
        f"Noise probe: {results['pairs']} record pairs per noise type (with / without it; same labels, beat "
        f"and rhythm), seed {results['seed']}; encoder `{results['encoder']}`.",
        "",
        "| noise type | real lead lists drawn from | record AUROC [95 % CI] | flagged, noisy | flagged, clean twin |",
        "|---|---|---|---|---|",
    ]
    for name, r in results["types"].items():
        ci = "" if r["ci"] is None else f" [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"
        auc = "–" if r["auroc"] is None else f"{r['auroc']:.3f}{ci}"
        lines.append(
            f"| {name} | {r['real_masks']} | {auc} | {pct(r.get('sensitivity'))} | "
            f"{pct(r.get('false_positive_rate'))} |"
        )
    return "\n".join(lines) + "\n"


def _run_and_print(cfg: NoiseProbeConfig) -> None:
    print(report_markdown(run_noise_probe(cfg)))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``benchmarks/noise_probe.py``: options from ``NoiseProbeConfig``, errors as one line."""
    from encoder.cli_support import run_command

    return run_command(NoiseProbeConfig, _run_and_print, argv, prog="noise_probe.py")
