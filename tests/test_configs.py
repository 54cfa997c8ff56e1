"""Every shipped YAML config loads into its dataclass, and real-data recipes fail fast with clear errors offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from encoder.ablation import AblationConfig
from encoder.config_io import load_config
from encoder.errors import DatasetError, EcgLlmError, ModelLoadError
from encoder.train import PretrainConfig
from llm_finetune.train import FinetuneConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# file-name prefix -> config dataclass (quickstart/pretrain.yaml and quickstart/finetune.yaml included)
CONFIG_CLASSES = {"pretrain": PretrainConfig, "finetune": FinetuneConfig, "ablation": AblationConfig}
YAMLS = sorted(p for p in CONFIGS.rglob("*.yaml") if "accelerate" not in p.parts)


def config_class(path: Path) -> type:
    prefix = path.stem.split("_")[0]
    assert prefix in CONFIG_CLASSES, (
        f"{path} has no known config class; name it pretrain_*/finetune_*/ablation_*"
    )
    return CONFIG_CLASSES[prefix]


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_yaml_config_loads_into_its_dataclass(path: Path) -> None:
    cfg = load_config(config_class(path), path)
    assert isinstance(cfg, config_class(path))


def test_all_recipes_are_covered() -> None:
    names = {str(p.relative_to(CONFIGS)) for p in YAMLS}
    for expected in (
        "pretrain_smoke.yaml",
        "pretrain_synthetic.yaml",
        "pretrain_ptbxl.yaml",
        "finetune_smoke.yaml",
        "finetune_synthetic.yaml",
        "quickstart/pretrain.yaml",
        "quickstart/finetune.yaml",
    ):
        assert expected in names
    assert (
        sum(
            n.startswith("finetune_") and n not in ("finetune_smoke.yaml", "finetune_synthetic.yaml")
            for n in names
        )
        >= 5
    )  # 7-8B medical LLM recipes


@pytest.mark.parametrize("name", ["single_gpu", "ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"])
def test_accelerate_configs_load(name: str) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(CONFIGS / "accelerate" / f"{name}.yaml"))
    assert cfg.num_processes >= 1 and str(cfg.distributed_type)


def test_unknown_key_in_a_config_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "pretrain_bad.yaml"
    bad.write_text((CONFIGS / "pretrain_smoke.yaml").read_text() + "\nepochz: 3\n")
    with pytest.raises(EcgLlmError, match="epochz"):
        load_config(PretrainConfig, bad)


@pytest.mark.parametrize(
    "path", [p for p in YAMLS if p.stem.startswith("pretrain_ptbxl")], ids=lambda p: p.stem
)
def test_real_ptbxl_recipe_checks_its_data_path(path: Path) -> None:
    """The PTB-XL recipes point at /path/to/...: the loader says which file is missing instead of crashing."""
    from encoder.datasets.ptbxl import PtbXl

    cfg = load_config(PretrainConfig, path)
    assert not Path(cfg.data_dir).exists()
    with pytest.raises(DatasetError, match="ptbxl_database.csv|does not exist|not found"):
        PtbXl(cfg.data_dir, task=cfg.task, sampling_rate=cfg.sampling_rate)


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in YAMLS
        if p.stem.startswith("finetune_")
        and p.stem
        not in ("finetune_smoke", "finetune_synthetic", "finetune_gemma3_270m")  # packaged, not hub
    ],
    ids=lambda p: p.stem,
)
def test_medical_llm_recipes_name_a_hub_model_and_fail_clearly_offline(path: Path) -> None:
    from bridge.llm import resolve_llm

    cfg = load_config(FinetuneConfig, path)
    name = cfg.model.llm
    assert name.count("/") == 1, name  # a hub id (owner/name)
    assert cfg.model.quantization in ("4bit", "8bit", "none")
    with pytest.raises(ModelLoadError, match="local|download"):
        resolve_llm(name)  # offline and not cached: a clear message, no download attempt
