"""LLM resolution and loading: packaged models, clear errors, 4-bit through bitsandbytes with fallback."""

import pytest
import torch

from bridge.llm import check_device, find_lora_targets, load_llm, resolve_llm
from encoder.errors import ConfigError, ModelLoadError


def test_tiny_packaged_model_resolves_once(tmp_path, monkeypatch):
    monkeypatch.setenv("ECGLLM_CACHE", str(tmp_path))
    first = resolve_llm("packaged:tiny-random-llama")
    stamp = (first / "config.json").stat().st_mtime_ns
    assert resolve_llm("packaged:tiny-random-llama") == first
    assert (first / "config.json").stat().st_mtime_ns == stamp
    assert not [p for p in first.parent.glob(".tiny-random-llama*") if p.is_dir()]  # no temp dirs left
    model, tok = load_llm(first)
    assert tok.chat_template and tok.pad_token is not None
    assert find_lora_targets(model) == [
        "down_proj",
        "gate_proj",
        "k_proj",
        "o_proj",
        "q_proj",
        "up_proj",
        "v_proj",
    ]


def test_unknown_names_raise_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="packaged"):
        resolve_llm("packaged:gpt-17")
    with pytest.raises(ModelLoadError, match="not on this machine"):
        resolve_llm("nobody-here/not-a-model-xyz")
    with pytest.raises(ModelLoadError, match="config.json"):
        resolve_llm(tmp_path)
    with pytest.raises(ModelLoadError):
        resolve_llm(tmp_path / "missing" / "dir")
    with pytest.raises(ConfigError, match="quantization"):
        load_llm("packaged:tiny-random-llama", quantization="3bit")
    with pytest.raises(ConfigError, match="dtype"):
        load_llm("packaged:tiny-random-llama", dtype="float8")


def test_devices_this_machine_lacks_are_refused_clearly(monkeypatch):
    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="Unknown device"):
        check_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU; use cpu"):
        check_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert check_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ConfigError, match="only 1 CUDA"):
        check_device("cuda:3")


def test_4bit_loads_with_bitsandbytes_on_cpu():
    import bitsandbytes as bnb

    model, _ = load_llm("packaged:tiny-random-llama", quantization="4bit", dtype="float32")
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    out = model(torch.tensor([[1, 2, 3]]))
    assert torch.isfinite(out.logits).all()


def test_quantization_failure_falls_back_with_a_warning(monkeypatch):
    from transformers import AutoModelForCausalLM

    real = AutoModelForCausalLM.from_pretrained

    def fake(path, *args, **kwargs):
        if kwargs.get("quantization_config") is not None:
            raise RuntimeError("bitsandbytes backend not available")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", fake)
    with pytest.warns(UserWarning, match="Falling back"):
        model, _ = load_llm("packaged:tiny-random-llama", quantization="4bit", dtype="float32")
    assert next(model.parameters()).dtype == torch.float32
    with pytest.raises(ModelLoadError, match="quantization='none'"):
        load_llm("packaged:tiny-random-llama", quantization="4bit", quantization_fallback=False)


@pytest.mark.slow
def test_packaged_smollm2_converts_and_loads():
    path = resolve_llm("packaged:smollm2-135m-instruct")
    assert (path / "model.safetensors").is_file() and "Apache-2.0" in (path / "SOURCE.txt").read_text()
    model, tok = load_llm(path)
    assert model.config.hidden_size == 576 and tok.chat_template
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "Say yes."}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
    out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > ids.shape[1]
