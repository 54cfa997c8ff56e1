"""The ``ecgllm`` command line: help texts, config overrides, clean errors on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from demo.cli import COMMANDS, DATA_COMMANDS, main

S0010 = Path(__file__).resolve().parents[1] / "encoder" / "resources" / "wfdb" / "s0010_re.hea"


@pytest.mark.parametrize(
    "argv", [[name, "--help"] for name in COMMANDS] + [["data", n, "--help"] for n in DATA_COMMANDS]
)
def test_every_subcommand_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--config" in out
    # Every option carries the docstring of its config field, not just a type.
    options = [line for line in out.splitlines() if line.strip().startswith("--") and "(type:" in line]
    assert all("(type:" in line and line.split("(type:")[0].split(maxsplit=2)[-1].strip() for line in options)


def test_inspect_reads_real_record(capsys):
    assert main(["inspect", "--path", str(S0010), "--target_fs", "100"]) == 0
    out = capsys.readouterr().out
    assert "100 Hz" in out and "V6" in out and "missing:     none" in out


def test_inspect_mitbih_masks_missing_leads(capsys):
    path = Path(__file__).parent / "data" / "wfdb" / "100.hea"
    assert main(["inspect", "--path", str(path)]) == 0
    out = capsys.readouterr().out
    assert "missing:" in out and "aVR" in out.split("missing:")[1]
    assert main(["inspect", "--path", str(path), "--min_leads", "12"]) == 2
    assert "12" in capsys.readouterr().err


def test_bad_input_corpus_through_cli(bad_inputs, capsys):
    """Every corpus entry: exit code 2 with a one-line 'error:' message, or accepted with its flag printed."""
    for case in bad_inputs:
        argv = ["inspect", "--path", str(case.path)]
        for key, value in case.read_kwargs.items():
            argv += [f"--{key}", str(value)]
        code = main(argv)
        captured = capsys.readouterr()
        if case.expect == "error":
            assert code == 2, case.name
            assert captured.err.startswith("error: "), case.name
            assert "Traceback" not in captured.err, case.name
        else:
            assert code == 0, (case.name, captured.err)


def test_console_script_reports_errors_without_traceback(tmp_path):
    bogus = tmp_path / "x.dat"
    bogus.write_text("this is a text file renamed to .dat\n" * 50)
    exe = Path(sys.executable).with_name("ecgllm")
    proc = subprocess.run(
        [str(exe), "inspect", "--path", str(bogus)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr


def test_python_dash_m_ecgllm_runs_the_cli(tmp_path):
    bogus = tmp_path / "x.dat"
    bogus.write_text("this is a text file renamed to .dat\n" * 50)
    proc = subprocess.run(
        [sys.executable, "-m", "ecgllm", "inspect", "--path", str(bogus)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr
