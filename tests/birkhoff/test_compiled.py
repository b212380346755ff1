"""The compiled kernels (birkhoff/_compiled, numba) against their numpy reference: bit-identical
results over shapes, zero patterns and dtypes; when they load; and that ``import birkhoff`` stays
free of numba."""

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from birkhoff import _compiled, sinkhorn, sinkhorn_logits
from birkhoff.cli import main
from birkhoff.sweeps import CHUNK, fixed_sweeps, fixed_sweeps_logits

numba = pytest.importorskip("numba")          # a dependency: the skip is for a broken install only
pytestmark = pytest.mark.xdist_group("numba")  # one worker compiles (or loads) the kernels


def both(fn, monkeypatch, *args):
    """``fn(*args)`` on the numpy path and on the compiled one."""
    monkeypatch.setenv("BIRKHOFF_COMPILED", "0")
    reference = fn(*args)
    monkeypatch.setenv("BIRKHOFF_COMPILED", "1")
    return reference, fn(*args)


def identical(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y, equal_nan=True)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 16])
@pytest.mark.parametrize("B", [1, 7, 129, CHUNK + 3])
def test_sweeps_are_bit_identical_to_numpy(n, B, monkeypatch):
    rng = np.random.default_rng(n * 1000 + B)
    A = np.exp(2 * rng.standard_normal((B, n, n)))
    identical(*both(fixed_sweeps, monkeypatch, A, 20))
    # a zero in the second chunk only: one chunk takes the positive path, the other accumulates
    Z = A.copy()
    Z[-1, 0, :] = 0.0
    Z[-1, :, -1] *= rng.integers(0, 2, n)
    identical(*both(fixed_sweeps, monkeypatch, Z, 7))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 40), st.integers(0, 3), st.integers(0, 2**32 - 1))
def test_sweeps_with_zero_patterns_and_scales_are_bit_identical(n, B, iters, seed):
    rng = np.random.default_rng(seed)
    A = rng.random((B, n, n)) * 10.0 ** rng.integers(-150, 150, (B, 1, 1))
    A[rng.random((B, n, n)) < 0.3] = 0.0
    with pytest.MonkeyPatch.context() as mp:
        identical(*both(fixed_sweeps, mp, A, iters))


def test_float32_input_and_logits_are_bit_identical(monkeypatch):
    rng = np.random.default_rng(1)
    A32 = np.exp(rng.standard_normal((300, 4, 4))).astype(np.float32)
    identical(*both(fixed_sweeps, monkeypatch, A32, 20))
    L = 3 * rng.standard_normal((CHUNK + 50, 4, 4))
    L[5] *= 500                                      # logits spanning more than the linear path takes
    L[6, 0, 0] = -1e4
    identical(*both(fixed_sweeps_logits, monkeypatch, L, 20, np.log(1e300)))
    # the public functions: every output and the info fields
    for fn, x in ((sinkhorn, np.exp(L[:3000] / 10)), (sinkhorn_logits, L)):
        (p0, i0), (p1, i1) = both(lambda a: fn(a, iters=20, return_info=True), monkeypatch, x)
        identical((p0, i0.row_residual, i0.col_residual), (p1, i1.row_residual, i1.col_residual))


def test_kernels_load_when_they_pay(monkeypatch):
    monkeypatch.setattr(_compiled, "_LOADED", {})
    monkeypatch.setattr(_compiled, "_WORK", __import__("collections").defaultdict(int))
    monkeypatch.setenv("BIRKHOFF_COMPILED", "0")
    assert _compiled.kernels("sweeps", 10 * _compiled.AUTO_WORK) is None
    monkeypatch.setenv("BIRKHOFF_COMPILED", "auto")
    assert _compiled.kernels("sweeps", _compiled.AUTO_WORK // 2) is None      # one-shot work: numpy
    assert _compiled.kernels("sweeps", _compiled.AUTO_WORK // 2) is not None  # the work adds up
    monkeypatch.setattr(_compiled, "_LOADED", {})
    monkeypatch.setenv("BIRKHOFF_COMPILED", "1")
    assert _compiled.kernels("sweeps", 1) is not None


def test_import_birkhoff_does_not_import_numba():
    code = "import sys, birkhoff; birkhoff.sinkhorn([[1.0, 2.0], [3.0, 4.0]]); print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_warmup_command(capsys):
    assert main(["warmup", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == "birkhoff.warmup/1" and set(report["families"]) == set(_compiled.FAMILIES)
    assert all(r["seconds"] >= 0 for r in report["families"].values())
    assert main(["warmup", "-q"]) == 0 and capsys.readouterr().out == ""
