"""Running the command line inside a test."""

from __future__ import annotations

from mhsafety.cli import main

# Baseline settings that keep a training run to a second: one C, two inner folds.
FAST = ["--config", "c_grid=[1.0]", "--config", "inner_folds=2"]


def run(argv, capsys) -> tuple[int, str, str]:
    """Run the CLI; returns (exit code, stdout, stderr)."""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err
