"""Constrained-decoding candidates for all 70 templates, and the item-by-item decoding of query answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import llm_finetune.inference as inference
from bridge.configuration import EcgLlmConfig
from bridge.modeling import EcgLlm
from bridge.projector import ProjectorConfig
from encoder.ecgqa.templates import TEMPLATES
from llm_finetune.data import QaSample, target_answer
from llm_finetune.inference import EcgChat, subset_answers
from llm_finetune.testing import write_tiny_encoder
from llm_finetune.vqa.candidates import Candidates, canonical_order, decoding_options, template_candidates


@pytest.mark.parametrize("template_id", sorted(TEMPLATES))
def test_every_template_decodes_over_its_own_options(template_id):
    t = TEMPLATES[template_id]
    c = template_candidates(template_id)
    assert c.options == t.options
    assert c.subsets == t.question_type.endswith("-query")


def test_a_choose_question_keeps_its_two_options():
    c = template_candidates(21, ["left axis deviation", "normal heart axis"])
    assert c.options == (
        "left axis deviation",
        "normal heart axis",
        "left axis deviation, normal heart axis",
        "none",
    )
    assert not c.subsets
    # template 24's options lack nothing: 'none' stays; a query question's attribute does not narrow its options
    assert template_candidates(34, ["baseline drift"]).options == TEMPLATES[34].options
    assert decoding_options("single-verify", None, ["no", "yes"]) == ["no", "yes"]


def test_subsets_grow_in_option_order_and_none_stands_alone():
    c = template_candidates(32)  # baseline drift, burst noise, electrodes problems, none, static noise
    assert c.extensions(()) == [(k,) for k in range(5)]
    assert c.extensions((3,)) == [(3,)]  # "none" alone
    assert c.extensions((1,)) == [(1,), (1, 2), (1, 4)]  # later, non-null options
    assert c.text((1, 4)) == "burst noise, static noise"
    assert template_candidates(25).is_null(3)  # "none of myocardial infarction"


def test_query_answers_are_trained_in_option_order():
    s = QaSample(
        [1], "What leads are showing baseline drift?", ["lead V1", "lead I", "lead aVF"], "single-query", 34
    )
    assert target_answer(s) == ["lead I", "lead V1", "lead aVF"]  # ECG-QA's option order
    choose = QaSample([1], "q", ["st/t change", "hypertrophy"], "single-choose", 3)
    assert target_answer(choose) == ["st/t change", "hypertrophy"]
    assert canonical_order(["unknown", "lead I"], TEMPLATES[34].options) == ["unknown", "lead I"]


def _scripted(monkeypatch, gold: dict[int, set[str]]):
    """choose_answers replaced by a scorer that prefers answers closer to each question's gold set."""
    calls = []

    def choose(model, questions, counts, feats, options, **kw):
        calls.append(len(questions))
        out = []
        for q, opts in zip(questions, options, strict=True):
            target = gold[int(q)]
            out.append(max(opts, key=lambda o: -len(set(o.split(", ")) ^ target)))
        return out

    monkeypatch.setattr(inference, "choose_answers", choose)
    return calls


def test_greedy_subset_search_finds_multi_item_answers(monkeypatch):
    gold = {0: {"lead I", "lead V5", "lead aVR"}, 1: {"none"}, 2: {"yes"}}
    calls = _scripted(monkeypatch, gold)
    cands = [template_candidates(34), template_candidates(34), Candidates(("no", "yes"))]
    got = subset_answers(None, ["0", "1", "2"], [0, 0, 0], None, cands)
    assert got == ["lead I, lead V5, lead aVR", "none", "yes"]
    assert calls == [3, 1, 1]  # finished questions drop out; lead aVR is the last option, so no stop round


def test_generate_batch_decodes_a_query_subset_with_a_tiny_model(tmp_path):
    torch.manual_seed(0)
    cfg = EcgLlmConfig(
        llm="packaged:tiny-random-llama", projector=ProjectorConfig(num_tokens=2), findings_hint=True
    )
    chat = EcgChat(EcgLlm.build(cfg, write_tiny_encoder(tmp_path / "encoder")))
    ecg = np.random.default_rng(0).standard_normal((12, 1000)).astype(np.float32)
    c = template_candidates(32)
    (answer,) = chat.generate_batch([[ecg]], ["What kind of noises does this ECG show?"], allowed_answers=[c])
    items = answer.split(", ")
    assert items and all(i in c.options for i in items)
    assert items == canonical_order(items, c.options) and ("none" not in items or items == ["none"])
