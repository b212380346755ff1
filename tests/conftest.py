import os
import warnings

# One pytest-xdist worker per core: each worker's torch (and the subprocesses it starts) gets its share of
# the cores, not all of them (2 workers x 2 OpenMP threads on 2 cores spun against each other: 230 s -> 150-170 s).
# Cores as -n auto counts them: those this process may run on (a container's CPU limit), not the host's.
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _CORES // _WORKERS)))

import pytest


def pytest_configure(config):
    """Where tests run (a pytest-xdist worker, or a run without workers): GPU kernels under Triton's
    interpreter on machines without CUDA (set before any triton import), and the hypothesis profile.
    The controller of ``-n`` workers runs no test, so it imports neither torch nor hypothesis."""
    if getattr(config, "workerinput", None) is None and getattr(config.option, "numprocesses", None):
        return
    try:
        import torch
        if not torch.cuda.is_available():
            os.environ.setdefault("TRITON_INTERPRET", "1")
    except ImportError:  # pragma: no cover
        pass
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "default", deadline=None, max_examples=60,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile(
        "ci", parent=settings.get_profile("default"), derandomize=True, print_blob=True)
    settings.register_profile("stress", parent=settings.get_profile("default"), max_examples=1000)   # for notes
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default"))


def pytest_addoption(parser):
    parser.addoption("--heavy", action="store_true", default=os.environ.get("HEAVY", "") not in ("", "0"),
                     help="also run the tests marked heavy (`make test HEAVY=1`; the environment's HEAVY=1 too)")


def pytest_terminal_summary(terminalreporter, config):
    if not config.getoption("--heavy"):
        terminalreporter.write_line("heavy variants deselected: `make test HEAVY=1` (pytest --heavy) runs them too")


@pytest.hookimpl(trylast=True)                  # after pytest-xdist's hook, which names each item's group
def pytest_collection_modifyitems(config, items):
    """Tests marked ``heavy`` (a larger variant of a test that runs by default) are deselected, not
    skipped, unless ``--heavy`` (a line at the end of the run says so). Tests marked ``slow`` go first
    (the longest jobs first: pytest-xdist's workers then finish at about the same time). Under
    ``--dist loadgroup``, a warning when pytest-xdist did not group the ``xdist_group`` tests."""
    if getattr(config.option, "loadgroup", False) and any(
            item.get_closest_marker("xdist_group") and "@" not in item.nodeid for item in items):
        warnings.warn("pytest-xdist did not group the xdist_group tests (pytest 9.2 with pytest-xdist 3.8, "
                      "pytest-xdist#1386): the workers may compile the same kernels twice; make test installs "
                      "pytest<9.2", pytest.PytestConfigWarning, stacklevel=1)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)       # stable: the same order on every worker
    if config.getoption("--heavy"):
        return
    heavy = [item for item in items if item.get_closest_marker("heavy")]
    if heavy:
        config.hook.pytest_deselected(items=heavy)
        items[:] = [item for item in items if not item.get_closest_marker("heavy")]


@pytest.fixture(autouse=True)
def _cuda_marked_tests_on_cuda(request):
    """Tests marked ``cuda`` build their tensors where the kernels run: CUDA when present."""
    import torch

    if torch.cuda.is_available() and request.node.get_closest_marker("cuda"):
        with torch.device("cuda"):
            yield
    else:
        yield


@pytest.fixture(scope="session")
def make_gpu_quick(tmp_path_factory):
    """One ``benchmarks/gpu_all.py --quick`` run (``make gpu`` at its smallest shapes) shared by the
    tests that read its step files, across pytest-xdist workers (the first one to ask runs it, under a
    file lock; the others read its files): ``{"rc", "stdout", "out", "text": {step: file text}}``."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()                   # a worker's is <this run's>/popen-gwN
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base     # one folder per pytest run
    out, done = shared / "make_gpu", shared / "make_gpu.json"
    with FileLock(str(shared / "make_gpu.lock")):
        if not done.exists():
            script = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_all.py"
            proc = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)], capture_output=True,
                                  text=True, timeout=1200)
            done.write_text(json.dumps({"rc": proc.returncode, "stdout": proc.stdout + proc.stderr}))
    return {**json.loads(done.read_text()), "out": out, "text": {p.stem: p.read_text() for p in out.glob("*.md")}}

