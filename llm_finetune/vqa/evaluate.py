"""ECG-QA evaluation: generate -> normalise -> score, for the model and its baselines.

Python API::

    from llm_finetune.inference import EcgChat
    from llm_finetune.vqa import evaluate_vqa
    results = evaluate_vqa(chat, records, answer_options=options, ecg_arrays=arrays)

CLI: ``ecgllm eval-vqa --model_dir runs/stage2 --ecgqa_root data/ecgqa --out_dir runs/eval`` (see
:class:`EvalVqaConfig`), which loads everything, runs :func:`evaluate_vqa` and writes the report.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from encoder.config_io import save_resolved_config
from encoder.errors import ConfigError, DatasetError
from encoder.labels import scp_code_aliases
from llm_finetune.vqa.baselines import AuxHeadAnswerer, agreement, fit_majority, majority_answer
from llm_finetune.vqa.candidates import Candidates, decoding_options
from llm_finetune.vqa.normalize import AnswerNormalizer
from llm_finetune.vqa.report import type_breakdown
from llm_finetune.vqa.scoring import QUESTION_TYPES, score_item, summarize

log = logging.getLogger(__name__)

BASELINES: tuple[str, ...] = ("majority", "ecg_removed", "aux_head")
DECODING: tuple[str, ...] = ("free", "constrained")


@dataclass
class EvalVqaConfig:
    """Evaluate a stage-2 model on an ECG-QA-format dataset (real ECG-QA or the synthetic cohort's)."""

    model_dir: Path
    """Stage-2 model directory (``EcgChat.save_pretrained`` output)."""
    ecgqa_root: Path
    """ECG-QA root: holds ``<source>/<variant>/<split>/*.json`` (real layout; synthetic cohort: ``<cohort>/ecgqa``)."""
    out_dir: Path = Path("runs/eval_vqa")
    """Where the report (JSON, markdown, PNGs, predictions.jsonl, config.yaml) is written."""
    signals_root: Path | None = None
    """Signal dataset root (PTB-XL folder, or MIMIC-IV-ECG folder with record_list.csv); default: the parent of ``ecgqa_root`` (the synthetic cohort's layout)."""
    source: str = "ptbxl"
    """ECG-QA version: ``ptbxl`` or ``mimic-iv-ecg``."""
    variant: str = "template"
    """Question wording: ``template`` or ``paraphrased``."""
    reword: Literal["none", "heldout"] = "none"
    """``heldout``: ask each question in a wording of the held-out paraphrase set (``llm_finetune.vqa.paraphrase``;
    never trained on), the synthetic cohort's stand-in for ECG-QA's paraphrased version. The same questions as with
    ``none`` (same sample), so the two reports compare wordings; a question not in its template's wording keeps it."""
    split: str = "test"
    """Split to evaluate: ``train``, ``valid`` or ``test``."""
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    """Baselines to run beside the model: any of ``majority``, ``ecg_removed``, ``aux_head``."""
    decoding: list[str] = field(default_factory=lambda: ["free"])
    """Decoding modes of the model: ``free`` (greedy free text, then normalised) and/or ``constrained`` (to the template's answer options)."""
    majority_fit_split: str = "train"
    """Split whose answers fit the majority baseline; falls back to the evaluated split (flagged) if absent."""
    batch_size: int = 8
    """Questions per generation batch."""
    max_new_tokens: int = 16
    """Generation budget per answer."""
    question_types: list[str] | None = None
    """Evaluate only these question types, e.g. ``[single-verify, single-choose]`` (None: all seven)."""
    limit: int | None = None
    """Evaluate only the first N questions (file order)."""
    sample: int | None = None
    """Evaluate N randomly drawn questions (seeded); the ids are written to ``sample_file`` for reruns."""
    sample_file: Path | None = None
    """Sampled-id JSON: read if it exists (same questions again), written by ``--sample`` otherwise; default ``<out_dir>/sample_ids.json`` when sampling."""
    seed: int = 0
    """Seed for sampling, bootstrap and torch (generation is greedy)."""
    device: str | None = None
    """Torch device of the model (``cpu``, ``cuda``, ``cuda:1``); default: the model's own choice."""
    llm: str | None = None
    """Where the base LLM lives, if not where the model directory says (a local HF folder or ``packaged:...``)."""
    n_boot: int = 1000
    """Bootstrap resamples for the 95 % CIs."""
    describe: int = field(default=0, metadata={"ge": 0})
    """Also ask for a description of this many of the evaluated questions' ECGs (seeded; a held-out "describe"
    wording) and score the labels each one names against the record's SCP codes, beside the aux head's own F1
    (``llm_finetune.vqa.describe``; needs a PTB-XL-format signals folder); 0 = none."""
    leakage_run_dirs: list[Path] = field(default_factory=list)
    """Stage-1 run directories searched for ``train_ecg_ids.json`` (the stage-2 run's config.yaml already names its encoder)."""
    allow_leakage: bool = False
    """Report even when recorded training ids (or patients) overlap the evaluated ECGs; else LeakageError."""


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield list(range(start, min(n, start + size)))


def _generate(
    chat,
    records: Sequence[dict],
    ecgs: Callable[[dict], list[np.ndarray]],
    options: Sequence[Sequence[str] | Candidates],
    *,
    use_ecg: bool,
    constrained: bool,
    batch_size: int,
    max_new_tokens: int,
    desc: str,
) -> tuple[list[str], float, float]:
    """Raw texts for ``records`` (in their order), seconds spent in ``generate_batch``, and wall seconds incl.
    reading ECGs. Questions are batched in order of (ECG count, question length), so the prompts of a batch have
    similar lengths and little of each padded batch is padding."""
    texts: list[str] = [""] * len(records)
    spent = 0.0
    start = time.perf_counter()
    order = sorted(
        range(len(records)),
        key=lambda i: (len(records[i].get("ecg_id") or ()), len(str(records[i]["question"]))),
    )
    for positions in tqdm(list(_batches(len(records), batch_size)), desc=desc, unit="batch"):
        idx = [order[p] for p in positions]
        ecg_batches = [ecgs(records[i]) for i in idx]
        t0 = time.perf_counter()
        out = chat.generate_batch(
            ecg_batches,
            [str(records[i]["question"]) for i in idx],
            use_ecg=use_ecg,
            max_new_tokens=max_new_tokens,
            allowed_answers=[options[i] for i in idx] if constrained else None,
        )
        spent += time.perf_counter() - t0
        if len(out) != len(idx):
            raise RuntimeError(f"generate_batch returned {len(out)} answers for {len(idx)} questions.")
        for i, text in zip(idx, out, strict=True):
            texts[i] = text
    return texts, spent, time.perf_counter() - start


def _aux_answers(chat, records, ecgs, options, batch_size: int) -> list[list[str] | None]:
    """The aux-head answer of each question (``None``: abstained), from the predictions of each of its ECGs."""
    cfg = chat.encoder_config
    answerer = AuxHeadAnswerer(list(chat.label_names), getattr(cfg, "label_thresholds", None))
    aux_attributes = getattr(chat, "aux_attributes", None)  # decoded multi-task head (encoders that have one)
    out: list[list[str] | None] = []
    for idx in _batches(len(records), batch_size):
        per_record = [ecgs(records[i]) for i in idx]  # each: one array (12, T) per ECG of the question
        arrays = np.stack([a for arrs in per_record for a in arrs])  # (m, 12, T)
        p = np.asarray(chat.aux_probabilities(arrays))  # (m, L)
        attrs = (aux_attributes(arrays) if aux_attributes is not None else None) or [None] * len(arrays)
        start = 0
        for i, arrs in zip(idx, per_record, strict=True):
            rows = slice(start, start + len(arrs))
            out.append(answerer.answer_all(records[i], options[i], p[rows], list(attrs[rows])))
            start += len(arrs)
    return out


class _Scoreboard:
    """Per-system summaries, normalisation stats, throughput and the per-question rows of one evaluation."""

    def __init__(self, records: list[dict], answer_options: dict[int, list[str]], n_boot: int, seed: int):
        self.records = records
        self.n_boot, self.seed = n_boot, seed
        aliases = scp_code_aliases()
        self.normalizers = {
            tid: AnswerNormalizer(opts, code_aliases=aliases) for tid, opts in answer_options.items()
        }
        self.rows = [
            {
                k: r.get(k)
                for k in ("sample_id", "template_id", "question_type", "attribute_type", "question", "ecg_id")
            }
            | {"gold": list(r["answer"])}
            for r in records
        ]
        self.systems: dict[str, dict] = {}
        self.norm_stats: dict[str, dict] = {}
        self.throughput: dict[str, dict] = {}
        self.answers_of: dict[str, list] = {}
        self.agreement: dict = {}

    def add_system(self, name: str, preds: list, raw: list[str] | None = None) -> None:
        """Score one system's answers (None: not answered) and add them to every row."""
        items = [
            score_item(r, p or [], answered=p is not None) for r, p in zip(self.records, preds, strict=True)
        ]
        self.systems[name] = summarize(items, n_boot=self.n_boot, seed=self.seed)
        self.systems[name]["by_question_x_attribute"] = type_breakdown(items)
        self.answers_of[name] = [sorted(p) if p is not None else None for p in preds]
        for k, (row, p, it) in enumerate(zip(self.rows, preds, items, strict=True)):
            row[name] = {"answer": sorted(p) if p is not None else None, "correct": it.correct}
            if raw is not None:
                row[name]["raw"] = raw[k]
        log.info("%s: accuracy %.4f", name, self.systems[name]["overall"]["accuracy"])

    def add_generated(self, name: str, texts: list[str], spent: float, wall: float) -> None:
        """Normalise generated texts to answers, record how they were matched and the throughput, score."""
        normed = [
            self.normalizers[int(r["template_id"])](t) for r, t in zip(self.records, texts, strict=True)
        ]
        methods = [n.method for n in normed]
        stats = {m: methods.count(m) / max(1, len(methods)) for m in ("exact", "scan", "fuzzy", "oov")}
        stats["out_of_vocabulary_rate"] = stats["oov"]
        stats["negated"] = sum(bool(n.negated) for n in normed) / max(1, len(normed))
        stats["outside_exact_vocabulary_rate"] = 1.0 - stats["exact"]
        self.norm_stats[name] = stats
        self.throughput[name] = {
            "answers": len(texts),
            "seconds": spent,
            "answers_per_s": len(texts) / max(spent, 1e-9),
            "wall_seconds": wall,
            "answers_per_s_incl_ecg_reading": len(texts) / max(wall, 1e-9),
        }
        self.add_system(name, [list(n.answers) for n in normed], raw=texts)
        for row, n in zip(self.rows, normed, strict=True):
            row[name]["method"] = n.method

    def add_aux_head(self, aux: list[list[str] | None], seconds: float) -> None:
        """Score the aux-head answers and how often the LLM agrees with them."""
        self.throughput["aux_head"] = {"answers": sum(a is not None for a in aux), "seconds": seconds}
        self.add_system("aux_head", aux)
        for name in [n for n in ("llm", "llm_constrained") if n in self.answers_of]:
            correct = [row[name]["correct"] for row in self.rows]
            self.agreement[name] = agreement([a or [] for a in self.answers_of[name]], aux, correct)
        for row, a in zip(self.rows, aux, strict=True):
            if a is not None and "llm" in row:
                row["llm"]["agrees_with_aux_head"] = sorted(a) == row["llm"]["answer"]

    def result(self) -> dict:
        return {
            "n_questions": len(self.records),
            "systems": self.systems,
            "normalization": self.norm_stats,
            "throughput": self.throughput,
            "agreement": self.agreement,
            "predictions": self.rows,
        }


def _check_request(
    chat, ecg_arrays, baselines: Sequence[str], decoding: Sequence[str], records: list[dict], answer_options
) -> None:
    """Refuse unknown systems, templates without answer options, and model systems without a model."""
    unknown = [b for b in baselines if b not in BASELINES] + [d for d in decoding if d not in DECODING]
    if unknown or not decoding:
        raise ConfigError(
            f"Unknown baselines/decoding {unknown}; baselines ⊂ {BASELINES}, decoding ⊂ {DECODING}."
        )
    missing = sorted({int(r["template_id"]) for r in records} - set(answer_options))
    if missing:
        raise DatasetError(
            f"No answer options for template ids {missing[:10]}; is answers_for_each_template.csv the right one?"
        )
    needs_model = chat is not None or any(b in baselines for b in ("ecg_removed", "aux_head"))
    if needs_model and (chat is None or ecg_arrays is None):
        raise ConfigError(
            "A model (chat) and ecg_arrays are needed for the model, ecg_removed and aux_head systems."
        )


def evaluate_vqa(
    chat,
    dataset: Sequence[dict],
    *,
    answer_options: dict[int, list[str]],
    ecg_arrays: Callable[[dict], list[np.ndarray]] | None = None,
    baselines: Sequence[str] = BASELINES,
    decoding: Sequence[str] = ("free",),
    majority_reference: Sequence[dict] | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 16,
    n_boot: int = 1000,
    seed: int = 0,
    use_ecg: bool = True,
) -> dict:
    """Answer every question of ``dataset`` with ``chat`` (and the baselines) and score them.

    Args:
        chat: an ``EcgChat`` (anything with ``generate_batch``, ``aux_probabilities``, ``label_names``,
            ``encoder_config``); may be ``None`` when only the majority baseline is asked for.
        dataset: ECG-QA records (dicts or a ``datasets.Dataset``).
        answer_options: ``template_id -> options`` (``load_answer_options``).
        ecg_arrays: record -> list of model-ready (12, T) arrays, one per ``ecg_id`` (e.g.
            ``signals.EcgArrays(...).for_record``).
        baselines: any of ``majority``, ``ecg_removed``, ``aux_head``.
        decoding: ``free`` and/or ``constrained``; the first one is also used by ``ecg_removed``.
        majority_reference: records the majority baseline is fitted on (default: ``dataset`` itself).
        use_ecg: ask the model with its ECG tokens (and hint); False for a question-only model (``ecg_input:
            none``), which then skips ``ecg_removed`` (the same answers).

    Returns ``{"systems": {name: summary}, "normalization": {...}, "throughput": {...}, "agreement":
    {...}, "predictions": [per-question rows]}``.
    """
    records = [dict(r) for r in dataset]
    _check_request(chat, ecg_arrays, baselines, decoding, records, answer_options)
    _seed_everything(seed)
    options = [answer_options[int(r["template_id"])] for r in records]
    allowed = [  # constrained decoding: a choose question's own two options (+ both, none), query option subsets
        decoding_options(str(r["question_type"]), r.get("attribute"), opts)
        for r, opts in zip(records, options, strict=True)
    ]
    board = _Scoreboard(records, answer_options, n_boot, seed)

    def generate(name: str, with_ecg: bool, mode: str) -> None:
        if ecg_arrays is None:  # _check_request already refuses this before any system runs
            raise ConfigError("ecg_arrays are needed to generate answers.")
        texts, spent, wall = _generate(
            chat, records, ecg_arrays, allowed, use_ecg=with_ecg, constrained=mode == "constrained",
            batch_size=batch_size, max_new_tokens=max_new_tokens, desc=name,
        )  # fmt: skip
        board.add_generated(name, texts, spent, wall)

    if chat is not None:
        for mode in decoding:
            generate("llm" if mode == "free" else "llm_constrained", use_ecg, mode)
    if "ecg_removed" in baselines and use_ecg:  # a question-only model's "llm" already is its ECG-free answer
        generate("ecg_removed", False, decoding[0])
    if "majority" in baselines:
        model = fit_majority(majority_reference if majority_reference is not None else records)
        board.add_system("majority", [majority_answer(model, r) for r in records])
    if "aux_head" in baselines:
        t0 = time.perf_counter()
        aux = _aux_answers(chat, records, ecg_arrays, options, batch_size)
        board.add_aux_head(aux, time.perf_counter() - t0)
    return board.result()


def _to_records(ds) -> list[dict]:
    return ds.to_list() if hasattr(ds, "to_list") else [dict(r) for r in ds]


def _signal_provenance(source: str, signals_root: Path):
    """Fingerprint and ``ecg_id -> patient_id`` of a PTB-XL-layout signal folder (None for other sources)."""
    from encoder.exclusion import HeldoutExclusion, read_table

    if source != "ptbxl" or not (signals_root / "ptbxl_database.csv").is_file():
        return None
    return HeldoutExclusion.from_table(read_table(signals_root))


def run_eval_vqa(cfg: EvalVqaConfig) -> Path:
    """Load model + data from ``cfg``, evaluate, write the report; returns ``cfg.out_dir``."""
    from encoder.datasets.ecgqa import load_answer_options
    from llm_finetune.inference import EcgChat
    from llm_finetune.vqa.leakage import check_leakage, stage2_run_info
    from llm_finetune.vqa.report import write_report
    from llm_finetune.vqa.signals import EcgArrays, build_source

    for b in cfg.baselines:
        if b not in BASELINES:
            raise ConfigError(f"Unknown baseline {b!r}; choose from {BASELINES}.")
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.sample is not None and cfg.sample_file is None:
        cfg.sample_file = out_dir / "sample_ids.json"
    save_resolved_config(cfg, out_dir)
    _seed_everything(cfg.seed)

    root = Path(cfg.ecgqa_root)
    records = _questions(cfg, root)
    answer_options = load_answer_options(root, source=cfg.source)
    majority_reference, majority_note = _majority_reference(cfg, root)

    chat = EcgChat.from_pretrained(cfg.model_dir, device=cfg.device, llm=cfg.llm)
    enc = chat.encoder_config
    sampling_rate = int(enc.sampling_rate)
    num_samples = int(round(enc.input_seconds * sampling_rate))
    signals_root = Path(cfg.signals_root) if cfg.signals_root is not None else root.parent
    source = build_source(cfg.source, signals_root, sampling_rate)
    arrays = EcgArrays(source, sampling_rate, num_samples, enc.input_normalization)

    run = stage2_run_info(cfg.model_dir)
    ecg_input = run.get(
        "ecg_input", "tokens"
    )  # a question-only run (ecg_input: none) is asked without its ECG
    results = evaluate_vqa(
        chat, records, answer_options=answer_options, ecg_arrays=arrays.for_record, baselines=cfg.baselines,
        decoding=cfg.decoding, majority_reference=majority_reference, batch_size=cfg.batch_size,
        max_new_tokens=cfg.max_new_tokens, n_boot=cfg.n_boot, seed=cfg.seed, use_ecg=ecg_input == "tokens",
    )  # fmt: skip
    results["majority_note"] = majority_note
    results["ecg_input"] = ecg_input
    results["wording"] = "template" if cfg.reword == "none" else f"reworded: {cfg.reword} paraphrase set"
    if cfg.describe:
        results["describe"] = _describe(cfg, chat, arrays, signals_root, records)

    train_ids = _stage2_train_ecg_ids(cfg, root, run)
    provenance = _signal_provenance(cfg.source, signals_root)
    results["leakage"] = check_leakage(
        {e for r in records for e in r["ecg_id"]}, model_dir=cfg.model_dir, extra_run_dirs=cfg.leakage_run_dirs,
        ptbxl_folds=getattr(source, "folds", None), ecgqa_train_ecg_ids=train_ids,
        eval_fingerprint=provenance.fingerprint if provenance else None,
        patient_of=provenance.patient_of if provenance else None, allow_leakage=cfg.allow_leakage,
    )  # fmt: skip
    write_report(results, out_dir, cfg=cfg, command=" ".join(sys.argv), model_dir=cfg.model_dir)
    return out_dir


def _describe(cfg: EvalVqaConfig, chat, arrays, signals_root: Path, records: list[dict]) -> dict:
    """Describe ``cfg.describe`` of the questions' ECGs (seeded) and score the labels the texts name."""
    from llm_finetune.vqa.describe import evaluate_descriptions, label_sets

    if cfg.source != "ptbxl":
        raise ConfigError(f"describe needs PTB-XL's scp_codes as the truth; source {cfg.source!r} has none.")
    truth = label_sets(signals_root)
    ids = sorted({int(e) for r in records for e in r["ecg_id"]} & set(truth))
    rng = np.random.default_rng([cfg.seed, 37])
    if len(ids) > cfg.describe:
        ids = sorted(int(i) for i in rng.choice(ids, size=cfg.describe, replace=False))
    log.info("describing %d ECGs", len(ids))
    return evaluate_descriptions(
        chat, [arrays.get(e) for e in ids], [truth[e] for e in ids], batch_size=cfg.batch_size
    )


def _questions(cfg: EvalVqaConfig, root: Path) -> list[dict]:
    """The evaluated split's questions, filtered by question type, then limited or sampled."""
    from encoder.datasets.ecgqa import load_ecgqa
    from llm_finetune.vqa.sampling import select_indices

    records = _to_records(load_ecgqa(root, source=cfg.source, variant=cfg.variant, split=cfg.split))
    if cfg.question_types is not None:
        unknown = sorted(set(cfg.question_types) - set(QUESTION_TYPES))
        if unknown:
            raise ConfigError(f"Unknown question_types {unknown}; choose from {list(QUESTION_TYPES)}.")
        records = [r for r in records if r["question_type"] in cfg.question_types]
        if not records:
            raise DatasetError(f"The {cfg.split} split has no questions of types {cfg.question_types}.")
    keep = select_indices(
        [r["sample_id"] for r in records], limit=cfg.limit, sample=cfg.sample, sample_file=cfg.sample_file,
        seed=cfg.seed, provenance={"source": cfg.source, "variant": cfg.variant, "split": cfg.split},
    )  # fmt: skip
    chosen = [records[i] for i in keep]
    return chosen if cfg.reword == "none" else _reworded(chosen, cfg.reword, cfg.seed)


def _reworded(records: list[dict], which: Literal["heldout"], seed: int) -> list[dict]:
    """The records with their questions in a random wording of the paraphrase set (seeded)."""
    from llm_finetune.vqa.paraphrase import reword

    rng = np.random.default_rng([seed, 29])
    out, kept = [], 0
    for r in records:
        question = reword(int(r["template_id"]), r["question"], which, rng)
        kept += question is None
        out.append(r if question is None else {**r, "question": question})
    if kept == len(records):
        raise DatasetError(
            "reword: none of the questions is in its template's wording (already paraphrased?); use reword: none."
        )
    if kept:
        log.warning(
            "reword: %d of %d questions are not in their template's wording and keep it.", kept, len(out)
        )
    return out


def _majority_reference(cfg: EvalVqaConfig, root: Path) -> tuple[list[dict] | None, str]:
    """Records the majority baseline is fitted on (None: the evaluated split) and a note saying which."""
    from encoder.datasets.ecgqa import load_ecgqa

    majority_reference, majority_note = None, f"fit on the {cfg.majority_fit_split} split"
    if "majority" in cfg.baselines:
        try:
            majority_reference = _to_records(
                load_ecgqa(root, source=cfg.source, variant=cfg.variant, split=cfg.majority_fit_split)
            )
        except DatasetError:
            majority_note = (
                f"fit on the evaluated split ({cfg.majority_fit_split} split not found): optimistic"
            )
            log.warning("Majority baseline %s.", majority_note)
    return majority_reference, majority_note


def _stage2_train_ecg_ids(cfg: EvalVqaConfig, root: Path, run: dict) -> list | None:
    """ECG ids of the questions stage 2 trained on (``run``: its config.yaml, else this dataset's train split)."""
    from encoder.datasets.ecgqa import load_ecgqa

    train_ids = None
    try:  # the questions stage 2 trained on (its config.yaml, else this dataset's train split)
        train_root = run.get("ecgqa_root", root)
        train_split = run.get("train_split", "train")
        train_ids = [
            e
            for r in load_ecgqa(train_root, source=cfg.source, variant=cfg.variant, split=train_split)
            for e in r["ecg_id"]
        ]
    except DatasetError:
        pass
    return train_ids
