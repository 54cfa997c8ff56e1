"""The Gradio demo end to end on loopback with ``gradio_client``: upload -> plot -> answer -> evidence, the
bad-input corpus through the upload handler, file-route traversal attempts, bounded queue, temp-file cleanup."""

from __future__ import annotations

import base64
import os
import socket
import tempfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from demo_fakes import FakeChat
from gradio_client import Client, handle_file

from demo.app import (
    GENERIC_ERROR,
    DemoConfig,
    DemoHandlers,
    build_app,
    evidence_message,
    history_pairs,
    load_chat,
    md_escape,
    serve,
)
from demo.uploads import EXAMPLES, ReadOptions, check_file, read_upload
from encoder.errors import CheckpointError, EcgFormatError, EcgLlmError, EcgTooLargeError

WFDB = Path("encoder/resources/wfdb")
S0010 = [WFDB / "s0010_re.hea", WFDB / "s0010_re.dat", WFDB / "s0010_re.xyz"]
MAX_MB = 2.0  # small upload limit for the test server, so "huge" files stay small


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def private_tmp(tmp_path_factory):
    """Point tempfile (uploads, the reader's staging folders) at a private folder to count leftovers."""
    folder = tmp_path_factory.mktemp("demo_tmp")
    old = tempfile.tempdir
    tempfile.tempdir = str(folder)
    yield folder
    tempfile.tempdir = old


@pytest.fixture(scope="module")
def server(private_tmp):
    chat = FakeChat()
    cfg = DemoConfig(port=free_port(), max_file_mb=MAX_MB, queue_max_size=8)
    with serve(chat, cfg) as (app, url):
        upload_root = Path(os.environ["GRADIO_TEMP_DIR"])
        client = Client(url, verbose=False, download_files=False)
        yield {"url": url, "client": client, "chat": chat, "app": app, "upload_root": upload_root}
        client.close()
    assert not upload_root.exists(), "the upload folder must be deleted when the demo stops"


def _png(plot: dict) -> bytes:
    assert plot["type"] == "matplotlib"
    data = base64.b64decode(plot["plot"].split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


def _texts(messages: list[dict]) -> list[str]:
    return ["".join(part.get("text", "") for part in m["content"]) for m in messages]


# ------------------------------------------------------------------------------------------ end to end


def test_binds_loopback_by_default(server):
    cfg = DemoConfig()
    assert cfg.host == "127.0.0.1" and cfg.share is False
    assert server["url"].startswith("http://127.0.0.1:")


def test_upload_plot_answer_evidence(server):
    client, chat = server["client"], server["chat"]
    plot, info, probs, status = client.predict(
        [handle_file(p) for p in S0010], None, api_name="/load_upload_a"
    )
    assert len(_png(plot)) > 50_000 and _png(probs)
    assert "1000 Hz" in info and "(12/12)" in info and "Repairs applied:** none" in info
    assert "vx" in info  # the Frank leads that were dropped are reported
    assert status.startswith("ECG A loaded")

    job = client.submit("Does this ECG show a myocardial infarction?", [], api_name="/ask")
    streamed = [_texts(out[0])[-1] for out in job]
    messages, probs_a, probs_b, status, box = job.result()
    answer = _texts(messages)[-2]
    assert answer.startswith("Looking at 1 ECG(s): the strongest finding is")
    # streamed in pieces, then the evidence message
    assert len([s for s in streamed if s]) >= 2 and streamed[-2] == answer
    assert _png(probs_a) and status == "Answer complete." and box == ""
    # the evidence lines the prompt carried follow the answer, collapsed under their title
    assert messages[-1]["metadata"]["title"] == "Evidence the model was given (aux head)"
    assert _texts(messages)[-1].startswith("- ECG 1 aux head findings:")
    # the second question carries the first exchange (not its evidence) as history
    messages, *_ = client.predict("And the rhythm?", messages, api_name="/ask")
    assert chat.calls[-1][2] == [("Does this ECG show a myocardial infarction?", answer)]
    assert len(messages) == 6


def test_two_examples_for_a_comparison_question(server):
    client = Client(server["url"], verbose=False, download_files=False)  # a fresh session
    names = list(EXAMPLES)
    _, info_a, _, status_a = client.predict(names[0], api_name="/load_example_a")
    _, info_b, _, status_b = client.predict(names[1], api_name="/load_example_b")
    assert "1000 Hz" in info_a and "500 Hz" in info_b and "loaded" in status_a + status_b
    messages, probs_a, probs_b, status, _ = client.predict(
        "Are these two ECGs the same?", [], api_name="/ask"
    )
    assert _texts(messages)[-2].startswith("Looking at 2 ECG(s)")
    assert _texts(messages)[-1].count("aux head findings") == 2  # each ECG's own evidence
    assert _png(probs_a) and _png(probs_b)
    client.close()


def test_question_without_ecg_or_text_gives_a_message(server):
    client = Client(server["url"], verbose=False, download_files=False)
    messages, _, _, status, _ = client.predict("Is it normal?", [], api_name="/ask")
    assert messages == [] and "Load an ECG first" in status
    messages, _, _, status, _ = client.predict("   ", [], api_name="/ask")
    assert "Type a question" in status
    client.close()


def test_bad_input_corpus_through_the_upload_endpoint(server, bad_inputs):
    """Every corpus entry: a clear message in the page (or the documented flag shown), never a traceback."""
    client = Client(server["url"], verbose=False, download_files=False)
    problems = []
    for case in bad_inputs:
        fs = case.read_kwargs.get("fs")
        try:
            plot, info, _, status = client.predict(
                [handle_file(p) for p in case.files], fs, api_name="/load_upload_a"
            )
        except Exception as exc:  # gradio's own server-side file-type check answers with an error event
            text = str(exc)
            if "Invalid file type" not in text or "Traceback" in text:
                problems.append(f"{case.name}: unexpected client error {text!r}")
            continue
        if "Traceback" in status + info or GENERIC_ERROR in status:
            problems.append(f"{case.name}: {status}")
        elif case.expect == "error" and case.read_kwargs.get("max_file_bytes") is None:
            if plot is not None or not status.startswith("⚠️") or len(status) < 40:
                problems.append(f"{case.name}: accepted or unclear: {status!r}")
        elif plot is not None and case.flag and not _shows_flag(info, case.flag):
            problems.append(f"{case.name}: accepted without showing {case.flag}: {info!r}")
    assert not problems, "\n".join(problems)
    # the queue is still healthy afterwards
    _, info, _, status = client.predict([handle_file(p) for p in S0010], None, api_name="/load_upload_a")
    assert status.startswith("ECG A loaded")
    client.close()


def _shows_flag(info: str, flag: str) -> bool:
    marker = {
        "repairs": "Repairs applied:** ",
        "flat_leads": "Flat leads:**",
        "missing_leads": "Missing leads",
        "warnings": "Warning:**",
    }[flag]
    return marker in info and "Repairs applied:** none" not in info if flag == "repairs" else marker in info


def test_bad_input_corpus_through_the_handler_with_the_cases_limits(bad_inputs):
    """Same corpus, the handler called directly with each case's own limits (e.g. max_file_bytes)."""
    for case in bad_inputs:
        kw = case.read_kwargs
        cfg = DemoConfig(
            max_file_mb=kw.get("max_file_bytes", 20 * 2**20) / 2**20,
            min_leads=kw.get("min_leads", 1),
            min_seconds=kw.get("min_duration_s", 1.0),
        )
        plot, info, _, state, status = DemoHandlers(FakeChat(), cfg).load_upload(
            [str(p) for p in case.files], kw.get("fs"), "A"
        )
        if case.expect == "error":
            assert plot is None and state is None and status.startswith("⚠️"), (case.name, status)
            assert GENERIC_ERROR not in status and len(status) > 40, (case.name, status)
        else:
            assert state is not None and _shows_flag(info, case.flag), (case.name, status, info)


def test_listed_bad_inputs(tmp_path):
    """The issue's list, by hand: wrong type, corrupt header, truncated data, huge file, missing .dat,
    NaN record, text file renamed .dat -- each one a specific message."""
    h = DemoHandlers(FakeChat(), DemoConfig(max_file_mb=1.0))
    hea, dat = (tmp_path / "r.hea", tmp_path / "r.dat")
    hea.write_text(
        "r 12 500 5000\n"
        + "".join(
            f"r.dat 16 1000/mV 16 0 0 0 0 {lead}\n"
            for lead in "I II III aVR aVL aVF V1 V2 V3 V4 V5 V6".split()
        )
    )
    rng = np.random.default_rng(0)
    dat.write_bytes((rng.normal(0, 300, (5000, 12))).astype("<i2").tobytes())
    assert h.load_upload([str(hea), str(dat)], None, "A")[3] is not None  # the good record

    cases: dict[str, tuple[list[Path], str]] = {}
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    cases["wrong type"] = ([txt], "not an ECG file")
    bad_hea = tmp_path / "bad" / "r.hea"
    bad_hea.parent.mkdir()
    bad_hea.write_text("this is not a header\n")
    (tmp_path / "bad" / "r.dat").write_bytes(dat.read_bytes())
    cases["corrupt header"] = ([bad_hea, tmp_path / "bad" / "r.dat"], "r.hea")
    short = tmp_path / "short" / "r.dat"
    short.parent.mkdir()
    short.write_bytes(dat.read_bytes()[:5000])
    (tmp_path / "short" / "r.hea").write_text(hea.read_text())
    cases["truncated data"] = ([tmp_path / "short" / "r.hea", short], "r.dat")
    huge = tmp_path / "huge.npy"
    np.save(huge, np.zeros((12, 30_000), dtype=np.float32))  # 1.4 MiB > 1 MiB
    cases["huge file"] = ([huge], "accepts files up to 1.0 MiB")
    cases["missing .dat"] = ([hea], "r.dat")
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((12, 5000), np.nan, dtype=np.float32))
    cases["NaN record"] = ([nan], "NaN")
    renamed = tmp_path / "txt" / "r.dat"
    renamed.parent.mkdir()
    renamed.write_text("0.1,0.2,0.3\n" * 2000)
    (tmp_path / "txt" / "r.hea").write_text(hea.read_text())
    cases["text renamed .dat"] = ([tmp_path / "txt" / "r.hea", renamed], "contains text")
    for name, (paths, needle) in cases.items():
        plot, _, _, state, status = h.load_upload([str(p) for p in paths], 500, "A")
        assert plot is None and state is None, name
        assert status.startswith("⚠️ ECG A could not be used.") and needle in status, (name, status)


def test_npy_needs_a_sampling_rate_and_says_where_to_enter_it(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.random.default_rng(0).normal(0, 0.3, (12, 5000)).astype(np.float32))
    h = DemoHandlers(FakeChat(), DemoConfig())
    *_, state, status = h.load_upload([str(p)], None, "A")
    assert state is None and "Enter the sampling rate" in status
    *_, state, status = h.load_upload([str(p)], 500, "A")
    assert state is not None and state.fs == 500


def test_server_side_checks_do_not_trust_the_name(tmp_path):
    fake_npy = tmp_path / "x.npy"
    fake_npy.write_text("I,II\n1,2\n")
    with pytest.raises(EcgFormatError, match="not a NumPy"):
        check_file(fake_npy, 2**20)
    binary_hea = tmp_path / "x.hea"
    binary_hea.write_bytes(os.urandom(200) + b"\x00")
    with pytest.raises(EcgFormatError, match="not a text file"):
        check_file(binary_hea, 2**20)
    with pytest.raises(EcgTooLargeError):
        check_file(WFDB / "s0010_re.dat", 1000)
    real_npy = tmp_path / "y.npy"
    np.save(real_npy, np.zeros((12, 5000), dtype=np.float32))
    with pytest.raises(EcgLlmError, match="one .npy or .csv"):
        read_upload([real_npy, real_npy], 500, ReadOptions())


def test_server_refuses_oversized_uploads(server):
    big = os.urandom(int((MAX_MB + 0.5) * 2**20))
    resp = httpx.post(server["url"] + "gradio_api/upload", files={"files": ("big.dat", big)})
    assert resp.status_code == 413


def test_file_route_refuses_paths_outside_the_upload_area(server):
    url = server["url"]
    root = server["upload_root"]
    attempts = [
        "gradio_api/file=/etc/passwd",
        "gradio_api/file=%2Fetc%2Fpasswd",
        "gradio_api/file=../../../../etc/passwd",
        "gradio_api/file=..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "gradio_api/file=%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        f"gradio_api/file={root}/../../../etc/passwd",
        f"gradio_api/file={Path('encoder/resources/wfdb/s0010_re.hea').resolve()}",
        f"gradio_api/file={Path('demo/app.py').resolve()}",
        "file=/etc/passwd",
        "gradio_api/file=http://127.0.0.1:1/",
    ]
    for path in attempts:
        resp = httpx.get(url + path)
        assert resp.status_code in (403, 404), (path, resp.status_code)
        assert "root:" not in resp.text and "import" not in resp.text
    # an uploaded file itself is served back (the route works; only outside paths are refused)
    resp = httpx.post(url + "gradio_api/upload", files={"files": ("ok.csv", b"I,II\n1,2\n")})
    (served,) = resp.json()
    assert httpx.get(url + f"gradio_api/file={served}").status_code == 200


def test_queue_is_bounded_and_handlers_have_limits(server):
    app = server["app"]
    assert app._queue.max_size == 8
    limits = {fn.concurrency_id: fn.concurrency_limit for fn in app.fns.values() if fn.queue}
    assert (
        limits["answer"] == DemoConfig().concurrency_limit
        and limits["read"] == DemoConfig().concurrency_limit
    )


@pytest.mark.slow
def test_full_queue_refuses_instead_of_hanging(private_tmp):
    """max_size=1, one answer at a time, slow answers: extra requests are refused at once, the rest finish."""
    import concurrent.futures as cf
    import time

    chat = FakeChat(delay_s=0.1)
    cfg = DemoConfig(port=free_port(), queue_max_size=1, concurrency_limit=1)
    with serve(chat, cfg) as (_, url):
        clients = [Client(url, verbose=False, download_files=False) for _ in range(4)]
        for c in clients:
            c.predict(list(EXAMPLES)[1], api_name="/load_example_a")  # a short synthetic one

        def ask(c):
            t0 = time.perf_counter()
            try:
                c.predict("Is it normal?", [], api_name="/ask")
                return "ok", time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001
                return str(exc), time.perf_counter() - t0

        with cf.ThreadPoolExecutor(len(clients)) as pool:
            outcomes = list(pool.map(ask, clients))
        for c in clients:
            c.close()
    done = [t for r, t in outcomes if r == "ok"]
    refused = [(r, t) for r, t in outcomes if r != "ok"]
    assert len(done) >= 1 and refused, outcomes
    assert all("queue is full" in r.lower() for r, _ in refused), refused
    assert max(t for _, t in outcomes) < 60


def test_answer_errors_become_messages():
    ecg = DemoHandlers(FakeChat(), DemoConfig()).load_example(next(iter(EXAMPLES)), "A")[3]
    for err, expected in (
        (RuntimeError("CUDA kaboom at 0x7f"), GENERIC_ERROR),
        (EcgFormatError("bad ECG x"), "bad ECG x"),
    ):
        h = DemoHandlers(FakeChat(fail_with=err), DemoConfig())
        *_, (messages, _, _, status, _) = list(h.ask("why?", [], ecg, None))
        assert expected in status and "kaboom" not in status
        assert messages[-1]["content"].startswith("(no answer:")


def test_user_text_is_escaped_in_markdown(tmp_path):
    p = tmp_path / "x_<b>bold<b>_$1.npy"
    np.save(p, np.random.default_rng(0).normal(0, 0.3, (12, 5000)).astype(np.float32))
    plot, info, _, state, status = DemoHandlers(FakeChat(), DemoConfig()).load_upload([str(p)], 500, "A")
    assert state is not None and "<b>" not in info + status and "\\<b\\>" in info
    assert md_escape("a_b*c") == "a\\_b\\*c"


def test_history_pairs_from_gradio_messages():
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "q1"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a1"}]},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
        evidence_message(["ECG 1 aux head findings: NORM"]),  # shown, not sent back as history
        {"role": "user", "content": "q3"},
        {"role": "assistant", "content": "a3"},
    ]
    assert history_pairs(messages) == [("q1", "a1"), ("q2", "a2"), ("q3", "a3")]


def test_missing_model_dir_says_how_to_make_one(tmp_path):
    for call in (load_chat, build_app):
        with pytest.raises(CheckpointError, match="ecgllm quickstart"):
            call(tmp_path / "no_model_here")


def test_no_leftover_temp_files(server, private_tmp):
    """The reader's staging folders are gone after every request; only the app's upload root remains."""
    leftovers = [p.name for p in private_tmp.iterdir() if p != server["upload_root"]]
    leftovers = [n for n in leftovers if not n.startswith("torchinductor_")]  # torch's cache, not the demo's
    assert leftovers == []


@pytest.fixture(scope="module")
def tiny_stage2_dir(tmp_path_factory):
    """A real stage-2 model directory: tiny random encoder + tiny random Llama, saved like ``run_finetune``."""
    import torch

    from bridge.configuration import EcgLlmConfig
    from bridge.modeling import EcgLlm
    from bridge.projector import ProjectorConfig
    from llm_finetune.testing import write_tiny_encoder

    root = tmp_path_factory.mktemp("tiny_stage2")
    torch.manual_seed(0)
    model = EcgLlm.build(
        EcgLlmConfig(llm="packaged:tiny-random-llama", projector=ProjectorConfig(num_tokens=3)),
        write_tiny_encoder(root / "encoder"),
    )
    return model.save_pretrained(root / "model")


@pytest.mark.slow
def test_folders_that_are_not_models_say_what_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    for folder in ("empty", "broken"):
        with pytest.raises(EcgLlmError, match="ecgllm quickstart"):
            load_chat(tmp_path / folder)


@pytest.mark.slow
def test_real_tiny_stage2_model_end_to_end(tiny_stage2_dir, private_tmp):
    """The same flow with ``EcgChat.from_pretrained`` on a real (tiny, untrained) stage-2 directory."""
    cfg = DemoConfig(port=free_port(), model_dir=str(tiny_stage2_dir), max_new_tokens=8)
    with serve(str(tiny_stage2_dir), cfg) as (_, url):
        client = Client(url, verbose=False, download_files=False)
        plot, info, probs, status = client.predict(
            [handle_file(p) for p in S0010[:2]], None, api_name="/load_upload_a"
        )
        assert _png(plot) and _png(probs) and status.startswith("ECG A loaded")
        _, _, _, status = client.predict(list(EXAMPLES)[1], api_name="/load_example_b")
        messages, probs_a, probs_b, status, _ = client.predict(
            "Is the second ECG the same as the first?", [], api_name="/ask"
        )
        assert status == "Answer complete." and _png(probs_a) and _png(probs_b)
        assert _texts(messages)[0] == "Is the second ECG the same as the first?" and _texts(messages)[1]
        client.close()


def test_python_m_demo_without_a_model_exits_with_the_message(tmp_path, capsys):
    from demo.cli import main

    assert main(["demo", "--model_dir", str(tmp_path / "nothing"), "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "No stage-2 model found" in err and "ecgllm quickstart" in err and "Traceback" not in err
