"""Imports point down the stack only: birkhoff < gpu < reference < {proofs_checks, benchmarks}.

Every import counts, also one inside a function. ``birkhoff`` imports neither torch nor triton.
"""

import ast
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYER = {"birkhoff": 0, "gpu": 1, "reference": 2, "proofs_checks": 3, "benchmarks": 3}
FORBIDDEN = {"birkhoff": {"torch", "triton"}, "gpu": {"reference"}}


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module.split(".")[0]


def _sources(pkg: str):
    """The package's ``.py`` files; hidden folders (a virtualenv, caches) are not walked."""
    found = []
    for folder, dirs, files in os.walk(ROOT / pkg):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / f for f in files if f.endswith(".py")]
    return sorted(found)


@pytest.mark.parametrize("pkg", sorted(LAYER))
def test_imports_point_down(pkg):
    bad = [f"{p.relative_to(ROOT)}:{line}: {pkg} imports {mod}"
           for p in _sources(pkg) for line, mod in _imports(p)
           if (mod in LAYER and mod != pkg and LAYER[mod] >= LAYER[pkg] and not LAYER[mod] == LAYER[pkg] == 3)
           or mod in FORBIDDEN.get(pkg, ())]
    assert not bad, "\n".join(bad)


def test_studies_read_runs_through_one_module():
    """Only reference/lab/runs.py and reference/checkpoint.py call torch.load / torch.save or name run files."""
    owners = {"runs.py", "checkpoint.py"}
    files = {"config.json", "metrics.jsonl", "summary.json", "ckpt.pt"}
    for p in _sources("reference"):
        if p.name in owners:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                assert (node.value.id, node.attr) not in {("torch", "load"), ("torch", "save")}, p
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value not in files, f"{p} names {node.value}"


def _relative_target(path: Path, node: ast.ImportFrom) -> str:
    """The dotted module an ``ImportFrom`` in ``path`` names, relative imports resolved."""
    if node.level == 0:
        return node.module or ""
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def test_the_model_imports_nothing_of_the_laboratory():
    """Inside ``reference``, the model (every module outside ``reference/lab/``) imports nothing of
    the laboratory (``reference.lab``), relative or absolute, also inside a function; and
    ``import reference`` (the model API) loads none of it."""
    import subprocess
    import sys

    lab = ROOT / "reference" / "lab"
    model = [p for p in _sources("reference") if lab not in p.parents]
    assert {"hyper.py", "mixers.py", "models.py", "train.py"} <= {p.name for p in model}
    bad = []
    for p in model:
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [_relative_target(p, node)] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{p.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.startswith("reference.lab")]
    # the one exception: reference/train.py, the command line ``python -m reference.train``, runs the lab's trainer
    launcher = [b for b in bad if b.startswith("reference/train.py:")]
    assert [b.split(": ")[1] for b in launcher] == ["reference.lab.train"], launcher
    assert not set(bad) - set(launcher), "\n".join(bad)

    code = "import sys, reference; print(' '.join(sorted(m for m in sys.modules if m.startswith('reference.'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert loaded and not {m for m in loaded if m.startswith("reference.lab")}, loaded
    import reference

    assert {"HyperConnected", "expand_streams", "reduce_streams", "monitor", "Model", "MIXERS"} <= set(
        reference.__all__)
