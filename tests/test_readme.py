"""Every code block of the README runs as written, in the environment a reader has (no variable this
suite's conftest sets, a fresh folder); every Python block of docs/GUIDE.md runs too."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)
GUIDE = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "GUIDE.md").read_text(), flags=re.S)
SETUP = "make demo"            # the first block: the two set-up commands (the suite is one of them)


def reader_env() -> dict[str, str]:
    """The caller's environment less what conftest or pytest set, with the venv's scripts on PATH."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TRITON_INTERPRET", "HYPOTHESIS_PROFILE") and not k.startswith("PYTEST")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_readme_is_short_and_has_a_block_per_use():
    assert len(README.splitlines()) <= 200
    kinds = [k for k, _ in BLOCKS]
    assert kinds.count("python") >= 4 and kinds.count("bash") >= 3 and BLOCKS[0][1].startswith(SETUP)
    for shown in ("hook.observe(", "check_sinkhorn("):            # the training hook, the conformance API
        block = next(code for _, code in BLOCKS if shown in code)
        assert len([line for line in block.splitlines() if line.strip()]) <= 10, block


@pytest.mark.parametrize("kind, code", [pytest.param(k, c, marks=[pytest.mark.slow] if "reference." in c else [])
                                        for k, c in BLOCKS], ids=[f"block{i}-{k}" for i, (k, _) in enumerate(BLOCKS)])
def test_readme_block_runs_as_written(tmp_path, kind, code):
    if code.startswith(SETUP):               # make test is this suite: check that both targets resolve
        for line in code.splitlines():
            target = line.split("#")[0].split()[1] if line.startswith("make ") else None
            if target:
                dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
                assert dry.returncode == 0, dry.stderr
        return
    if kind == "bash" and code.lstrip().startswith("python3 -m venv"):
        return                               # the install-by-hand line: what the bootstrap runs (above)
    command = [sys.executable, "-c", code] if kind == "python" else ["bash", "-e", "-c", code]
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=reader_env(), timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]


@pytest.mark.parametrize("code", GUIDE, ids=[f"guide{i}" for i in range(len(GUIDE))])
def test_guide_block_runs(code):
    exec(compile(code, "docs/GUIDE.md", "exec"), {})
