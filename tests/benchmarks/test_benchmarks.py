"""The benchmarks still run (smallest sizes; no timing is asserted): those that fork or start processes
in their own interpreter, the others in the test's (:func:`run_script`)."""

import contextlib
import io
import runpy
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    """``python benchmarks/NAME ARGS`` run as ``__main__`` in this interpreter (runpy; its imports are this
    worker's already): exit code and output as :func:`subprocess.run` gives them. The compiled kernel
    families it loads stay out of the worker's other tests, as a process of its own would keep them."""
    from birkhoff import _compiled

    out, err = io.StringIO(), io.StringIO()
    argv, path, loaded, spent = sys.argv, sys.path[:], _compiled._LOADED, _compiled._SPENT
    sys.argv, sys.path[:0] = [str(BENCH / name), *args], [str(BENCH)]
    _compiled._LOADED, _compiled._SPENT = dict(loaded), defaultdict(float, spent)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(str(BENCH / name), run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        err.write("" if isinstance(exc.code, int) or exc.code is None else str(exc.code))
    finally:
        sys.argv, sys.path[:] = argv, path
        _compiled._LOADED, _compiled._SPENT = loaded, spent
    return subprocess.CompletedProcess([name, *args], code, out.getvalue(), err.getvalue())


@pytest.mark.slow
@pytest.mark.xdist_group("numba")             # the worker that compiles birkhoff's kernels (test_compiled)
def test_bench_sinkhorn_quick():
    out = run_script("bench_sinkhorn.py", "--quick", "--repeat", "1", "--loop-subset", "20")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any("plain numpy loop (baseline)" in line for line in lines)
    assert sum("at POT's achieved accuracy" in line for line in lines) == 2
    auto = [line for line in lines if "birkhoff `sinkhorn` (auto)" in line]
    assert len(auto) == 3 and not any("fails" in line for line in auto)            # the hard inputs converge
    assert all("fails" in line for line in lines if "sweeps only" in line)        # where sweeps alone do not


@pytest.mark.slow
@pytest.mark.xdist_group("numba")
@pytest.mark.xdist_group("bvn")
def test_bench_bvn_quick():
    """Builds the peer's own virtualenv on first use (PyPI), then n = 8, 16, both of our paths (the script
    exits non-zero when the compiled terms differ from the numpy path's)."""
    out = run_script("bench_bvn.py", "--quick", "--repeat", "1")
    assert out.returncode == 0, out.stderr
    rows = [r for r in out.stdout.splitlines() if r.startswith("| convex")]
    assert len(rows) == 2 and "fails" not in rows[0] and len(rows[0].split("|")) == 12
    assert "compiled kernels `bvn`" in out.stdout


@pytest.mark.xdist_group("numba")
def test_bench_project_quick():
    out = run_script("bench_project.py", "--quick", "--repeat", "1", "--loop-subset", "10")
    assert out.returncode == 0, out.stderr
    for case in ("| n = 8 |", "| n = 32 |", "| 200 x (4 x 4) batch"):
        rows = [r for r in out.stdout.splitlines() if r.startswith(case)]
        assert len(rows) == 7 and any("compiled once (DPP)" in r for r in rows)
        assert any("numpy path" in r for r in rows)                         # both paths where n <= 64


@pytest.mark.slow
@pytest.mark.xdist_group("make_gpu")            # one worker runs them, after one make gpu --quick
def test_bench_mixers_quick(make_gpu_quick):
    """``bench_mixers.py --quick --steps 1``, run as the ``overhead`` step of ``make gpu --quick``."""
    text = make_gpu_quick["text"]["overhead"]
    assert "bench_mixers.py --quick --steps 1`: exit 0" in text, text[-3000:]
    assert "| peer:mHC |" in text and "| peer:HC |" in text and "| kromhc |" in text and "| residual |" in text


def test_bench_token_mixing_quick():
    out = subprocess.run([sys.executable, str(BENCH / "bench_token_mixing.py"), "--quick"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [r for r in out.stdout.splitlines() if r.startswith("| 256 |")]
    assert len(rows) == 1 and "error" not in out.stdout


def test_bench_scale_quick():
    out = subprocess.run([sys.executable, str(BENCH / "bench_scale.py"), "--quick"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("| `") == 7


@pytest.mark.slow
def test_hostile_run_quick():
    """One round of every hostile class at every entry point: no untyped error, hang or NaN result."""
    out = subprocess.run([sys.executable, str(BENCH / "hostile.py"), "--rounds", "1"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 failures" in out.stdout and out.stdout.count("| ") > 40


@pytest.mark.slow
@pytest.mark.xdist_group("numba")
@pytest.mark.xdist_group("certify")
def test_bench_certify_quick():
    out = run_script("bench_certify.py", "--quick")
    assert out.returncode == 0, out.stderr
    from birkhoff.testing.oracle import CLASSES

    rows = [r for r in out.stdout.splitlines() if r.startswith("| ") and "| 4 |" in r]
    assert len(rows) == 2 + len(CLASSES) and "inf" not in out.stdout    # 2 timing rows + a row per class, all finite
    assert any(r.startswith("| (2000, 4, 4) SK_20") for r in out.stdout.splitlines())


def _fail():
    raise ValueError("bad input")


def test_isolated_runs_in_a_forked_child_and_reports_how_it_failed():
    """``benchmarks/_isolated.py``: the result comes back from another process; an exception comes back as
    its text, a ``kill -9`` as a negative exit code (what ``bench_token_mixing`` reads as out of memory)."""
    import os
    import signal

    sys.path.insert(0, str(BENCH))
    from _isolated import ChildFailed, isolated

    assert isolated(os.getpid) != os.getpid()
    with pytest.raises(ChildFailed, match="ValueError: bad input") as raised:
        isolated(_fail)
    assert raised.value.exitcode == 0
    with pytest.raises(ChildFailed) as killed:
        isolated(lambda: os.kill(os.getpid(), signal.SIGKILL))
    assert killed.value.exitcode == -signal.SIGKILL


@pytest.mark.xdist_group("numba")
@pytest.mark.xdist_group("certify")
def test_bench_monitor_quick():
    out = run_script("bench_monitor.py", "--quick")
    assert out.returncode == 0, out.stderr
    rows = [r for r in out.stdout.splitlines() if r.startswith("| mhc | 8 |")]
    assert len(rows) == 1 and len(rows[0].split("|")) == 13 and rows[0].rstrip(" |").endswith("%")


@pytest.mark.xdist_group("numba")
@pytest.mark.xdist_group("certify")
def test_soundness_sweep_quick():
    out = subprocess.run([sys.executable, str(BENCH / "soundness_sweep.py"), "--quick"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 missed the truth" in out.stdout
