"""Gradio chat demo: upload (or pick) up to two ECGs, see them on ECG paper, ask questions, check the evidence.

UI code only: reading files goes through ``demo.uploads`` (-> ``encoder.io``), answers and label probabilities
through the stage-2 inference API (``llm_finetune.inference.EcgChat``), plots through ``encoder.plotting``.
Every handler turns errors into a message in the page (``EcgLlmError`` -> its message; anything else -> a
generic message, logged with its traceback server-side), so a bad file never shows a stack trace or stalls
the queue.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import gradio as gr
import numpy as np

from demo.uploads import EXAMPLES, ReadOptions, read_example, read_upload
from encoder.errors import CheckpointError, EcgLlmError, EcgSamplingRateError, ModelLoadError
from encoder.leads import CANONICAL_LEADS
from encoder.plotting import plot_12lead, plot_label_probabilities
from encoder.record import Ecg

logger = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = "runs/quickstart/stage2/model"
"""Where ``ecgllm quickstart`` writes its stage-2 model (the demo's default model)."""
DISCLAIMER = (
    "**Research software — not a medical device and not for diagnosis or treatment decisions.** "
    "Answers come from a small research model and can be wrong; the bar chart shows the model's own per-label "
    "probabilities so you can check an answer against them."
)
GENERIC_ERROR = (
    "Something went wrong on the server while handling this request (details are in the server log)."
)
EMPTY_ANSWER = "(the model returned an empty answer; an untrained or tiny test model does this)"
SLOTS = ("A", "B")


@dataclass
class DemoConfig:
    """Options of ``ecgllm demo``."""

    model_dir: str = DEFAULT_MODEL_DIR
    """Stage-2 model directory (``EcgChat.from_pretrained``); the default is where ``ecgllm quickstart`` writes."""
    host: str = "127.0.0.1"
    """Interface to bind. The default serves this machine only; use 0.0.0.0 to expose it on your network."""
    port: int = 7860
    """TCP port to listen on."""
    share: bool = False
    """Create a public gradio.live link (off by default: uploads would leave this machine)."""
    max_file_mb: float = 20.0
    """Largest accepted upload per file, in MiB (checked by the server, not only by the browser)."""
    queue_max_size: int = 32
    """Most requests waiting in the queue; further requests are refused with a 'queue full' message."""
    concurrency_limit: int = 2
    """Requests processed at the same time per event (reading/plotting, answering)."""
    max_new_tokens: int = 64
    """Longest answer in tokens."""
    min_seconds: float = 5.0
    """Shortest accepted recording in seconds."""
    min_leads: int = 6
    """Fewest usable standard leads an uploaded ECG must have."""
    answer_time_limit_s: int = 120
    """An answer that takes longer than this is stopped."""


class ChatModel(Protocol):
    """The part of ``llm_finetune.inference.EcgChat`` the demo uses."""

    @property
    def label_names(self) -> list[str]: ...

    @property
    def encoder_config(self) -> Any: ...  # has .sampling_rate and .input_seconds

    def aux_probabilities(self, ecg_arrays: np.ndarray) -> np.ndarray: ...

    def answer(
        self,
        ecgs: Any,
        question: str,
        history: list[tuple[str, str]] | None = None,
        stream: bool = False,
        max_new_tokens: int = 64,
    ) -> Any: ...


def load_chat(model_dir: str | Path) -> ChatModel:
    """Load a stage-2 model directory, with a message saying how to make one if it is missing."""
    path = Path(model_dir)
    if path.is_dir() and not (path / "config.json").is_file() and (path / "model").is_dir():
        path = path / "model"  # a stage-2 run folder was given: its model lives in <run>/model
    if not path.is_dir():
        raise CheckpointError(
            f"No stage-2 model found at '{path}'. Create one with `ecgllm quickstart` (offline, trains a small "
            f"model on a synthetic cohort and writes {DEFAULT_MODEL_DIR}), or point --model_dir at the model "
            "folder of an `ecgllm finetune` run (<output_dir>/model)."
        )
    try:
        from llm_finetune.inference import EcgChat
    except ImportError as err:  # pragma: no cover - only when the package is broken
        raise ModelLoadError(f"The stage-2 inference module cannot be imported ({err}).") from err
    hint = (
        "Point --model_dir at the model folder of a finished `ecgllm finetune` run (<output_dir>/model), or "
        f"run `ecgllm quickstart` to create {DEFAULT_MODEL_DIR}."
    )
    try:
        return EcgChat.from_pretrained(path)
    except EcgLlmError as err:
        raise type(err)(f"{err} {hint}") from err
    except Exception as err:  # a folder that is not a (complete) stage-2 model
        raise CheckpointError(
            f"'{path}' could not be loaded as a stage-2 model ({type(err).__name__}: {str(err)[:300]}). {hint}"
        ) from err


# ------------------------------------------------------------------------------------------ formatting


def describe_ecg(ecg: Ecg) -> str:
    """Markdown summary of what was read: source, sampling rate, duration, leads, repairs and warnings."""
    meta = ecg.meta
    present = ecg.present_leads
    missing = [lead for lead in CANONICAL_LEADS if lead not in present]
    lines = [
        f"**Source:** {md_escape(meta.get('source', '?'))}",
        f"**Sampling rate:** {ecg.fs:g} Hz"
        + _original_fs_note(meta, ecg.fs)
        + f" · **Duration:** {ecg.duration_s:.1f} s",
        f"**Leads present ({len(present)}/12):** {', '.join(present) or 'none'}",
    ]
    if missing:
        lines.append(f"**Missing leads (zero-filled):** {', '.join(missing)}")
    if meta.get("flat_leads"):
        lines.append(f"**Flat leads:** {md_escape(', '.join(map(str, meta['flat_leads'])))}")
    if meta.get("dropped_leads"):
        lines.append(f"**Extra channels ignored:** {md_escape(', '.join(map(str, meta['dropped_leads'])))}")
    repairs = list(meta.get("repairs") or [])
    lines.append("**Repairs applied:** " + (md_escape("; ".join(map(str, repairs))) if repairs else "none"))
    for warning in meta.get("warnings") or []:
        lines.append(f"**Warning:** {md_escape(warning)}")
    return "  \n".join(lines)


def _original_fs_note(meta: dict, fs: float) -> str:
    original = meta.get("fs_original")
    return f" (resampled from {original:g} Hz)" if original and float(original) != float(fs) else ""


def _message_text(content: Any) -> str:
    """Text of a chatbot message content (a string or Gradio's list of content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", ""))
    if isinstance(content, (list, tuple)):
        return "".join(_message_text(part) for part in content)
    return ""


EVIDENCE_TITLE = "Evidence the model was given (aux head)"


def evidence_message(hints: list[str]) -> dict:
    """A collapsible chat message with the evidence lines the prompt carried (not part of the history)."""
    return {
        "role": "assistant",
        "content": "\n".join(f"- {md_escape(h)}" for h in hints),
        "metadata": {"title": EVIDENCE_TITLE, "status": "done"},
    }


def history_pairs(messages: list[dict]) -> list[tuple[str, str]]:
    """Chatbot messages -> the (question, answer) pairs ``EcgChat.answer`` takes as history (evidence messages
    left out)."""
    pairs: list[tuple[str, str]] = []
    question: str | None = None
    for message in messages or []:
        if (message.get("metadata") or {}).get("title") == EVIDENCE_TITLE:
            continue
        text = _message_text(message.get("content"))
        if message.get("role") == "user":
            question = text
        elif message.get("role") == "assistant" and question is not None:
            pairs.append((question, text))
            question = None
    return pairs


def _user_message(err: Exception) -> str:
    """The message to show for ``err``: an EcgLlmError's own text, else a generic one (and log it)."""
    if isinstance(err, EcgLlmError):
        text = str(err)
        if isinstance(err, EcgSamplingRateError) and "unknown" in text:
            text += " Enter the sampling rate (Hz) in the box next to the upload and press Enter."
        return text
    logger.exception("unexpected error in the demo", exc_info=err)
    return GENERIC_ERROR


def md_escape(text: object) -> str:
    """Escape Markdown/HTML characters in text that comes from a user's file (names, header fields)."""
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in str(text))


_MD_SPECIAL = frozenset("\\`*_{}[]()#+!|<>~$")


def _shown(message: str) -> str:
    """An error message for a Markdown box: user-derived text escaped, our own generic message as is."""
    return message if message == GENERIC_ERROR else md_escape(message)


def _status(text: str) -> str:
    return f"⚠️ {text}"


# ------------------------------------------------------------------------------------------ the app


class DemoHandlers:
    """The event handlers, bound to one chat model (plain methods, so tests can call them directly)."""

    def __init__(self, chat: ChatModel, cfg: DemoConfig) -> None:
        self.chat = chat
        self.cfg = cfg
        self.options = ReadOptions(
            max_file_bytes=int(cfg.max_file_mb * 2**20),
            min_duration_s=cfg.min_seconds,
            min_leads=cfg.min_leads,
        )

    def evidence(self, ecg: Ecg) -> dict[str, float]:
        """Aux head probabilities for one ECG (label -> probability, high first)."""
        from encoder.preprocess import model_input

        enc = self.chat.encoder_config
        num_samples = int(round(enc.sampling_rate * enc.input_seconds))
        x = model_input(ecg, int(enc.sampling_rate), num_samples, normalization=enc.input_normalization)[
            None
        ]  # (1, 12, T)
        probs = np.asarray(self.chat.aux_probabilities(x))[0]  # (L,)
        pairs = sorted(zip(self.chat.label_names, probs.tolist(), strict=True), key=lambda kv: -kv[1])
        return dict(pairs)

    def _loaded(self, ecg: Ecg, slot: str) -> tuple[Any, str, Any, Ecg, str]:
        title = f"ECG {slot}: {ecg.meta.get('source', '')}"
        plot = plot_12lead(ecg, title=title)
        probs = plot_label_probabilities(self.evidence(ecg), title=f"ECG {slot}: top findings (aux head)")
        source = md_escape(ecg.meta.get("source", ""))
        return plot, describe_ecg(ecg), probs, ecg, f"ECG {slot} loaded: {source}."

    def _failed(self, err: Exception, slot: str) -> tuple[Any, str, Any, None, str]:
        text = _user_message(err)
        gr.Warning(text)
        return None, "", None, None, _status(f"ECG {slot} could not be used. {_shown(text)}")

    def load_upload(self, files: list[str] | None, fs: float | None, slot: str) -> tuple:
        """Read uploaded files -> (12-lead plot, info, evidence plot, Ecg state, status)."""
        try:
            paths = [str(f) for f in (files or [])]
            fs_value = float(fs) if fs not in (None, "") and float(fs) > 0 else None
            return self._loaded(read_upload(paths, fs_value, self.options), slot)
        except Exception as err:  # noqa: BLE001 - every error becomes a message in the page
            return self._failed(err, slot)

    def load_example(self, name: str | None, slot: str) -> tuple:
        """Read a bundled example -> (12-lead plot, info, evidence plot, Ecg state, status)."""
        try:
            if not name:
                return None, "", None, None, f"ECG {slot} cleared."
            return self._loaded(read_example(name, self.options), slot)
        except Exception as err:  # noqa: BLE001
            return self._failed(err, slot)

    def clear(self, slot: str) -> tuple:
        return None, "", None, None, f"ECG {slot} cleared."

    def ask(
        self, question: str, messages: list[dict] | None, ecg_a: Ecg | None, ecg_b: Ecg | None
    ) -> Iterator[tuple]:
        """Stream an answer -> (chat messages, evidence plot A, evidence plot B, status, question box)."""
        messages = list(messages or [])
        question = (question or "").strip()
        if not question:
            yield messages, gr.skip(), gr.skip(), _status("Type a question first."), ""
            return
        ecgs = [e for e in (ecg_a, ecg_b) if e is not None]
        if not ecgs:
            yield (
                messages,
                gr.skip(),
                gr.skip(),
                _status("Load an ECG first (upload a file or pick an example)."),
                question,
            )
            return
        history = history_pairs(messages)
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": ""}]
        final = None
        try:
            stream = self.chat.answer(
                ecgs if len(ecgs) > 1 else ecgs[0],
                question,
                history=history,
                stream=True,
                max_new_tokens=self.cfg.max_new_tokens,
            )
            for part in stream:
                final = part
                messages[-1] = {"role": "assistant", "content": part.text}
                yield messages, gr.skip(), gr.skip(), "Answering…", ""
        except Exception as err:  # noqa: BLE001
            text = _user_message(err)
            messages[-1] = {"role": "assistant", "content": f"(no answer: {text})"}
            yield messages, gr.skip(), gr.skip(), _status(_shown(text)), ""
            return
        if final is None or not final.text.strip():
            messages[-1] = {"role": "assistant", "content": EMPTY_ANSWER}
        if final is not None and final.hints:
            messages.append(evidence_message(final.hints))
        plots: list[Any] = [gr.skip(), gr.skip()]
        if final is not None:
            slots = [s for s, e in zip(SLOTS, (ecg_a, ecg_b), strict=True) if e is not None]
            for slot, evidence in zip(slots, final.evidence, strict=False):
                plots[SLOTS.index(slot)] = plot_label_probabilities(
                    evidence, title=f"ECG {slot}: top findings (aux head)"
                )
        yield messages, plots[0], plots[1], "Answer complete.", ""


def _with_row(result: tuple, slot: str) -> tuple:
    """Append the visibility of the slot's output row: A's always shows, B's only while B is loaded."""
    return (*result, gr.Row(visible=slot == "A" or result[3] is not None))


def build_app(chat_or_model_dir: ChatModel | str | Path, cfg: DemoConfig | None = None) -> gr.Blocks:
    """Build the Gradio Blocks app around a loaded ``EcgChat`` (or a model directory to load)."""
    cfg = cfg or DemoConfig()
    chat = load_chat(chat_or_model_dir) if isinstance(chat_or_model_dir, (str, Path)) else chat_or_model_dir
    h = DemoHandlers(chat, cfg)

    with gr.Blocks(title="ecg-llm demo", delete_cache=(300, 1800)) as app:
        gr.Markdown("# ecg-llm: chat about a 12-lead ECG")
        gr.Markdown(DISCLAIMER, elem_id="disclaimer")
        status = gr.Markdown("Load an ECG to start: pick an example or upload a file.", elem_id="status")
        states = {s: gr.State(None) for s in SLOTS}
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                inputs = {slot: _ecg_inputs(slot) for slot in SLOTS}
            with gr.Column(scale=2, min_width=480):
                chatbot = gr.Chatbot(label="Chat", height=360, elem_id="chat")
                question = gr.Textbox(
                    label="Question",
                    placeholder="e.g. Does this ECG show symptoms of myocardial infarction?",
                    elem_id="question",
                )
                with gr.Row():
                    send = gr.Button("Ask", variant="primary", elem_id="ask")
                    clear_chat = gr.Button("Clear chat")
        outputs = {slot: _ecg_outputs(slot) for slot in SLOTS}
        for slot in SLOTS:
            _wire_loading(h, cfg, slot, inputs[slot], outputs[slot], states[slot], status)

        ask_inputs = [question, chatbot, states["A"], states["B"]]
        ask_outputs = [chatbot, outputs["A"]["probs"], outputs["B"]["probs"], status, question]
        for trigger, api_name in ((send.click, "ask"), (question.submit, None)):
            trigger(
                h.ask,
                ask_inputs,
                ask_outputs,
                api_name=api_name,
                api_visibility="public" if api_name else "private",
                concurrency_limit=cfg.concurrency_limit,
                concurrency_id="answer",
                # gradio's generated .pyi stubs of click/submit leave out time_limit, which the events accept
                time_limit=cfg.answer_time_limit_s,  # type: ignore[call-arg]
            )
        clear_chat.click(
            lambda: ([], "Chat cleared."), None, [chatbot, status], api_visibility="private", queue=False
        )
    return app


def _ecg_inputs(slot: str) -> dict[str, Any]:
    """One ECG slot's input group (example picker, file upload, sampling rate) in the current layout."""
    label = "ECG A" if slot == "A" else "ECG B (optional, for comparison questions)"
    with gr.Group():
        gr.Markdown(f"### {label}")
        example = gr.Dropdown(
            choices=list(EXAMPLES),
            value=None,
            label="Pick a bundled example",
            elem_id=f"example_{slot}",
        )
        files = gr.File(
            file_count="multiple",
            file_types=[".hea", ".dat", ".xyz", ".npy", ".csv"],
            label="…or upload: WFDB .hea + .dat together, or one .npy / .csv",
            elem_id=f"files_{slot}",
        )
        fs = gr.Number(
            value=None,
            label="Sampling rate in Hz, for .npy (and .csv without a time column); 0 = not given",
            elem_id=f"fs_{slot}",
        )
    return {"example": example, "files": files, "fs": fs}


def _ecg_outputs(slot: str) -> dict[str, Any]:
    """One ECG slot's output row (12-lead plot, record info, label probabilities); B's row starts hidden."""
    with gr.Row(visible=slot == "A") as row:  # ECG B's row appears once B is loaded
        with gr.Column(scale=3):
            plot = gr.Plot(show_label=False, format="png", elem_id=f"plot_{slot}")
        with gr.Column(scale=1, min_width=300):
            info = gr.Markdown("", elem_id=f"info_{slot}")
            probs = gr.Plot(show_label=False, format="png", elem_id=f"probs_{slot}")
    return {"plot": plot, "info": info, "probs": probs, "row": row}


def _wire_loading(
    h: DemoHandlers, cfg: DemoConfig, slot: str, ins: dict, outs: dict, state: Any, status: Any
) -> None:
    """Upload, sampling-rate submit, example pick and clear events of one slot."""
    targets = [outs["plot"], outs["info"], outs["probs"], state, status, outs["row"]]
    limit = cfg.concurrency_limit
    ins["files"].upload(
        lambda f, r, s=slot: _with_row(h.load_upload(f, r, s), s),
        [ins["files"], ins["fs"]],
        targets,
        api_name=f"load_upload_{slot.lower()}",
        concurrency_limit=limit,
        concurrency_id="read",
    )
    ins["fs"].submit(
        lambda f, r, s=slot: _with_row(h.load_upload(f, r, s), s),
        [ins["files"], ins["fs"]],
        targets,
        api_visibility="private",
        concurrency_limit=limit,
        concurrency_id="read",
    )
    ins["example"].input(
        lambda n, s=slot: _with_row(h.load_example(n, s), s),
        [ins["example"]],
        targets,
        api_name=f"load_example_{slot.lower()}",
        concurrency_limit=limit,
        concurrency_id="read",
    )
    ins["files"].clear(
        lambda s=slot: _with_row(h.clear(s), s), None, targets, api_visibility="private", queue=False
    )


def launch_app(app: gr.Blocks, cfg: DemoConfig, *, block: bool = True) -> str:
    """Queue (bounded) and launch ``app`` with the demo's safety settings; return the local URL."""
    app.queue(max_size=cfg.queue_max_size, default_concurrency_limit=cfg.concurrency_limit)
    app.launch(
        server_name=cfg.host,
        server_port=cfg.port,
        share=cfg.share,
        max_file_size=int(cfg.max_file_mb * 2**20),
        show_error=False,  # unexpected exceptions are handled in the handlers; never send tracebacks
        allowed_paths=[],
        blocked_paths=[str(Path(cfg.model_dir).resolve())],
        prevent_thread_lock=not block,
        quiet=True,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        footer_links=["api"],
    )
    return str(app.local_url)


@contextmanager
def serve(chat_or_model_dir: ChatModel | str | Path, cfg: DemoConfig) -> Iterator[tuple[gr.Blocks, str]]:
    """Run the demo in the background for the duration of a ``with`` block; yields ``(app, url)``.

    Uploads go into a private temporary folder (``GRADIO_TEMP_DIR``) that is deleted when the block ends;
    while it runs, uploads older than 30 min are deleted every 5 min (``delete_cache``). Uploads are not deleted
    right after reading: Gradio stores them by content, so another session may be using the same file.
    """
    upload_root = tempfile.mkdtemp(prefix="ecgllm-demo-")
    previous = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = upload_root
    app = None
    try:
        app = build_app(chat_or_model_dir, cfg)
        url = launch_app(app, cfg, block=False)
        yield app, url
    finally:
        if app is not None:
            app.close()
        if previous is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = previous
        shutil.rmtree(upload_root, ignore_errors=True)


def run_demo(cfg: DemoConfig) -> None:
    """Start the demo and serve until Ctrl-C (``ecgllm demo`` / ``python -m demo``)."""
    chat = load_chat(cfg.model_dir)  # fail early with a clear message, before any server starts

    def _stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C, so the upload folder is still deleted

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        with serve(chat, cfg) as (app, url):
            print(f"ecg-llm demo running at {url} (Ctrl-C to stop). Research software, not for diagnosis.")
            app.block_thread()  # returns on Ctrl-C / SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
