"""The README's speed figures are generated from bench/results/: they must agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_readme_quotes_the_committed_benchmark_results() -> None:
    check = subprocess.run(
        [sys.executable, str(REPO / "bench" / "readme_speed.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
