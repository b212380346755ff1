"""Scalar arguments: one validator (``birkhoff.validate``), one error type, exact values honoured."""

from decimal import Decimal
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, strategies as st

from birkhoff import (BirkhoffError, InvalidArgumentError, InvalidMatrixError, bvn_decompose, certify,
                      certify_batch, certify_product, certify_projection, cyclic_permutations,
                      hc_lipschitz_bound, kron_factor_sizes, kromhc_factor, project, quantize, sinkhorn,
                      sinkhorn_logits, sinkhorn_mp)
from birkhoff import cli
from birkhoff.validate import real

I2 = np.eye(2)
CALLS = {
    "certify tol": lambda v: certify(I2, tol=v),
    "certify_batch tol": lambda v: certify_batch(I2[None], tol=v),
    "certify_product tol": lambda v: certify_product([I2], tol=v),
    "sinkhorn tol": lambda v: sinkhorn(I2, tol=v),
    "sinkhorn iters": lambda v: sinkhorn(I2, iters=v),
    "sinkhorn max_iter": lambda v: sinkhorn(I2, max_iter=v),
    "sinkhorn_logits iters": lambda v: sinkhorn_logits(I2, iters=v),
    "sinkhorn_mp dps": lambda v: sinkhorn_mp(I2, dps=v),
    "bvn tol": lambda v: bvn_decompose(I2, tol=v),
    "bvn max_terms": lambda v: bvn_decompose(I2, max_terms=v),
    "project tol": lambda v: project(I2, tol=v),
    "project max_iter": lambda v: project(I2, max_iter=v),
    "quantize scale": lambda v: quantize(I2, v),
    "quantize tol": lambda v: quantize(I2, 127, tol=v),
    "lip_f": lambda v: hc_lipschitz_bound(I2, [1, 0], [1, 0], lip_f=v),
    "kron_factor_sizes n": lambda v: kron_factor_sizes(v),
    "cyclic_permutations n": lambda v: cyclic_permutations(v),
}
OPTIONAL = {"sinkhorn iters", "bvn max_terms"}
INTEGER = {"sinkhorn iters", "sinkhorn max_iter", "sinkhorn_logits iters", "sinkhorn_mp dps", "bvn max_terms",
           "project max_iter", "quantize scale", "kron_factor_sizes n", "cyclic_permutations n"}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("bad", [None, "0.1", True, -1, float("nan"), float("inf"), 1 + 2j, [1.0], np.ones(2)])
def test_bad_scalar_raises_invalid_argument(call, bad):
    if bad is None and call in OPTIONAL:
        CALLS[call](bad)                          # None is the documented default there
        return
    with pytest.raises(InvalidArgumentError):
        CALLS[call](bad)


@pytest.mark.parametrize("call", sorted(INTEGER))
def test_integer_arguments_reject_floats(call):
    with pytest.raises(InvalidArgumentError, match="integer"):
        CALLS[call](2.0)


def test_error_type_is_both_birkhoff_and_value_error():
    assert issubclass(InvalidArgumentError, BirkhoffError) and issubclass(InvalidArgumentError, ValueError)
    with pytest.raises(InvalidArgumentError, match="kromhc|real numbers"):
        kromhc_factor("0.5")


@pytest.mark.parametrize("tol", [Fraction(1, 4), Decimal("0.25"), mpmath.mpf("0.25"), np.float32(0.25), 0.25])
def test_exact_tolerances_are_accepted(tol):
    assert certify([[0.5, 0.5], [0.25, 0.75]], tol=tol).doubly_stochastic     # residual exactly 1/4


def test_exact_tolerance_is_rounded_the_safe_way():
    """A tol just below 1/4 rounds to 0.25 in float; certify must round it down, not claim DS."""
    just_below = Fraction(1, 4) - Fraction(1, 10 ** 30)
    assert float(just_below) == 0.25
    assert not certify([[0.5, 0.5], [0.25, 0.75]], tol=just_below).doubly_stochastic
    # lip_f rounds up: the bound with a third is at least the bound with the next float above 1/3
    third = Fraction(1, 3)
    above = float(np.nextafter(float(third), 1)) if Fraction(float(third)) < third else float(third)
    H = [[Fraction(1, 2)] * 2] * 2
    assert hc_lipschitz_bound(H, [1, 0], [1, 0], lip_f=third) >= hc_lipschitz_bound(H, [1, 0], [1, 0], lip_f=above)


@pytest.mark.parametrize("args, needle", [
    (["certify", "-", "--tol", "-1"], ">= 0"),
    (["certify", "-", "--tol", "abc"], "not a number"),
    (["certify", "-", "--tol", "inf"], "finite"),
    (["quantize", "-", "--scale", "0"], ">= 1"),
    (["quantize", "-", "--scale", "-1"], ">= 1"),
    (["sinkhorn", "-", "--dps", "10"], ">= 15"),
    (["sinkhorn", "-", "--max-iter", "0"], ">= 1"),
])
def test_cli_scalar_arguments(capsys, args, needle):
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_cli_rational_tolerance(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("1/2 1/2\n1/4 3/4\n")                  # column residual exactly 1/4
    assert cli.main(["certify", str(path), "--tol", "1/4"]) == 0
    assert cli.main(["certify", str(path), "--tol", "1/5"]) == 1


def test_cli_has_no_proofs_subcommand(capsys):
    """The proofs sit above ``birkhoff`` (they need torch): their entry point is ``python -m proofs_checks``,
    never a ``birkhoff`` subcommand that starts the top of the stack from its bottom."""
    assert cli.main(["proofs", "--quick"]) == 2
    assert "invalid choice: 'proofs'" in capsys.readouterr().err


@given(st.fractions(min_value=0, max_value=10 ** 6))
def test_real_rounds_exact_values_the_asked_way(q):
    down, up, near = (real(q, "x", rounding=r) for r in ("down", "up", "nearest"))
    assert Fraction(down) <= q <= Fraction(up) and near == float(q)
    assert up == down or np.nextafter(down, np.inf) == up        # adjacent floats: the tightest pair


def test_mismatched_or_missing_structured_arguments():
    with pytest.raises(InvalidMatrixError, match="one size"):
        certify_product([np.eye(2), np.eye(3)])
    for bad in (None, 5, {"X": 1}):
        with pytest.raises(InvalidArgumentError, match="Projection"):
            certify_projection(np.eye(2), bad)
