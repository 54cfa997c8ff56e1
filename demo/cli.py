"""Deprecated alias of :mod:`ecgllm.cli` (the CLI moved out of the demo package); will be removed.

``python -m demo.cli ...`` still works and warns; use ``ecgllm ...`` or ``python -m ecgllm ...``.
"""

from __future__ import annotations

import sys
import warnings

from ecgllm.cli import COMMANDS, DATA_COMMANDS, Command, build_parser, main

__all__ = ["COMMANDS", "DATA_COMMANDS", "Command", "build_parser", "main"]

if __name__ == "__main__":
    # Importing stays silent (console scripts installed before the move point here); running it warns.
    warnings.warn(
        "demo.cli moved to ecgllm.cli; run `ecgllm ...` or `python -m ecgllm ...` instead of "
        "`python -m demo.cli`.",
        FutureWarning,
        stacklevel=1,
    )
    sys.exit(main())
