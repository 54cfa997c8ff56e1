"""ECG-QA harness: evaluate_vqa with a scripted chat, aux-head answerer, sampling, leakage, report, and an
end-to-end ``run_eval_vqa`` on a tiny random stage-2 model over a tiny PTB-XL-format folder."""

import ast
import copy
import csv
import json
import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from encoder.datasets.ecgqa import load_ecgqa
from encoder.errors import ConfigError, DatasetError, LeakageError
from llm_finetune.vqa.baselines import AuxHeadAnswerer, agreement
from llm_finetune.vqa.candidates import candidate_answers
from llm_finetune.vqa.evaluate import EvalVqaConfig, evaluate_vqa, run_eval_vqa
from llm_finetune.vqa.leakage import LeakageWarning, check_leakage
from llm_finetune.vqa.report import model_hashes, write_report
from llm_finetune.vqa.sampling import read_sample_file, select_indices

SHARD = Path(__file__).parent / "data" / "ecgqa" / "ptbxl"


@pytest.fixture(scope="module")
def options() -> dict[int, list[str]]:
    with open(SHARD / "answers_for_each_template.csv") as f:
        return {int(r["template_id"]): ast.literal_eval(r["classes"]) for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def shard() -> list[dict]:
    return json.loads((SHARD / "template" / "test" / "80000.json").read_text())


class ScriptedChat:
    """Stands in for EcgChat: returns scripted texts in call order; fixed aux probabilities."""

    def __init__(self, with_ecg: list[str], without_ecg: list[str], label_names, probs):
        self.with_ecg, self.without_ecg = list(with_ecg), list(without_ecg)
        self.label_names = label_names
        self._probs = np.asarray(probs, dtype=np.float32)
        self.encoder_config = type(
            "Cfg", (), {"label_thresholds": None, "sampling_rate": 100, "input_seconds": 1}
        )()
        self.calls: list[dict] = []

    def generate_batch(
        self, ecg_batches, questions, *, use_ecg=True, max_new_tokens=16, allowed_answers=None
    ):
        assert all(a.shape == (12, 100) for e in ecg_batches for a in e)
        self.calls.append({"n": len(questions), "use_ecg": use_ecg, "allowed": allowed_answers})
        src = self.with_ecg if use_ecg else self.without_ecg
        out, src[:] = src[: len(questions)], src[len(questions) :]
        if allowed_answers is not None:  # constrained: always the first option
            return [opts[0] for opts in allowed_answers]
        return out

    def aux_probabilities(self, arrays):
        return np.repeat(self._probs[None], len(arrays), axis=0)  # (n, L)


def _arrays(record):
    return [np.zeros((12, 100), np.float32) for _ in record["ecg_id"]]


def test_evaluate_vqa_scores_scripted_answers(shard, options):
    recs = shard[:40]
    llm = [" and ".join(a.upper() for a in r["answer"]) + "." for r in recs]  # right, in free text
    llm[0] = "I cannot tell"  # out of vocabulary -> wrong
    text_only = ["none"] * len(recs)
    # one template's questions, all two-ECG and of one length: batched in record order (the sort is stable)
    assert len({(len(r["ecg_id"]), len(r["question"])) for r in recs}) == 1
    chat = ScriptedChat(llm, text_only, ["NORM"], [0.9])
    res = evaluate_vqa(
        chat,
        recs,
        answer_options=options,
        ecg_arrays=_arrays,
        batch_size=16,
        n_boot=200,
        decoding=["free", "constrained"],
    )
    s = res["systems"]
    assert s["llm"]["overall"]["accuracy"] == pytest.approx(39 / 40)
    gold_none = np.mean([r["answer"] == ["none"] for r in recs])
    assert s["ecg_removed"]["overall"]["accuracy"] == pytest.approx(gold_none)
    assert res["normalization"]["llm"]["oov"] == pytest.approx(1 / 40)
    assert res["normalization"]["ecg_removed"]["exact"] == 1.0
    # constrained decoding got the options, in batches of 16, and its answers are single options
    constrained = [c for c in chat.calls if c["allowed"] is not None]
    assert [c["n"] for c in constrained] == [16, 16, 8]
    assert list(constrained[0]["allowed"][0]) == options[recs[0]["template_id"]]
    assert "llm_constrained" in s
    # comparison queries: the one label (NORM) is none of their options, so the aux head abstains on all of them
    assert s["aux_head"]["overall"]["coverage"] == 0.0 and res["agreement"]["llm"]["n"] == 0
    # majority fit on the scored records themselves: per template, its most common answer set's count
    by_template: dict = {}
    for r in recs:
        key = tuple(sorted(r["answer"]))
        by_template.setdefault(r["template_id"], Counter())[key] += 1
    best = sum(c.most_common(1)[0][1] for c in by_template.values())
    assert s["majority"]["overall"]["accuracy"] == pytest.approx(best / len(recs))
    assert best < len(recs)  # the shard is not one answer per template: the check can fail
    assert res["throughput"]["llm"]["answers"] == 40 and res["throughput"]["llm"]["answers_per_s"] > 0
    row = res["predictions"][1]
    assert row["llm"]["correct"] and row["llm"]["raw"] == llm[1] and row["gold"] == recs[1]["answer"]
    assert set(s["llm"]["by_question_type"]) == {"comparison_irrelevant-query"}
    assert "f1" in s["llm"]["by_question_type"]["comparison_irrelevant-query"]


def test_candidate_answers_for_choose_are_the_named_options():
    opts = ["conduction disturbance", "hypertrophy", "myocardial infarction", "none", "st/t change"]
    assert candidate_answers("single-choose", ["hypertrophy", "st/t change"], opts) == [
        "hypertrophy",
        "st/t change",
        "hypertrophy, st/t change",
        "none",
    ]
    no_none = [o for o in opts if o != "none"]
    assert "none" not in candidate_answers("single-choose", ["hypertrophy", "st/t change"], no_none)
    assert candidate_answers("single-verify", "hypertrophy", ["no", "yes"]) == ["no", "yes"]
    assert candidate_answers("single-query", None, opts, max_options=3) is None  # too many: free-form
    assert candidate_answers("single-query", None, None) is None


def test_constrained_decoding_gets_a_choose_questions_own_options(options):
    tid = 3  # a single-choose template of the shipped ECG-QA shard's answer table
    rec = {
        "sample_id": 1, "template_id": tid, "question_type": "single-choose", "attribute_type": "scp_code",
        "question": "Which diagnostic superclass does this ECG show, hypertrophy or st/t change?",
        "attribute": ["hypertrophy", "st/t change"], "answer": ["hypertrophy"], "ecg_id": [1],
    }  # fmt: skip
    options = dict(options) | {tid: ["conduction disturbance", "hypertrophy", "none", "st/t change"]}
    chat = ScriptedChat(["x"], [], ["NORM"], [0.9])
    res = evaluate_vqa(
        chat,
        [rec],
        answer_options=options,
        ecg_arrays=_arrays,
        baselines=[],
        decoding=["constrained"],
        n_boot=10,
    )
    assert chat.calls[0]["allowed"] == [["hypertrophy", "st/t change", "hypertrophy, st/t change", "none"]]
    assert (
        res["systems"]["llm_constrained"]["overall"]["accuracy"] == 1.0
    )  # the scripted chat picks the first


def test_unknown_baseline_and_missing_template_raise(shard, options):
    with pytest.raises(ConfigError):
        evaluate_vqa(None, shard[:2], answer_options=options, baselines=["oracle"])
    with pytest.raises(DatasetError):
        evaluate_vqa(None, shard[:2], answer_options={1: ["yes", "no"]}, baselines=["majority"])
    res = evaluate_vqa(None, shard[:50], answer_options=options, baselines=["majority"], n_boot=50)
    assert set(res["systems"]) == {"majority"}


def _q(qtype, attribute, question="Does this ECG show it?", template_id=1, answer=("yes",)):
    return {
        "question_type": qtype,
        "attribute": attribute,
        "question": question,
        "template_id": template_id,
        "answer": list(answer),
    }


def test_aux_head_answerer(options):
    names = ["NORM", "IMI", "AFIB", "CD", "MI", "SR", "HYP", "STTC"]
    probs = np.array([0.1, 0.8, 0.2, 0.6, 0.7, 0.9, 0.1, 0.3])
    aux = AuxHeadAnswerer(names)
    assert aux.answer(
        _q("single-verify", ["myocardial infarction in inferior leads"]), options[1], probs
    ) == ["yes"]
    assert aux.answer(_q("single-verify", ["atrial fibrillation"]), options[2], probs) == ["no"]
    # a per-label threshold moves the decision
    strict = AuxHeadAnswerer(names, thresholds=[0.5, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert strict.answer(
        _q("single-verify", ["myocardial infarction in inferior leads"]), options[1], probs
    ) == ["no"]
    choose = _q("single-choose", ["conduction disturbance", "myocardial infarction"], template_id=3)
    assert sorted(aux.answer(choose, options[3], probs)) == [
        "conduction disturbance",
        "myocardial infarction",
    ]
    none = _q("single-choose", ["atrial fibrillation", "sinus rhythm"], template_id=7)
    assert aux.answer(none, options[7], np.array([0, 0, 0.1, 0, 0, 0.2, 0, 0])) == ["none"]
    # a query is answered only when every option maps to a label: superclass template 3 does here
    assert sorted(aux.answer(_q("single-query", None, template_id=3), options[3], probs)) == [
        "conduction disturbance",
        "myocardial infarction",
    ]
    # rhythm template 7: 2 of its 9 options map (AFIB, SR): too few -> abstain; unmapped options count as absent
    assert (
        AuxHeadAnswerer(names, min_query_coverage=0.5).answer(
            _q("single-query", None, template_id=7), options[7], probs
        )
        is None
    )
    lenient = AuxHeadAnswerer(names, min_query_coverage=0.2)
    assert lenient.answer(_q("single-query", None, template_id=7), options[7], probs) == ["sinus rhythm"]
    # superclasses are derived from member codes when the classifier only has codes
    codes = AuxHeadAnswerer(["IMI", "ASMI", "CLBBB", "NORM"])
    assert codes.label_index("myocardial infarction") == [0, 1]
    choose_sup = _q("single-choose", ["myocardial infarction", "conduction disturbance"], template_id=3)
    assert codes.answer(choose_sup, options[3], np.array([0.2, 0.7, 0.1, 0.0])) == ["myocardial infarction"]
    assert codes.answer(choose_sup, options[3], np.array([0.2, 0.1, 0.1, 0.9])) == ["none"]
    # unmapped attribute, lead-specific question, comparison: abstain
    assert aux.answer(_q("single-verify", ["baseline drift"]), options[2], probs) is None
    assert (
        aux.answer(
            _q("single-verify", ["atrial fibrillation"], question="Is it in lead V1?"), options[2], probs
        )
        is None
    )
    assert aux.answer(_q("comparison_irrelevant-verify", None), options[2], probs) is None
    # "... in inferior leads" names a whole-ECG statement, not a lead: answered; a named lead still abstains
    imi = ["myocardial infarction in inferior leads"]
    whole = _q(
        "single-verify",
        imi,
        question="Does this ECG show symptoms of myocardial infarction in inferior leads?",
    )
    assert aux.answer(whole, options[1], probs) == ["yes"]
    in_lead = _q("single-verify", imi, question="Does lead III show myocardial infarction in inferior leads?")
    assert aux.answer(in_lead, options[1], probs) is None
    # labels named by description work as well as SCP codes
    by_desc = AuxHeadAnswerer(["inferior myocardial infarction", "digitalis-effect"])
    assert by_desc.label_index("myocardial infarction in inferior leads") == [0]
    assert by_desc.label_index("digitalis effect") == [1]


def test_agreement_flags_disagreements():
    llm = [["yes"], ["no"], ["yes"], ["no"]]
    aux = [["yes"], ["yes"], None, ["no"]]
    correct = [True, False, True, False]
    a = agreement(llm, aux, correct)
    assert a["n"] == 3 and a["rate"] == pytest.approx(2 / 3)
    assert a["llm_accuracy_when_agree"] == 0.5 and a["llm_accuracy_when_disagree"] == 0.0
    assert a["flag_precision"] == 1.0


def test_sampling_is_reproducible(tmp_path):
    ids = list(range(100, 200))
    f = tmp_path / "ids.json"
    first = select_indices(ids, sample=10, sample_file=f, seed=3, provenance={"split": "test"})
    assert len(first) == 10 and f.is_file() and json.loads(f.read_text())["split"] == "test"
    again = select_indices(ids, sample=10, sample_file=f, seed=99)  # the file wins over a new seed
    assert again == first
    assert read_sample_file(f) == [ids[i] for i in first]
    assert select_indices(ids, sample=10, seed=3) == first
    assert select_indices(ids, sample=10, seed=4) != first
    assert select_indices(ids, limit=5) == [0, 1, 2, 3, 4]
    assert len(select_indices(ids)) == 100
    with pytest.raises(ConfigError):
        select_indices(ids, limit=5, sample=5)
    with pytest.raises(DatasetError):
        select_indices(list(range(5)), sample_file=f)  # ids of another split


def test_leakage_recorded_ids_and_fold_rule(tmp_path):
    model = tmp_path / "run" / "model"
    (model / "encoder").mkdir(parents=True)
    (model / "encoder" / "train_ecg_ids.json").write_text(json.dumps({"train": [1, 2, 3], "val": [4]}))
    with pytest.raises(LeakageError, match="stage-1"):  # recorded overlap refuses to report ...
        check_leakage([1, 4, 5, 6], model_dir=model, ecgqa_train_ecg_ids=[7])
    with pytest.warns(LeakageWarning, match="stage-1"):  # ... unless the user overrides
        res = check_leakage([1, 4, 5, 6], model_dir=model, ecgqa_train_ecg_ids=[7], allow_leakage=True)
    assert res["stage1"]["n_overlap"] == 1 and res["stage1"]["val_n_overlap"] == 1
    assert res["stage1"]["source"].startswith("recorded")
    assert res["stage2"]["n_overlap"] == 0 and res["stage2"]["source"].startswith("rule")
    # no records: PTB-XL fold rule (folds 1-8 train), stage 2 unknown
    with pytest.warns(LeakageWarning):
        res = check_leakage([1, 2, 3], model_dir=tmp_path / "nothing", ptbxl_folds={1: 3, 2: 9, 3: 10})
    assert res["stage1"]["n_overlap"] == 1 and res["stage1"]["val_n_overlap"] == 1
    assert res["stage2"]["n_overlap"] is None
    # stage-2 config.yaml points at the stage-1 encoder folder
    stage1 = tmp_path / "stage1"
    (stage1 / "encoder").mkdir(parents=True)
    (stage1 / "train_ecg_ids.json").write_text(json.dumps([2, 3]))
    other = tmp_path / "s2" / "model"
    other.mkdir(parents=True)
    (other.parent / "config.yaml").write_text(f"encoder: {stage1 / 'encoder'}\ntrain_split: train\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = check_leakage([3, 9], model_dir=other, allow_leakage=True)
    assert res["stage1"]["n_overlap"] == 1


def test_report_files(tmp_path, shard, options):
    res = evaluate_vqa(None, shard[:30], answer_options=options, baselines=["majority"], n_boot=50)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.safetensors").write_bytes(b"abc")
    paths = write_report(
        res, tmp_path / "out", command="ecgllm eval-vqa --x 1", model_dir=tmp_path / "m", seed=0
    )
    rep = json.loads(paths["json"].read_text())
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    assert rep["provenance"]["model_sha256"] == {"w.safetensors": digest} == model_hashes(tmp_path / "m")
    assert rep["provenance"]["command"] == "ecgllm eval-vqa --x 1"
    md = paths["markdown"].read_text()
    assert "| comparison_irrelevant-query | 30 |" in md and "**overall**" in md
    assert paths["png_question_type"].read_bytes()[:4] == b"\x89PNG"
    assert len(paths["predictions"].read_text().splitlines()) == 30


# ----- end to end on a tiny random stage-2 model ------------------------------------------------------------
def _write_ecgqa(root: Path, options) -> None:
    """Hand-made ECG-QA-format questions over the tiny PTB-XL records (ecg_ids 1..16)."""
    ptb = root / "ptbxl"
    for name in ("answers.csv", "answers_for_each_template.csv"):
        (ptb).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARD / name, ptb / name)
    qs = []
    for i in range(12):
        e = i % 16 + 1
        if i % 3 == 0:
            q = {"template_id": 1, "question_type": "single-verify", "question": "Does this ECG show symptoms of myocardial infarction in inferior leads?",
                 "answer": ["yes" if e in (3, 4) else "no"], "attribute": ["myocardial infarction in inferior leads"], "ecg_id": [e]}  # fmt: skip
        elif i % 3 == 1:
            q = {"template_id": 3, "question_type": "single-choose", "question": "Which diagnostic superclass does this ECG show, hypertrophy or myocardial infarction?",
                 "answer": ["none"], "attribute": ["hypertrophy", "myocardial infarction"], "ecg_id": [e]}  # fmt: skip
        else:
            q = {"template_id": 70, "question_type": "comparison_irrelevant-query", "question": "What numeric features of the second ECG are still abnormal as compared to the first ECG?",
                 "answer": ["none"], "attribute": None, "ecg_id": [e, e + 1]}  # fmt: skip
        qs.append({"question_id": i, "sample_id": 1000 + i, "attribute_type": "scp_code", **q})
    for split, part in (("test", qs), ("train", qs[:6])):
        (ptb / "template" / split).mkdir(parents=True, exist_ok=True)
        (ptb / "template" / split / "0.json").write_text(json.dumps(part))


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory, options):
    import torch

    from bridge.configuration import EcgLlmConfig
    from bridge.modeling import EcgLlm
    from encoder.configuration import EcgEncoderConfig
    from encoder.datasets.testing import write_tiny_ptbxl
    from encoder.modeling import EcgEncoder

    root = tmp_path_factory.mktemp("vqa_e2e")
    write_tiny_ptbxl(root / "ptbxl", num_records=16, rates=(100,))
    _write_ecgqa(root / "ptbxl" / "ecgqa", options)
    torch.manual_seed(0)
    enc = EcgEncoder(
        EcgEncoderConfig(
            arch="resnet10",
            widths=(8, 8, 16, 16),
            embed_dim=16,
            label_names=["NORM", "MI", "STTC", "CD", "HYP", "IMI"],
        )
    )
    model = EcgLlm.build(EcgLlmConfig(llm="packaged:tiny-random-llama", lora_r=4), enc)
    model.save_pretrained(root / "run" / "model")
    return root


@pytest.mark.slow
def test_run_eval_vqa_end_to_end_tiny_model(tiny_setup):
    root = tiny_setup
    cfg = EvalVqaConfig(
        model_dir=root / "run" / "model",
        ecgqa_root=root / "ptbxl" / "ecgqa",
        out_dir=root / "eval",
        decoding=["free", "constrained"],
        sample=9,
        batch_size=4,
        max_new_tokens=4,
        n_boot=100,
    )
    with pytest.warns(LeakageWarning):  # hand-made questions use ECGs of PTB-XL folds 1-8
        out = run_eval_vqa(cfg)
    rep = json.loads((out / "report.json").read_text())
    assert rep["n_questions"] == 9
    assert set(rep["systems"]) == {"llm", "llm_constrained", "ecg_removed", "majority", "aux_head"}
    cov = rep["systems"]["aux_head"]["overall"]["coverage"]
    assert 0 < cov < 1  # questions about labels the tiny encoder lacks are abstained
    assert rep["normalization"]["llm_constrained"]["oov"] == 0.0  # constrained answers are always options
    assert rep["leakage"]["stage1"]["source"].startswith("rule: PTB-XL")
    assert rep["leakage"]["stage2"]["source"].startswith("rule")
    assert rep["majority_note"] == "fit on the train split"
    assert len(rep["provenance"]["model_sha256"]) >= 3  # adapter, projector, encoder weights
    assert (out / "config.yaml").is_file() and (out / "sample_ids.json").is_file()
    # rerun from the sampled-id file (model only): same questions, same greedy answers
    cfg2 = EvalVqaConfig(
        **{**cfg.__dict__, "out_dir": root / "eval2", "sample": None, "sample_file": out / "sample_ids.json"}
    )
    cfg2.decoding, cfg2.baselines = ["free"], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out2 = run_eval_vqa(cfg2)

    def llm_rows(path):
        return [(r["sample_id"], r["llm"]["raw"]) for r in map(json.loads, path.read_text().splitlines())]

    assert llm_rows(out / "predictions.jsonl") == llm_rows(out2 / "predictions.jsonl")
    assert len(llm_rows(out2 / "predictions.jsonl")) == 9

    # only some question types (no sampling): every question of those types, nothing else
    types = ["single-verify", "single-choose"]
    cfg3 = EvalVqaConfig(
        **{**cfg2.__dict__, "out_dir": root / "eval3", "sample_file": None, "question_types": types}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows3 = [json.loads(r) for r in (run_eval_vqa(cfg3) / "predictions.jsonl").read_text().splitlines()]
    all_of_types = [
        r for r in load_ecgqa(root / "ptbxl" / "ecgqa", split="test") if r["question_type"] in types
    ]
    assert rows3 and len(rows3) == len(all_of_types) and {r["question_type"] for r in rows3} <= set(types)
    with pytest.raises(ConfigError, match="question_types"):
        run_eval_vqa(EvalVqaConfig(**{**cfg3.__dict__, "question_types": ["single-verfy"]}))


def test_aux_head_answerer_with_prior_shifts():
    rec = {"question_type": "single-verify", "question": "Does this ECG show atrial fibrillation?",
           "attribute": ["atrial fibrillation"]}  # fmt: skip
    names = ["SR", "AFIB"]
    probs = np.array([0.9, 0.2])
    assert AuxHeadAnswerer(names, [0.5, 0.5]).answer(rec, [], probs) == ["no"]
    shifted = AuxHeadAnswerer(names, [0.5, 0.5], logit_shifts=[None, 2.0])  # logit(0.2) + 2 > 0
    assert shifted.answer(rec, [], probs) == ["yes"]
    assert AuxHeadAnswerer(names, [0.5, 0.5], logit_shifts=[None, 1.0]).answer(rec, [], probs) == ["no"]


class RecordingChat(ScriptedChat):
    """Records exactly what the model is shown: questions, ECG counts, constrained options."""

    def generate_batch(
        self, ecg_batches, questions, *, use_ecg=True, max_new_tokens=16, allowed_answers=None
    ):
        self.calls.append(
            {
                "q": list(questions),
                "ecgs": [len(e) for e in ecg_batches],
                "use_ecg": use_ecg,
                "allowed": allowed_answers,
            }
        )
        return (
            [opts[0] for opts in allowed_answers] if allowed_answers is not None else ["yes"] * len(questions)
        )


def _shown(records, options) -> list[dict]:
    chat = RecordingChat([], [], ["NORM"], [0.9])
    evaluate_vqa(
        chat, records, answer_options=options, ecg_arrays=_arrays, baselines=["ecg_removed"],
        decoding=["free", "constrained"], n_boot=10,
    )  # fmt: skip
    return chat.calls


def test_evaluation_prompts_do_not_depend_on_answer_or_attribute(shard, options):
    recs = [r for r in shard if r["question_type"] != "single-choose"][:24]
    assert recs
    changed = copy.deepcopy(recs)
    for r in changed:
        r["answer"] = ["banana"]
        r["attribute"] = ["gold answer leaked here"]
    assert _shown(recs, options) == _shown(changed, options)
    # ... while a different question is visible to the model (the check can fail)
    reworded = copy.deepcopy(recs)
    reworded[0]["question"] += " Really?"
    assert _shown(recs, options) != _shown(reworded, options)


class EchoChat(RecordingChat):
    """Answers each question with its own text, so the harness's answer order can be checked."""

    def generate_batch(self, ecg_batches, questions, **kw):
        super().generate_batch(ecg_batches, questions, **kw)
        return list(questions)


def test_questions_are_batched_by_length_and_answers_return_in_record_order(shard, options):
    recs = copy.deepcopy(shard[:20])
    for i, r in enumerate(
        recs
    ):  # distinct questions of mixed lengths, some single-ECG among the two-ECG ones
        r["question"] += " " + "x" * ((7 * i) % 11) + f" #{i}"
        if i % 3 == 0:
            r["ecg_id"] = r["ecg_id"][:1]
    chat = EchoChat([], [], ["NORM"], [0.9])
    res = evaluate_vqa(chat, recs, answer_options=options, ecg_arrays=_arrays, baselines=[], batch_size=4)
    assert [row["llm"]["raw"] for row in res["predictions"]] == [r["question"] for r in recs]
    sent = [(n, len(q)) for call in chat.calls for n, q in zip(call["ecgs"], call["q"], strict=True)]
    assert sent == sorted(sent) and sent != [(len(r["ecg_id"]), len(r["question"])) for r in recs]


@pytest.mark.slow
def test_run_eval_vqa_rewords_the_same_questions_and_scores_descriptions(tiny_setup):
    from llm_finetune.vqa.paraphrase import wordings

    root = tiny_setup
    base = dict(model_dir=root / "run" / "model", ecgqa_root=root / "ptbxl" / "ecgqa", sample=6,
                batch_size=4, max_new_tokens=4, n_boot=50, baselines=[])  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # leakage: hand-made questions use fold 1-8 ECGs
        plain = run_eval_vqa(EvalVqaConfig(**base, out_dir=root / "plain"))
        reworded = run_eval_vqa(
            EvalVqaConfig(
                **base,
                out_dir=root / "reworded",
                reword="heldout",
                describe=3,
                sample_file=plain / "sample_ids.json",
            )  # fmt: skip
        )
    a = {r["sample_id"]: r for r in map(json.loads, (plain / "predictions.jsonl").read_text().splitlines())}
    b = {
        r["sample_id"]: r for r in map(json.loads, (reworded / "predictions.jsonl").read_text().splitlines())
    }
    assert set(a) == set(b) and len(a) == 6  # the same questions ...
    for i in a:  # ... each in one of its template's held-out wordings
        assert b[i]["question"] != a[i]["question"]
        shapes = [w.split("{")[0] for w in wordings(a[i]["template_id"], "heldout")]
        assert any(b[i]["question"].startswith(s) for s in shapes)
    rep = json.loads((reworded / "report.json").read_text())
    assert rep["wording"] == "reworded: heldout paraphrase set"
    d = rep["describe"]
    assert d["n"] == 3 and 0.0 <= d["llm_micro_f1"] <= 1.0 and len(d["examples"]) == 3
    assert "Describe this ECG" in (reworded / "report.md").read_text()
    with pytest.raises(
        DatasetError, match="reword"
    ):  # already paraphrased questions cannot be reworded again
        from llm_finetune.vqa.evaluate import _reworded

        _reworded([{**r, "question": "Tell me something."} for r in a.values()], "heldout", 0)
