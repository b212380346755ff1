"""``birkhoff`` is mypy-clean under the configuration in pyproject.toml ([tool.mypy])."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_mypy_is_clean_on_birkhoff():
    # cold, and writing no cache (mypy documents --cache-dir /dev/null for that): no later run would read it
    run = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", os.devnull],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "Success: no issues found" in run.stdout
