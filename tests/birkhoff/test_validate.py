from decimal import Decimal
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch

from birkhoff import InvalidMatrixError, certify, sinkhorn
from birkhoff.validate import as_matrix


@pytest.mark.parametrize("bad, needle", [
    ([[1.0, float("nan")], [0.0, 1.0]], "non-finite"),
    ([[1.0, float("inf")], [0.0, 1.0]], "non-finite"),
    ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "square"),
    (np.zeros((0, 0)), "empty"),
    ([1.0, 2.0], "shape"),
    (np.zeros((2, 2, 2)), "shape"),
    ([["a", "b"], ["c", "d"]], "non-numeric"),
    (np.array([[1 + 1j, 0], [0, 1]]), "complex"),
    ([[1.0, 2.0], [3.0]], "rectangular"),
    ([[Fraction(1), None], [0, 1]], "non-numeric"),
    ([[Fraction(1), float("nan")], [0, 1]], "non-finite"),
    (None, "None"),
])
def test_bad_input_raises_typed_error(bad, needle):
    with pytest.raises(InvalidMatrixError, match=needle):
        certify(bad)


def test_negative_entry_named():
    with pytest.raises(InvalidMatrixError, match=r"entry \(1, 0\) is -0.5"):
        sinkhorn([[1.0, 1.0], [-0.5, 1.0]])


def test_invalid_matrix_error_is_value_error():
    with pytest.raises(ValueError):
        certify([[np.nan]])


def test_exact_kinds_become_fractions():
    for A in ([[1, 0], [0, 1]], np.eye(2, dtype=np.int32), np.eye(2, dtype=bool),
              [[Fraction(1, 2), Decimal("0.5")], [Decimal("0.5"), Fraction(1, 2)]],
              np.array([[mpmath.mpf("0.5"), mpmath.mpf("0.5")]] * 2, dtype=object)):
        M = as_matrix(A)
        assert M.dtype == object and all(isinstance(x, Fraction) for x in M.flat)


def test_float_kinds_become_float64_exactly():
    x = np.float32(0.1)
    M = as_matrix(np.array([[x, 1], [1, x]], dtype=np.float32))
    assert M.dtype == np.float64 and Fraction(float(M[0, 0])) == Fraction(float(x))


def test_torch_tensors_accepted_without_birkhoff_importing_torch():
    t = torch.tensor([[0.5, 0.5], [0.5, 0.5]], dtype=torch.bfloat16, requires_grad=True)
    assert certify(t).exact


def test_birkhoff_imports_without_torch():
    import subprocess
    import sys
    code = ("import sys; sys.modules['torch'] = None; sys.modules['triton'] = None; "
            "import birkhoff, birkhoff.cli, birkhoff.io; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
