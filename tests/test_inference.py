"""EcgChat: answer / stream / generate_batch (text-only, constrained, two ECGs) / aux probabilities."""

import numpy as np
import pytest
import torch

from bridge.configuration import EcgLlmConfig
from bridge.modeling import EcgLlm
from bridge.projector import ProjectorConfig
from encoder.errors import ConfigError, EcgInputError
from llm_finetune.inference import ChatAnswer, EcgChat
from llm_finetune.testing import write_tiny_encoder


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat")
    torch.manual_seed(0)
    cfg = EcgLlmConfig(
        llm="packaged:tiny-random-llama", projector=ProjectorConfig(num_tokens=2), findings_hint=True
    )
    model = EcgLlm.build(cfg, write_tiny_encoder(root / "encoder"))
    with torch.no_grad():
        for n, p in model.llm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.3)
    return EcgChat.from_pretrained(model.save_pretrained(root / "model"))


def _ecg(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((12, 1000)).astype(np.float32)


def test_answer_returns_text_and_sorted_evidence(chat):
    out = chat.answer(_ecg(0), "Is this ECG normal?", max_new_tokens=5)
    assert isinstance(out, ChatAnswer) and isinstance(out.text, str)
    assert len(out.evidence) == 1 and list(out.evidence[0]) != []
    values = list(out.evidence[0].values())
    assert values == sorted(values, reverse=True) and set(out.evidence[0]) == set(chat.label_names)
    assert len(out.findings) == 1


def test_stream_yields_growing_text_matching_plain_answer(chat):
    plain = chat.answer(_ecg(1), "Which rhythm?", max_new_tokens=6).text
    parts = list(chat.answer(_ecg(1), "Which rhythm?", stream=True, max_new_tokens=6))
    assert parts and parts[-1].text == plain
    assert all(len(a.text) <= len(b.text) for a, b in zip(parts, parts[1:], strict=False))


def test_two_ecgs_and_history(chat):
    out = chat.answer(
        [_ecg(0), _ecg(2)], "Is the second ECG different?", history=[("Hi", "Hello")], max_new_tokens=4
    )
    assert len(out.evidence) == 2 and len(out.findings) == 2
    with pytest.raises(EcgInputError):
        chat.answer([_ecg(0)] * 3, "Too many?")


def test_generate_batch_matches_single_answers_and_modes(chat):
    ecgs = [[_ecg(3)], [_ecg(4), _ecg(5)], [_ecg(6)]]
    qs = ["Is this normal?", "Compare them?", "Any block?"]
    batch = chat.generate_batch(ecgs, qs, max_new_tokens=5)
    single = [chat.answer(e, q, max_new_tokens=5).text for e, q in zip(ecgs, qs, strict=True)]
    assert batch == single  # left padding does not change greedy answers
    text_only = chat.generate_batch(ecgs, qs, use_ecg=False, max_new_tokens=5)
    assert len(text_only) == 3
    options = [["yes", "no"], ["yes", "no", "not sure"], ["none", "first degree av block"]]
    picked = chat.generate_batch(ecgs, qs, allowed_answers=options)
    assert all(p in o for p, o in zip(picked, options, strict=True))
    with pytest.raises(ConfigError):
        chat.generate_batch(ecgs, qs[:2])


@torch.no_grad()
def _full_forward_scores(model, questions, counts, feats, options) -> list[list[float]]:
    """Reference: every option scored with its own whole-prompt forward pass."""
    findings = model.findings(feats.probs) if feats is not None else None
    out, row = [], 0
    for q, n, opts in zip(questions, counts, options, strict=True):
        rows = list(range(row, row + n))
        hints = model.hint_lines([findings[r] for r in rows], q, feats.probs[rows]) if n else None
        mine = []
        for opt in opts:
            enc = model.processor.encode_train(q, opt, n, hints=hints)
            batch = model.processor.pad([enc])
            sub = feats.index(rows) if n else None
            logits = model(batch["input_ids"], batch["attention_mask"], features=sub).logits[0, :-1]
            labels = batch["labels"][0, 1:]
            logp = torch.log_softmax(logits.float(), -1)[labels != -100]
            mine.append(float(logp.gather(-1, labels[labels != -100, None]).sum()))
        out.append(mine)
        row += n
    return out


def test_constrained_scores_with_a_shared_prompt_cache_equal_full_forward_passes(chat):
    from llm_finetune.inference import _option_scores, choose_answers

    model = chat.model
    qs = ["Is this normal?", "Which of the two ECGs shows a complete left bundle branch block?", "Any block?"]
    counts = [1, 2, 1]  # different prompt lengths: left padding inside one chunk
    options = [["yes", "no"], ["first ECG", "second ECG", "both", "none"], ["none", "first degree av block"]]
    feats = chat.features(np.stack([_ecg(s) for s in (10, 11, 12, 13)]))
    reference = _full_forward_scores(model, qs, counts, feats, options)
    part = []
    row = 0
    for q, n, opts in zip(qs, counts, options, strict=True):
        rows = list(range(row, row + n))
        hints = model.hint_lines(model.findings(feats.probs[rows]), q, feats.probs[rows])
        prompt = model.processor.encode_prompt(q, n, hints=hints)
        k = len(prompt.input_ids)
        part.append(
            (prompt, [model.processor.encode_train(q, o, n, hints=hints).input_ids[k:] for o in opts], rows)
        )
        row += n
    with torch.no_grad():
        shared = _option_scores(model, part, feats)
    assert shared == pytest.approx([s for q in reference for s in q], abs=1e-4)
    best = [o[int(np.argmax(r))] for o, r in zip(options, reference, strict=True)]
    assert choose_answers(model, qs, counts, feats, options, chunk=2) == best
    assert choose_answers(model, qs, counts, feats, options, max_option_rows=3) == best  # split by options
    text_only = _full_forward_scores(model, qs, [0, 0, 0], None, options)
    assert choose_answers(model, qs, [0, 0, 0], None, options) == [
        o[int(np.argmax(r))] for o, r in zip(options, text_only, strict=True)
    ]


def test_aux_probabilities_and_input_checks(chat):
    arrays = np.stack([_ecg(7), _ecg(8)])
    probs = chat.aux_probabilities(arrays)
    assert probs.shape == (2, len(chat.label_names)) and ((probs >= 0) & (probs <= 1)).all()
    assert chat.encoder_config.sampling_rate == 100 and chat.encoder_config.input_samples == 1000
    with pytest.raises(EcgInputError, match="shape"):
        chat.answer(np.zeros((12, 10), np.float32), "Q?")
    bad = _ecg(0)
    bad[0, 0] = np.nan
    with pytest.raises(EcgInputError, match="NaN"):
        chat.answer(bad, "Q?")
    with pytest.raises(ConfigError):
        chat.answer(_ecg(0), "   ")


def test_answer_accepts_a_record_file(chat):
    from importlib import resources

    path = resources.files("encoder") / "resources" / "wfdb" / "s0010_re.hea"
    out = chat.answer(str(path), "Is this ECG normal?", max_new_tokens=3)
    assert isinstance(out.text, str) and len(out.evidence) == 1
    # the encoder's own input normalisation is applied to records
    from encoder.io import read_ecg
    from encoder.preprocess import model_input

    cfg = chat.encoder_config
    for mode in ("center", "zscore"):
        cfg.input_normalization = mode
        want = model_input(read_ecg(str(path)), cfg.sampling_rate, cfg.input_samples, normalization=mode)
        np.testing.assert_array_equal(chat.prepare([str(path)])[0], want)


def test_run_chat_terminal_session(chat, tmp_path):
    import io

    from llm_finetune.chat_cli import ChatConfig, run_chat

    model_dir = tmp_path / "m"
    chat.model.save_pretrained(model_dir)
    record = tmp_path / "ecg.npy"
    np.save(record, _ecg(9))
    from importlib import resources

    hea = str(resources.files("encoder") / "resources" / "wfdb" / "s0010_re.hea")
    answers = iter(["Is this ECG normal?", "And the rhythm?", ""])
    out = io.StringIO()
    history = run_chat(
        ChatConfig(model=str(model_dir), records=[hea], max_new_tokens=4),
        ask=lambda _: next(answers),
        out=out,
    )
    assert [q for q, _ in history] == ["Is this ECG normal?", "And the rhythm?"]
    assert "aux head, ECG 1:" in out.getvalue()
    with pytest.raises(ConfigError):
        run_chat(ChatConfig(model=str(model_dir), records=[]))
