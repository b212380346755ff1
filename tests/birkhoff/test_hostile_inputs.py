"""Tiny inputs that used to hang, answers that were wrong, errors that were untyped (reliability issue,
items 8-14): bounded exact parsing, bounded counts, sinkhorn_mp's promise, typed errors everywhere,
and the CLI's one line with exit 2."""

import io
import signal
import subprocess
import sys
import zipfile
from contextlib import contextmanager
from decimal import Decimal
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

import birkhoff as B
from birkhoff.io import load_matrix
from birkhoff.validate import MAX_EXACT_DIGITS, MAX_EXACT_EXPONENT, parse_exact
from birkhoff.sinkhorn_mpmath import _exact_residual

P3 = np.full((3, 3), 1 / 3)


@contextmanager
def no_hang(seconds: int = 20):
    """Turn a hang into a failure (a guard, not a timing assertion: the bounded paths take milliseconds)."""
    def fail(*_):
        raise AssertionError(f"still running after {seconds} s")
    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def cli(*args, shell_suffix=""):
    cmd = " ".join([sys.executable, "-m", "birkhoff.cli", *map(str, args)]) + shell_suffix
    return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)


def one_line_exit_2(out) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("birkhoff: error:") and "Traceback" not in out.stderr, out.stderr
    return lines[0]


# ----------------------------------------------------------------------------- 8. bounded exact parsing

@pytest.mark.parametrize("name, content", [
    ("tiny.csv", "1/3 2/3\n2/3 1e99999999\n"),
    ("json_rational.json", '[["1/3", "2/3"], ["2/3", "1e-99999999"]]'),
    ("long_decimal.csv", "# exact\n0.333333333333333333333 1\n1 1e99999999\n"),
    ("huge_exponent_digits.csv", "1/2 1/2\n1/2 1e" + "9" * 5000 + "\n"),
    ("many_digits.csv", "1/2 1/2\n1/2 0." + "1" * (MAX_EXACT_DIGITS + 10) + "\n"),
])
def test_tiny_files_naming_huge_numbers_are_refused_at_once(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with no_hang(), pytest.raises(B.InvalidMatrixError, match="limited|digits"):
        load_matrix(path)
    assert "limited" in one_line_exit_2(cli("certify", path)) or "digits" in cli("certify", path).stderr


def test_a_long_float_decimal_with_a_huge_exponent_is_a_float_refused_at_once(tmp_path):
    path = tmp_path / "float.csv"
    path.write_text("0.333333333333333333333 1\n1 1e99999999\n")
    with no_hang(), pytest.raises(B.InvalidMatrixError, match="non-finite"):
        load_matrix(path)
    with no_hang(), pytest.raises(B.InvalidMatrixError, match="limited"):
        load_matrix(path, exact=True)


@pytest.mark.parametrize("value", [Decimal("1e-99999999"), Decimal("1e+99999999"), mpmath.mpf("1e-99999999"),
                                   mpmath.mpf("1e99999999")])
def test_decimal_and_mpf_with_huge_exponents_are_refused(value):
    with no_hang():
        with pytest.raises(B.InvalidMatrixError, match="limited"):
            B.certify(np.array([[value, 1], [1, 0]], dtype=object))
        with pytest.raises(B.InvalidArgumentError, match="limited"):
            B.certify(P3, tol=value)


@given(sign=st.sampled_from(["", "-", "+"]), whole=st.text("0123456789", max_size=30),
       frac=st.text("0123456789", max_size=30), exp=st.integers(-3 * MAX_EXACT_EXPONENT, 3 * MAX_EXACT_EXPONENT))
def test_parse_exact_is_fraction_within_the_bounds_and_refuses_beyond(sign, whole, frac, exp):
    if not (whole or frac):
        whole = "0"
    text = f"{sign}{whole}{'.' + frac if frac else ''}e{exp}"
    mantissa = (whole + frac).lstrip("0")
    magnitude = exp - len(frac) + len(mantissa) - 1
    if mantissa and abs(magnitude) > MAX_EXACT_EXPONENT:
        with pytest.raises(B.InvalidMatrixError, match="limited"):
            parse_exact(text)
    else:
        assert parse_exact(text) == Fraction(text)


@given(p=st.integers(-10 ** 30, 10 ** 30), q=st.integers(1, 10 ** 30))
def test_parse_exact_rationals(p, q):
    assert parse_exact(f"{p}/{q}") == Fraction(p, q)
    assert parse_exact(f"{p} / -{q}") == Fraction(p, -q)


def test_parse_exact_keeps_every_float_exact():
    tiny = Fraction(float(np.nextafter(0, 1)))                      # 2^-1074, written out in full
    assert parse_exact(f"{tiny.numerator}/{tiny.denominator}") == tiny
    assert parse_exact(f"{tiny.numerator * 10 ** 1074 // tiny.denominator}e-1074") == tiny
    assert parse_exact(repr(1.7976931348623157e308)) == Fraction(repr(1.7976931348623157e308))
    with pytest.raises(B.InvalidMatrixError, match="zero"):
        parse_exact("1/0")
    for bad in ("", "1/", "abc", "1e", "--1", "1.2.3", "nan", "inf"):
        with pytest.raises(B.InvalidMatrixError):
            parse_exact(bad)


@given(n=st.integers(1, 2 ** 32))
def test_kron_factor_sizes_is_bounded_and_exact(n):
    with no_hang(5):
        sizes = B.kron_factor_sizes(n)
    assert int(np.prod(sizes, dtype=object)) == n and sizes == sorted(sizes)


def test_counts_that_would_allocate_terabytes_are_refused():
    with no_hang():
        for call in (lambda: B.kron_factor_sizes(2 ** 61 - 1), lambda: B.cyclic_permutations(10 ** 6),
                     lambda: B.permutation_matrix(np.arange(10 ** 6)),
                     lambda: B.from_permutations(np.full((10 ** 6, 2), 0.5), [range(30), range(29, -1, -1)]),
                     lambda: B.kron(*[np.eye(2)] * 30)):
            with pytest.raises(B.InvalidArgumentError, match="limit|integer in"):
                call()


# ----------------------------------------------------------------------------- 10. sinkhorn_mp's promise

@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(1, 5), dps=st.integers(15, 45), shift=st.floats(-4, 4))
def test_sinkhorn_mp_never_reports_convergence_it_did_not_reach(seed, n, dps, shift):
    A = np.random.default_rng(seed).random((n, n)) ** 3 + 1e-3
    tol = 10.0 ** (-dps + shift)
    try:
        P = B.sinkhorn_mp(A, dps=dps, tol=tol)
    except B.InvalidArgumentError as exc:
        assert "digits can reach" in str(exc)
        return
    except B.ConvergenceError:
        return
    assert _exact_residual(P) <= Fraction(tol)                    # exact sums of the returned entries


def test_sinkhorn_mp_tolerances_below_the_precision():
    A = np.random.default_rng(0).random((4, 4))
    for dps, tol in ((20, 1e-40), (30, 1e-40), (50, 1e-55)):
        with pytest.raises(B.InvalidArgumentError, match=r"dps >= \d+"):
            B.sinkhorn_mp(A, dps=dps, tol=tol)
    with pytest.raises(B.InvalidArgumentError, match="dps"):
        B.sinkhorn_mp(A, dps=10 ** 6)
    out = cli("sinkhorn", "-", "--dps", "20", "--tol", "1e-40", shell_suffix=" <<< '1 2\n3 4'")
    assert "digits can reach" in one_line_exit_2(out)


# ----------------------------------------------------------------------------- 12. the CLI's file and stream errors

def _npz_with(member: bytes, name: str = "M.npy", compress: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as z:
        z.writestr(name, member)
    return buf.getvalue()


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_broken_npz_files_exit_2(tmp_path):
    good = _npy(np.full((3, 3), 1 / 3))
    stored = bytearray(_npz_with(good))
    stored[stored.index(good[-8:]) + 3] ^= 0xFF                      # a data byte: the CRC no longer matches
    compressed = bytearray(_npz_with(good * 50, compress=zipfile.ZIP_DEFLATED))
    compressed[60:70] = b"\x00" * 10                                 # the deflate stream broken
    claim = np.lib.format.header_data_from_array_1_0(np.zeros((40000, 40000), dtype=np.uint8))
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {**claim, "descr": "<f8"})   # 12.8 GB claimed, 16 bytes there
    huge = _npz_with(buf.getvalue() + b"\x00" * 16)
    for name, data in (("crc.npz", stored), ("stream.npz", compressed), ("huge.npz", huge)):
        (tmp_path / name).write_bytes(bytes(data))
        with pytest.raises(B.InvalidMatrixError):
            load_matrix(tmp_path / name)
        one_line_exit_2(cli("certify", tmp_path / name))


@pytest.mark.parametrize("name, content, needle", [
    ("bigint.json", "[[" + "1" * 5000 + ", 0], [0, 1]]", "invalid JSON"),
    ("deep.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
], ids=["bigint", "deep"])      # short ids: pytest puts the id in PYTEST_CURRENT_TEST, which child processes inherit
def test_hostile_json_exits_2(tmp_path, name, content, needle):
    (tmp_path / name).write_text(content)
    assert needle in one_line_exit_2(cli("certify", tmp_path / name))


def test_output_and_streams_exit_2(tmp_path):
    a = tmp_path / "A.csv"
    a.write_text("0.5 0.5\n0.5 0.5\n")
    assert "Not a directory" in one_line_exit_2(cli("kron", a, "-o", f"{a}/x.csv"))
    assert "standard input is closed" in one_line_exit_2(cli("certify", "-", shell_suffix=" <&-"))
    assert "No space left" in one_line_exit_2(cli("kron", a, shell_suffix=" > /dev/full"))


def test_output_writes_through_a_symlink(tmp_path):
    a = tmp_path / "A.csv"
    a.write_text("0.5 0.5\n0.5 0.5\n")
    (tmp_path / "link.csv").symlink_to(a)
    assert cli("kron", a, a, "-o", tmp_path / "link.csv").returncode == 0
    assert (tmp_path / "link.csv").is_symlink() and load_matrix(a).shape == (4, 4)


# ----------------------------------------------------------------------------- 13-14. typed errors, strict flags

TYPED = {
    "certify_product ragged": lambda: B.certify_product([[[1, 0], [0, 1]], [[1, 0], [0]]]),
    "from_permutations ragged": lambda: B.from_permutations([0.5, 0.5], [[0, 1], [0]]),
    "from_permutations ragged weights": lambda: B.from_permutations([0.5, [0.5]], [[0, 1], [1, 0]]),
    "hc_lipschitz_bound ragged": lambda: B.hc_lipschitz_bound(np.eye(2), [0.5, [0.5]], [1, 1]),
    "certify_projection u str": lambda: B.certify_projection(P3, B.project(P3).__class__(
        **{**vars(B.project(P3)), "u": np.array(["a", "b", "c"])})),
    "composite_lipschitz_bound (H,)": lambda: B.composite_lipschitz_bound([(P3,)]),
    "composite_lipschitz_bound None": lambda: B.composite_lipschitz_bound(None),
    "kron_apply axis 5": lambda: B.kron_apply([np.eye(2)], np.ones((2, 2)), axis=5),
    "kron_apply None": lambda: B.kron_apply(None, np.ones(4)),
    "cyclic_permutations 1e6": lambda: B.cyclic_permutations(10 ** 6),
    "permutation_matrix 1e6": lambda: B.permutation_matrix(np.arange(10 ** 6)),
    "quantize 2^60 closest": lambda: B.quantize(P3, 2 ** 60, closest=True),
    "sparse tensor": lambda: B.certify(torch.eye(3).to_sparse()),
    "meta tensor": lambda: B.certify(torch.eye(3, device="meta")),
    "masked entries": lambda: B.certify(np.ma.masked_array(P3, mask=np.eye(3, dtype=bool))),
    "scipy sparse": lambda: B.certify(__import__("scipy.sparse").sparse.eye(3)),
}
FLAGS = {
    "bvn exact='no'": lambda: B.bvn_decompose(P3, exact="no"),
    "certify distance='no'": lambda: B.certify(P3, distance="no"),
    "quantize closest=1": lambda: B.quantize(P3, closest=1),
    "sinkhorn return_info='yes'": lambda: B.sinkhorn(P3, return_info="yes"),
    "sinkhorn log_domain=0": lambda: B.sinkhorn(P3, log_domain=0),
    "sinkhorn_logits return_info=1": lambda: B.sinkhorn_logits(P3, return_info=1),
    "permutation_matrix exact=None": lambda: B.permutation_matrix([0, 1], exact=None),
}


@pytest.mark.parametrize("name", sorted(TYPED))
def test_every_bad_call_raises_a_birkhoff_error(name):
    with no_hang(), pytest.raises(B.BirkhoffError):
        TYPED[name]()


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_flags_accept_only_booleans(name):
    with pytest.raises(B.InvalidArgumentError, match="True or False"):
        FLAGS[name]()


def test_float8_and_bfloat16_tensors_widen_exactly():
    M = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    for dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
        assert B.certify(M.to(dtype)).exact
    unmasked = np.ma.masked_array(P3, mask=False)
    assert B.certify(unmasked).n == 3                               # no masked entry: the data is used


def test_results_never_alias_their_input():
    A = np.full((2, 2), 0.5)
    for result in (B.kron(A), B.kron_apply([A], np.eye(2)), B.sinkhorn(A, iters=0)):
        assert not np.shares_memory(result, A)
    B.kron(A)[0, 0] = 7
    assert A[0, 0] == 0.5


def test_newton_mp_stops_where_its_system_turns_singular():
    """A target below the working precision used to end in mpmath's bare ZeroDivisionError
    ('matrix is numerically singular'): this 2x2 at 30 digits, asked for 5e-41."""
    from birkhoff.newton import newton_balance_mp

    with mpmath.workdps(30):
        A = [[mpmath.mpf(float(x)) for x in row] for row in np.random.default_rng(1).random((2, 2))]
        r, c = [mpmath.mpf(1)] * 2, [mpmath.mpf(1)] * 2
        for _ in range(60):
            r = [1 / mpmath.fsum(A[i][j] * c[j] for j in range(2)) for i in range(2)]
            c = [1 / mpmath.fsum(A[i][j] * r[i] for i in range(2)) for j in range(2)]
        f, g, steps, converged = newton_balance_mp(A, [mpmath.log(x) for x in r], [mpmath.log(x) for x in c],
                                                   mpmath.mpf("5e-41"))
    assert not converged and all(mpmath.isfinite(x) for x in f + g)


def test_kron_apply_takes_a_generator_of_factors():
    U = [B.kromhc_factor(0.25), B.kromhc_factor(0.5)]
    x = np.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(B.kron_apply((u for u in U), x), B.kron_apply(U, x))


@pytest.mark.parametrize("chain", [[[[1, 0], [0, 1, 2]]], [[[1, [0]], [0, 1]]], [[[1, 0], [0, 1]], [[1, 0], [0]]]])
def test_certify_product_of_ragged_nested_lists_is_a_typed_error(chain):
    """A ragged first matrix used to raise numpy's bare ValueError from np.ndim."""
    with pytest.raises(B.InvalidMatrixError, match="rectangular"):
        B.certify_product(chain)
