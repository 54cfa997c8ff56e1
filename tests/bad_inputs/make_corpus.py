"""Write the bad-input corpus to a folder: ``python tests/bad_inputs/make_corpus.py OUT_DIR``.

Prints one line per entry (name, expectation, path) so the corpus can be fed to the CLI or the demo by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    from corpus import iter_bad_inputs  # run as a script from any folder
else:
    from .corpus import iter_bad_inputs


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: make_corpus.py OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    if out.exists() and any(out.iterdir()):
        print(f"{out} is not empty; choose a new folder", file=sys.stderr)
        return 2
    for case in iter_bad_inputs(out):
        kwargs = f" {case.read_kwargs}" if case.read_kwargs else ""
        print(f"{case.name:22s} {case.expect:17s} {case.path}{kwargs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
