"""Run one config-driven job from the command line: ``--config file.yaml`` plus ``--key value`` overrides.

Every job in the library is a config dataclass plus a ``run_*`` function. :func:`command_parser` builds the
jsonargparse parser for one of them (``--help`` shows each field's docstring and ``Literal`` choices) and
:func:`run_command` parses, runs and turns the library's own errors into one ``error: ...`` line and exit code 2.
The ``ecgllm`` CLI (``ecgllm/cli.py``) and the launchable training modules
(``accelerate launch -m llm_finetune.train ...``) both use it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from jsonargparse import ActionConfigFile, ArgumentParser, set_parsing_settings

from encoder.config_io import namespace_to_dataclass
from encoder.engine.distributed import shutdown_process_group
from encoder.errors import EcgLlmError


def command_parser(config_cls: type, description: str = "", prog: str | None = None) -> ArgumentParser:
    """The parser of one job: ``--config`` (YAML) plus one option per config field (nested with dots)."""
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    parser = ArgumentParser(prog=prog, description=description or (config_cls.__doc__ or "").strip())
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with any of the options below.")
    parser.add_class_arguments(config_cls, nested_key=None, as_group=False)
    return parser


def run_parsed(config_cls: type, run: Callable[[Any], Any], namespace: Any) -> int:
    """Build the config from a parsed namespace and run the job; library errors -> ``error:`` line, exit 2."""
    values = namespace.clone()
    values.pop("config", None)
    try:
        run(namespace_to_dataclass(config_cls, values))
    except EcgLlmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def run_command(
    config_cls: type, run: Callable[[Any], Any], argv: Sequence[str] | None = None, prog: str | None = None
) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) for ``config_cls`` and run ``run``; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = command_parser(config_cls, prog=prog)
    code = 1
    try:
        code = run_parsed(config_cls, run, parser.parse_args(list(sys.argv[1:] if argv is None else argv)))
    finally:
        shutdown_process_group(wait=code == 0)
    return code
