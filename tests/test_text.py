"""Text tower: pooling registry, packaged offline model, unique-text cache (memory + safetensors), errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from encoder.errors import ConfigError, ModelLoadError
from encoder.labels import ScpStatements, label_text
from encoder.text import (
    POOLERS,
    TextFeatureTable,
    TextTower,
    TextTowerConfig,
    cls_pool,
    last_token_pool,
    mean_pool,
    resolve_text_model,
)


@pytest.fixture(scope="module")
def tower(tmp_path_factory: pytest.TempPathFactory) -> TextTower:
    return TextTower(TextTowerConfig(cache_dir=str(tmp_path_factory.mktemp("text_cache"))))


def test_poolers_on_known_tensors() -> None:
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)  # (N, S, H)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    torch.testing.assert_close(mean_pool(hidden, right)[0], hidden[0, :2].mean(0))
    torch.testing.assert_close(mean_pool(hidden, right)[1], hidden[1].mean(0))
    torch.testing.assert_close(cls_pool(hidden, right), hidden[:, 0])
    torch.testing.assert_close(last_token_pool(hidden, right), torch.stack([hidden[0, 1], hidden[1, 3]]))
    torch.testing.assert_close(last_token_pool(hidden, left), torch.stack([hidden[0, 3], hidden[1, 3]]))
    assert set(POOLERS) == {"mean", "cls", "last"}


def test_packaged_model_resolves_to_a_local_folder() -> None:
    path = Path(resolve_text_model("packaged:all-minilm-l6-v2"))
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    with pytest.raises(ConfigError):
        resolve_text_model("packaged:does-not-exist")


def test_missing_model_raises_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not available locally"):
        TextTower(TextTowerConfig(model="someone/definitely-not-cached-model-xyz"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="config.json"):
        TextTower(TextTowerConfig(model=str(tmp_path / "empty")))
    with pytest.raises(ConfigError):
        TextTower(TextTowerConfig(pooling="max"))


def test_embeddings_are_meaningful_and_deterministic(tower: TextTower) -> None:
    texts = ["Sinus rhythm. Normal ECG.", "Atrial fibrillation.", "Sinus rhythm. Normal ECG."]
    emb = tower.encode_unique(texts)
    assert emb.shape == (3, 384) and emb.dtype == torch.float32
    torch.testing.assert_close(emb[0], emb[2])
    direct = tower([texts[1]])[0]
    torch.testing.assert_close(emb[1], direct, rtol=1e-4, atol=1e-5)
    cos = torch.nn.functional.cosine_similarity
    near = tower.encode_unique(["Normal sinus rhythm, normal ECG."])[0]
    assert cos(emb[0], near, dim=0) > cos(emb[1], near, dim=0)


def test_unique_texts_are_encoded_once_and_cached_on_disk(tower: TextTower, monkeypatch) -> None:
    calls: list[int] = []
    original = tower._encode_batched

    def counting(texts):
        calls.append(len(texts))
        return original(texts)

    monkeypatch.setattr(tower, "_encode_batched", counting)
    texts = ["a wide QRS", "left bundle branch block", "a wide QRS"] * 50
    first = tower.encode_unique(texts)
    assert calls == [2]  # 150 texts, 2 unique, one pass
    tower.encode_unique(texts)
    assert calls == [2]  # memory cache
    files = list((Path(tower.cfg.cache_dir) / tower.model_key()).glob("*.safetensors"))
    assert files
    tower._memory.clear()  # a new process: the disk cache answers
    again = tower.encode_unique(texts)
    assert calls == [2]
    torch.testing.assert_close(first, again)
    table = TextFeatureTable(tower, texts)
    assert table.table.shape == (2, 384)
    torch.testing.assert_close(table.features(torch.tensor([0, 1, 2])), first[:3])


def test_knowledge_and_code_text_switch() -> None:
    st = ScpStatements.load()
    know = label_text(["IMI", "SR"], st, "knowledge")
    codes = label_text(["IMI", "SR"], st, "codes")
    assert "IMI" in codes and "SR" in codes
    assert "infarction" in know.lower() and "IMI" not in know


def test_lora_tower_trains_only_adapters() -> None:
    t = TextTower(TextTowerConfig(train_mode="lora", lora_r=2, lora_target_modules=["query", "value"]))
    trainable = [n for n, p in t.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    out = t(["sinus rhythm"])
    out.sum().backward()
    assert any(p.grad is not None for n, p in t.named_parameters() if "lora_" in n)
