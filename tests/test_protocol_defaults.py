"""Benchmarks choose on the valid split by default (test only for a labelled headline run)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_aux_head_benchmark_scores_valid_by_default():
    src = (ROOT / "benchmarks" / "aux_head_vqa.py").read_text()
    default = re.search(r'"--splits",[^)]*default=(\[[^\]]*\])', src, re.S)
    assert default is not None and default.group(1) == '["valid"]'


def test_stage2_variants_scores_valid_by_default_and_refuses_other_splits():
    src = (ROOT / "benchmarks" / "stage2_variants.sh").read_text()
    assert "SPLIT=${SPLIT:-valid}" in src and 'split="test"' not in src
    bad = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "stage2_variants.sh")],
        env={"SPLIT": "train", "ENCODER": "x", "PY": sys.executable, "OUT": "/nonexistent/x", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "SPLIT must be valid or test" in bad.stdout
