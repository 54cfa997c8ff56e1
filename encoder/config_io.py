"""Save the resolved configuration next to every output, and read it back."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


def to_plain(obj: Any) -> Any:
    """Dataclasses / paths / tuples -> YAML-safe builtins."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder + rename (never a half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_resolved_config(cfg: Any, out_dir: str | os.PathLike, name: str = "config.yaml") -> Path:
    """Write the fully resolved config (a dataclass or dict) as YAML into ``out_dir``."""
    path = Path(out_dir) / name
    atomic_write_text(path, yaml.safe_dump(to_plain(cfg), sort_keys=False))
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(to_plain(obj), indent=2))


def namespace_to_dataclass(cls: type, values: Any) -> Any:
    """Build dataclass ``cls`` from a parsed jsonargparse namespace or a dict (recursing into nested dataclasses)."""
    if hasattr(values, "as_dict"):
        values = values.as_dict()
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value, nested = values[f.name], _dataclass_in(hints[f.name])
        if nested is not None and isinstance(value, dict):
            value = namespace_to_dataclass(nested, value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass type a field's type hint names (itself, or a member of a union such as ``X | None``)."""
    candidates = (
        typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    )
    return next((c for c in candidates if isinstance(c, type) and dataclasses.is_dataclass(c)), None)


def load_config(cls: type, path: str | os.PathLike | None = None, **overrides: Any) -> Any:
    """Load dataclass ``cls`` from a YAML file plus keyword overrides, with the CLI's parsing and validation."""
    from jsonargparse import ArgumentParser, set_parsing_settings

    from encoder.errors import ConfigError

    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, nested_key=None, as_group=False)
    try:
        values = (yaml.safe_load(Path(path).read_text()) or {}) if path else {}
        for key, value in overrides.items():  # dotted keys reach into nested configs: "text.model=..."
            *parents, leaf = key.split(".")
            node = values
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = value
        cfg = parser.parse_object(values)
    except FileNotFoundError as err:
        raise ConfigError(f"Config file not found: {path}") from err
    except Exception as err:  # jsonargparse reports unknown keys / wrong types here
        raise ConfigError(f"Invalid config for {cls.__name__} ({path or 'defaults'}): {err}") from err
    return namespace_to_dataclass(cls, cfg)


@contextlib.contextmanager
def atomic_directory(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder next to ``dest``; on success rename it to ``dest``, on any error delete it.

    Readers never see a half-written folder: ``dest`` appears complete or not at all.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --- per-field rules ---------------------------------------------------------------------------------------------
_BOUNDS = {
    "ge": (lambda v, b: v >= b, ">="),
    "gt": (lambda v, b: v > b, ">"),
    "le": (lambda v, b: v <= b, "<="),
    "lt": (lambda v, b: v < b, "<"),
}


def check_config(cfg: Any, prefix: str = "") -> None:
    """Check a config dataclass against its own annotations; raise ``ConfigError`` naming the field.

    One place for the rules every config shares, so no config writes them by hand:

    * ``Literal[...]`` fields (also inside ``Optional`` / ``list``) must hold one of their choices (jsonargparse
      shows the same choices in ``--help`` and refuses others on the command line; this also covers configs built
      in Python);
    * numeric bounds in field metadata: ``field(default=1, metadata={"ge": 1})`` (``ge``/``gt``/``le``/``lt``);
    * nested config dataclasses are checked too (dotted names in the message).

    Call it from ``__post_init__``.
    """
    from encoder.errors import ConfigError

    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value, name = getattr(cfg, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_config(value, f"{name}.")
            continue
        choices = _literal_choices(hints.get(f.name))
        items = value if isinstance(value, (list, tuple)) else [value]
        if choices is not None and value is not None:
            bad = [v for v in items if v not in choices]
            if bad:
                raise ConfigError(
                    f"{name}={bad[0]!r} is not allowed; choose one of {', '.join(map(str, choices))}."
                )
        for key, (ok, sign) in _BOUNDS.items():
            bound = f.metadata.get(key)
            if bound is None or value is None:
                continue
            for v in items:
                if isinstance(v, (int, float)) and not ok(v, bound):
                    raise ConfigError(f"{name} must be {sign} {bound}, got {v!r}.")


def _literal_choices(hint: Any) -> tuple | None:
    """The choices of a ``Literal`` hint, also under ``Optional[...]`` / ``list[...]`` / ``X | None``."""
    if hint is None:
        return None
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType, list, tuple):
        for arg in typing.get_args(hint):
            found = _literal_choices(arg)
            if found is not None:
                return found
    return None


def resume_free_fields(cls: type, prefix: str = "") -> frozenset[str]:
    """Dotted names of the fields marked ``metadata={"resume_free": True}`` (recursing into nested dataclasses):
    settings a resumed run may change because they do not shape the weights."""
    hints = typing.get_type_hints(cls)
    out: set[str] = set()
    for f in dataclasses.fields(cls):
        if f.metadata.get("resume_free"):
            out.add(f"{prefix}{f.name}")
        nested = _dataclass_in(hints.get(f.name))
        if nested is not None:
            out |= resume_free_fields(nested, f"{prefix}{f.name}.")
    return frozenset(out)
