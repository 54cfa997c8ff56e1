"""The ``ecgllm`` command line: one entry point, one subcommand per job.

Every subcommand is a config dataclass plus a ``run_*`` function living next to the code it drives; this file
only wires them together with jsonargparse, so ``--config file.yaml`` and ``--key value`` overrides work the same
everywhere and ``--help`` shows each field's docstring.
"""

from __future__ import annotations

import importlib
import logging
import sys
import typing
from collections.abc import Sequence
from dataclasses import dataclass

from jsonargparse import ArgumentParser, set_parsing_settings

from encoder.cli_support import command_parser, run_parsed


@dataclass(frozen=True)
class Command:
    """A subcommand: where its config dataclass and run function live."""

    module: str
    config: str
    run: str
    help: str


# name -> Command; "data" groups the data-layer subcommands.
COMMANDS: dict[str, Command] = {
    "quickstart": Command(
        "llm_finetune.quickstart",
        "QuickstartConfig",
        "run_quickstart",
        "Offline end-to-end run: synthetic cohort -> stage 1 -> stage 2 -> VQA evaluation -> report.md.",
    ),
    "inspect": Command(
        "encoder.inspect_record",
        "InspectConfig",
        "run_inspect",
        "Read one ECG file and print what was found.",
    ),
    "pretrain": Command(
        "encoder.train", "PretrainConfig", "run_pretrain", "Stage 1: Jaccard-SigLIP ECG-text pretraining."
    ),
    "evaluate": Command(
        "encoder.evaluate", "EvaluateConfig", "run_evaluate", "Stage 1: evaluate an encoder on the test fold."
    ),
    "ablate": Command(
        "encoder.ablation",
        "AblationConfig",
        "run_ablation",
        "Stage 1: loss / size / crop / text ablation grid.",
    ),
    "finetune": Command(
        "llm_finetune.train", "FinetuneConfig", "run_finetune", "Stage 2: projector + LoRA fine-tuning."
    ),
    "chat": Command("llm_finetune.chat_cli", "ChatConfig", "run_chat", "Terminal chat about an ECG record."),
    "eval-vqa": Command(
        "llm_finetune.vqa.evaluate", "EvalVqaConfig", "run_eval_vqa", "ECG-QA benchmark evaluation."
    ),
    "demo": Command("demo.app", "DemoConfig", "run_demo", "Start the Gradio chat demo on 127.0.0.1."),
}
DATA_COMMANDS: dict[str, Command] = {
    "synth": Command(
        "encoder.datasets.synthetic",
        "SyntheticConfig",
        "generate_cohort",
        "Generate the synthetic PTB-XL-format cohort.",
    ),
    "cache": Command(
        "encoder.datasets.cache",
        "BuildCacheConfig",
        "run_build_cache",
        "Build the memory-mapped signal cache.",
    ),
    "stats": Command("encoder.datasets.stats", "DataStatsConfig", "run_stats", "Print dataset statistics."),
    "realism": Command(
        "encoder.realism", "RealismConfig", "run_realism", "Compare synthetic ECGs with real ones."
    ),
}


def _load(command: Command) -> tuple[type, typing.Callable]:
    module = importlib.import_module(command.module)
    return getattr(module, command.config), getattr(module, command.run)


def _subparser(command: Command) -> ArgumentParser:
    config_cls, _ = _load(command)
    return command_parser(config_cls, description=command.help)


def build_parser(argv: Sequence[str] = ()) -> ArgumentParser:
    """The full parser; only the subcommand named in ``argv`` imports its module (keeps ``--help`` fast)."""
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    words = [a for a in argv if not a.startswith("-")]
    chosen = words[0] if words else None
    chosen_data = words[1] if len(words) > 1 and chosen == "data" else None

    def sub(command: Command, selected: bool) -> ArgumentParser:
        return _subparser(command) if selected else ArgumentParser(description=command.help)

    parser = ArgumentParser(prog="ecgllm", description="Put 12-lead ECGs into large language models.")
    subcommands = parser.add_subcommands(dest="command")
    for name, command in COMMANDS.items():
        subcommands.add_subcommand(name, sub(command, name == chosen), help=command.help)
    data = ArgumentParser(description="Data layer: synthetic cohort, cache, statistics, realism.")
    subcommands.add_subcommand("data", data, help="Data layer: synth | cache | stats | realism.")
    data_subcommands = data.add_subcommands(dest="data_command")
    for name, command in DATA_COMMANDS.items():
        data_subcommands.add_subcommand(name, sub(command, name == chosen_data), help=command.help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    ns = build_parser(argv).parse_args(argv)
    if ns.command == "data":
        command, sub = DATA_COMMANDS[ns.data.data_command], ns.data[ns.data.data_command]
    else:
        command, sub = COMMANDS[ns.command], ns[ns.command]
    config_cls, run = _load(command)
    return run_parsed(config_cls, run, sub)


if __name__ == "__main__":
    sys.exit(main())
