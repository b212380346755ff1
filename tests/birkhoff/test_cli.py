"""The ``birkhoff`` command: its arguments, outputs and exit codes through ``birkhoff.cli.main`` in this
process (a fresh interpreter per call cost the suite ~40 s); the entry points themselves (the console
script, ``python -m birkhoff``, ``python -m birkhoff.cli``) are run as a user would, by subprocess."""

import contextlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from birkhoff.cli import main
from birkhoff.examples import DATA_DIR


def run(*args, stdin=None) -> subprocess.CompletedProcess:
    """``birkhoff ARGS`` with ``stdin`` as its standard input: exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    given = io.TextIOWrapper(io.BytesIO((stdin or "").encode()))
    saved = sys.stdin
    try:
        sys.stdin = given
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        sys.stdin = saved
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_python_dash_m_birkhoff_cli_is_the_same_command():
    via = subprocess.run([sys.executable, "-m", "birkhoff.cli", "certify", "-"], capture_output=True, text=True,
                         input="1/2 1/2\n1/2 1/2\n")
    here = run("certify", "-", stdin="1/2 1/2\n1/2 1/2\n")
    assert (via.returncode, via.stdout, via.stderr) == (here.returncode, here.stdout, here.stderr)
    assert here.returncode == 0 and "doubly stochastic : yes (exact)" in here.stdout


def test_certify_exit_codes():
    ok = run("certify", DATA_DIR / "exact_ds.csv")
    assert ok.returncode == 0 and "doubly stochastic : yes (exact)" in ok.stdout
    assert run("certify", DATA_DIR / "not_ds.csv").returncode == 1
    assert run("certify", DATA_DIR / "mhc_sk20.npy").returncode == 1
    assert run("certify", DATA_DIR / "mhc_sk20.npy", "--tol", "1e-6").returncode == 0


def test_certify_json_schema():
    out = run("certify", DATA_DIR / "exact_ds.csv", "--json")
    d = json.loads(out.stdout)
    assert d["schema"] == "birkhoff.certificate/2" and d["exact"] is True
    prod = json.loads(run("certify", DATA_DIR / "product_chain.npy", "--product", "--json").stdout)
    assert prod["kind"] == "product" and prod["depth"] == 1000


def test_certify_stdin():
    out = run("certify", "-", stdin="1/2 1/2\n1/2 1/2\n")
    assert out.returncode == 0


def test_stack_without_product_is_usage_error():
    out = run("certify", DATA_DIR / "product_chain.npy")
    assert out.returncode == 2 and "--product" in out.stderr


@pytest.mark.parametrize("content", [
    None,                      # missing file
    "1,2\n3\n",                # ragged
    "1,nan\n1,1\n",            # NaN
    "1,inf\n1,1\n",            # Inf
    "1,-1\n1,1\n",             # negative (sinkhorn)
    "1,2,3\n4,5,6\n",          # non-square
    "",                        # empty
    "hello world\n",           # text
])
@pytest.mark.parametrize("command", ["certify", "sinkhorn"])
def test_bad_input_one_line_exit_2(tmp_path, content, command):
    path = tmp_path / "m.csv"
    if content is not None:
        path.write_text(content)
    out = run(command, path)
    if command == "certify" and content == "1,-1\n1,1\n":
        assert out.returncode == 1        # a signed matrix is a valid input to certify
        return
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("birkhoff")


def test_usage_errors():
    for args in ([], ["frobnicate"], ["certify"], ["certify", "x", "--tol", "-1"],
                 ["sinkhorn", "x", "--iters", "3", "--tol", "1e-3"]):
        out = run(*args)
        assert out.returncode == 2 and "Traceback" not in out.stderr


def test_sinkhorn_outputs(tmp_path):
    (tmp_path / "a.csv").write_text("1 2\n3 4\n")
    out = run("sinkhorn", tmp_path / "a.csv")
    assert out.returncode == 0 and "converged" in out.stderr
    P = np.array([[float(x) for x in line.split(",")] for line in out.stdout.splitlines()])
    assert np.abs(P.sum(0) - 1).max() < 1e-12 and np.abs(P.sum(1) - 1).max() < 1e-12
    assert run("sinkhorn", tmp_path / "a.csv", "--iters", "20", "-o", tmp_path / "p.npy").returncode == 0
    assert np.load(tmp_path / "p.npy").shape == (2, 2)
    mp = run("sinkhorn", tmp_path / "a.csv", "--dps", "40")
    assert mp.returncode == 0 and len(mp.stdout.split(",")[0]) > 35


def test_sinkhorn_no_total_support_and_convergence(tmp_path):
    (tmp_path / "t.csv").write_text("1 1\n0 1\n")
    out = run("sinkhorn", tmp_path / "t.csv")
    assert out.returncode == 2 and "entry (0, 1)" in out.stderr
    (tmp_path / "s.csv").write_text("1 2\n3 4\n")
    out = run("sinkhorn", tmp_path / "s.csv", "--tol", "1e-15", "--max-iter", "1", "--method", "sinkhorn")
    assert out.returncode == 1 and "did not reach" in out.stderr and "method='sinkhorn'" in out.stderr
    (tmp_path / "h.csv").write_text("1 1e-7\n1 1\n")            # nearly decomposable: auto hands it to Newton
    out = run("sinkhorn", tmp_path / "h.csv")
    assert out.returncode == 0 and "Newton steps" in out.stderr
    out = run("sinkhorn", tmp_path / "h.csv", "--iters", "3", "--method", "newton")
    assert out.returncode == 2 and out.stderr.count("\n") == 1


def test_console_script_installed():
    import shutil
    exe = shutil.which("birkhoff") or str(__import__("pathlib").Path(sys.executable).parent / "birkhoff")
    out = subprocess.run([exe, "certify", DATA_DIR / "exact_ds.csv"], capture_output=True, text=True)
    assert out.returncode == 0


def test_bvn_kron_quantize_commands(tmp_path):
    out = run("bvn", DATA_DIR / "exact_ds.csv", "--json")
    d = json.loads(out.stdout)
    assert out.returncode == 0 and d["exact"] and d["terms"] <= 10 and d["reconstruction_error"] == 0
    assert run("bvn", DATA_DIR / "not_ds.csv").returncode == 2
    assert run("bvn", DATA_DIR / "mhc_sk20.npy", "--exact").returncode == 2
    (tmp_path / "u.csv").write_text("1/3 2/3\n2/3 1/3\n")
    out = run("kron", tmp_path / "u.csv", tmp_path / "u.csv", "-o", tmp_path / "h.csv")
    assert out.returncode == 0
    assert run("certify", tmp_path / "h.csv").returncode == 0        # exact DS product
    out = run("quantize", DATA_DIR / "mhc_sk20.npy", "--tol", "1e-6", "-o", tmp_path / "q.npy")
    Q = np.load(tmp_path / "q.npy")
    assert out.returncode == 0 and (Q.sum(0) == 127).all() and (Q.sum(1) == 127).all()
    out = run("quantize", DATA_DIR / "mhc_sk20.npy", "--tol", "1e-6", "--closest", "-o", tmp_path / "c.npy")
    C, P = np.load(tmp_path / "c.npy"), np.load(DATA_DIR / "mhc_sk20.npy")
    assert out.returncode == 0 and (C.sum(0) == 127).all() and (C.sum(1) == 127).all()
    assert np.abs(C - 127 * P).sum() <= np.abs(Q - 127 * P).sum()
    for args in (["quantize", DATA_DIR / "not_ds.csv"], ["quantize", DATA_DIR / "exact_ds.csv", "--scale", "0"],
                 ["kron", tmp_path / "missing.csv"], ["bvn", DATA_DIR / "product_chain.npy"]):
        res = run(*args)
        assert res.returncode == 2 and res.stderr.count("\n") == 1, args


def test_project_and_distance(tmp_path):
    out = run("project", DATA_DIR / "not_ds.csv", "-o", tmp_path / "x.npy")
    assert out.returncode == 0 and "certified" in out.stdout
    X = np.load(tmp_path / "x.npy")
    assert np.abs(X.sum(0) - 1).max() < 1e-9
    assert run("project", DATA_DIR / "not_ds.csv", "--cvxpy").returncode == 0
    d = json.loads(run("certify", DATA_DIR / "exact_ds.csv", "--distance", "--json").stdout)
    assert d["distance"] == [0.0, 0.0]
    res = run("certify", DATA_DIR / "product_chain.npy", "--product", "--distance")
    assert res.returncode == 2 and res.stderr.count("\n") == 1


@pytest.mark.parametrize("args", [["sinkhorn"], ["project"], ["certify", "--distance"]])
def test_exact_entries_beyond_float_range(tmp_path, args):
    big = "1" + "0" * 400
    path = tmp_path / "big.csv"
    path.write_text(f"{big} 1\n1 {big}\n")
    out = run(args[0], path, *args[1:])
    assert out.returncode == 2 and "float64 range" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert run("certify", path, "--product").returncode == 1             # exact paths still answer


# ----------------------------------------------------------------------------- the conventions users expect

def test_version_and_python_dash_m(tmp_path):
    import birkhoff

    via_module = subprocess.run([sys.executable, "-m", "birkhoff", "--version"], capture_output=True, text=True)
    assert via_module.returncode == 0 and via_module.stdout.strip() == f"birkhoff {birkhoff.__version__}"
    assert birkhoff.__version__ != "0+unknown"
    same = subprocess.run([sys.executable, "-m", "birkhoff", "certify", str(DATA_DIR / "exact_ds.csv")],
                          capture_output=True, text=True)
    assert same.returncode == 0 and same.stdout == run("certify", DATA_DIR / "exact_ds.csv").stdout


def test_a_savetxt_csv_is_read_as_floats(tmp_path):
    """np.savetxt writes 19 significant digits; they are floats, not exact decimals with inexact margins."""
    P = np.array([[0.1, 0.9, 0.0], [0.9, 0.0, 0.1], [0.0, 0.1, 0.9]])
    np.savetxt(tmp_path / "P.csv", P, delimiter=",")
    bvn = run("bvn", tmp_path / "P.csv", "--json")
    assert bvn.returncode == 0, bvn.stderr
    assert json.loads(bvn.stdout)["exact"] is False and json.loads(bvn.stdout)["terms"] >= 2
    cert = run("certify", tmp_path / "P.csv", "--json")
    d = json.loads(cert.stdout)
    # floats DS within rounding: the default tolerance (auto, 2 n u) accepts them, and says so
    assert cert.returncode == 0 and d["exact"] is False and 0 < d["min_tol"] <= d["tol"] < 1e-15
    assert d["tol_rule"].startswith("auto") and d["tol"] == pytest.approx(6 * 2.0 ** -53, rel=1e-12)
    strict = run("certify", tmp_path / "P.csv", "--tol", "0")
    assert strict.returncode == 1 and "certified DS for tol >=" in strict.stdout and "tol rule          : given" in strict.stdout
    assert run("certify", tmp_path / "P.csv", "--tol", str(d["min_tol"])).returncode == 0
    (tmp_path / "short.csv").write_text("0.1, 0.9, 0\n0.9, 0, 0.1\n0, 0.1, 0.9\n")
    assert run("certify", tmp_path / "short.csv", "--tol", "0").returncode == 1   # floats: 0.1 + 0.9 is not 1
    assert run("certify", tmp_path / "short.csv").returncode == 0                 # ... but within rounding (auto)
    exact = run("certify", tmp_path / "short.csv", "--exact-input", "--json")     # asked: 0.1 is 1/10
    assert exact.returncode == 0 and json.loads(exact.stdout)["exact"] is True
    from birkhoff.io import load_matrix
    assert load_matrix(tmp_path / "P.csv").dtype == np.float64
    assert load_matrix(tmp_path / "P.csv", exact=True).dtype == object


def test_certify_each_matrix_of_a_stack_and_npz_keys(tmp_path):
    good, bad = np.full((3, 3), 1 / 3), np.full((3, 3), 0.5)
    np.savez(tmp_path / "two.npz", chain=np.stack([good, bad, good]), other=good)
    assert "pick one with --key" in run("certify", tmp_path / "two.npz").stderr
    np.savez(tmp_path / "withM.npz", M=good, other=bad)           # a conventional name is no excuse to guess
    out = run("certify", tmp_path / "withM.npz")
    assert out.returncode == 2 and "2 arrays, ['M', 'other']; pick one with --key" in out.stderr
    each = run("certify", tmp_path / "two.npz", "--key", "chain", "--each", "--tol", "1e-15")
    assert each.returncode == 1 and "2 of 3 matrices certified" in each.stdout and "[1] NO" in each.stdout
    d = json.loads(run("certify", tmp_path / "two.npz", "--key", "chain", "--each", "--json", "--tol", "1e-15").stdout)
    assert d["count"] == 3 and [c["doubly_stochastic"] for c in d["certificates"]] == [True, False, True]
    assert run("certify", tmp_path / "two.npz", "--key", "other", "--tol", "1e-15").returncode == 0
    assert "no array 'nope'" in run("certify", tmp_path / "two.npz", "--key", "nope").stderr


@pytest.mark.parametrize("command, schema", [
    (["sinkhorn", "{m}"], "birkhoff.sinkhorn/2"),
    (["sinkhorn", "{m}", "--dps", "20"], "birkhoff.sinkhorn/2"),
    (["kron", "{m}", "{m}"], "birkhoff.kron/1"),
    (["project", "{m}"], "birkhoff.project/1"),
    (["quantize", "{ds}"], "birkhoff.quantize/1"),
    (["bvn", "{ds}"], "birkhoff.bvn/2"),
    (["certify", "{ds}"], "birkhoff.certificate/2"),
])
def test_json_on_every_subcommand(tmp_path, command, schema):
    (tmp_path / "m.csv").write_text("1 2\n3 4\n")
    (tmp_path / "ds.csv").write_text("1/4 3/4\n3/4 1/4\n")
    args = [a.format(m=tmp_path / "m.csv", ds=tmp_path / "ds.csv") for a in command]
    out = run(*args, "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["schema"] == schema and out.stderr == ""
    if "matrix" in d:
        assert np.asarray(d["matrix"], dtype=object).shape[-2:] in ((2, 2), (4, 4))
    with_output = run(*args, "--json", "-o", str(tmp_path / "out.csv")) if command[0] in (
        "sinkhorn", "kron", "project", "quantize") else None
    if with_output is not None:
        assert json.loads(with_output.stdout)["output"] == str(tmp_path / "out.csv") and (tmp_path / "out.csv").exists()


def test_quiet_and_no_progress_when_not_a_terminal(tmp_path):
    (tmp_path / "m.csv").write_text("1 2\n3 4\n")
    loud, quiet = run("sinkhorn", tmp_path / "m.csv"), run("sinkhorn", tmp_path / "m.csv", "--quiet")
    assert loud.stderr.startswith("sinkhorn:") and quiet.stderr == "" and loud.stdout == quiet.stdout


@pytest.mark.parametrize("command", [["sinkhorn"], ["sinkhorn", "--json"], ["certify", "--each"], ["bvn"],
                                     ["quantize"], ["sinkhorn", "--dps", "20"]])
def test_rational_tolerances_are_taken_everywhere(tmp_path, command):
    """``--tol 1/4`` is documented; ``sinkhorn`` used to crash formatting it (internal error, exit 3)."""
    f = tmp_path / "H.csv"
    f.write_text("1/2 1/2\n1/2 1/2\n")
    r = run(command[0], f, "--tol", "1/4", *command[1:])
    assert r.returncode == 0 and "error:" not in r.stderr and "internal" not in r.stderr, r.stderr


def test_project_of_a_dominant_entry_is_certified_doubly_stochastic(tmp_path):
    """``birkhoff project`` used to write X with row sums 1.056 for diag(1e16, 0, 0), exit 0, and
    ``birkhoff certify`` then rejected it. Now X passes ``certify`` at the projection's tolerance."""
    A, X = tmp_path / "A.npy", tmp_path / "X.npy"
    np.save(A, np.diag([1e16, 0.0, 0.0]))
    assert run("project", A, "-o", X).returncode == 0
    np.testing.assert_allclose(np.load(X), [[1, 0, 0], [0, 0.5, 0.5], [0, 0.5, 0.5]], atol=1e-14)
    assert run("certify", X, "--tol", "1e-10").returncode == 0


def test_quiet_prints_nothing_but_errors(tmp_path):
    """``-q``: no summary line, whether the matrix goes to stdout or to ``-o``."""
    A = tmp_path / "A.csv"
    A.write_text("1,2\n3,4\n")
    to_file = run("sinkhorn", A, "-q", "-o", tmp_path / "P.npy")
    assert to_file.returncode == 0 and to_file.stdout == "" and to_file.stderr == ""
    to_stdout = run("sinkhorn", A, "-q")
    assert to_stdout.stderr == "" and len(to_stdout.stdout.splitlines()) == 2      # the matrix only
    assert run("sinkhorn", A, "-o", tmp_path / "P2.npy").stdout.startswith("sinkhorn:")   # without -q: the summary


def test_errors_are_json_under_json(tmp_path):
    """Under ``--json`` an error is one JSON object on stderr (schema ``birkhoff.error/1``), exit codes unchanged."""
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,x\n")
    for args, kind, code in (((bad,), "InvalidMatrixError", 2), (("--tol", "abc", bad), "usage", 2),
                             ((tmp_path / "missing.csv",), "InvalidMatrixError", 2)):
        plain = run("certify", *args)
        out = run("certify", *args, "--json")
        assert plain.returncode == out.returncode == code and out.stdout == ""
        err = json.loads(out.stderr)
        assert err["schema"] == "birkhoff.error/1" and err["error"] == kind and err["exit_code"] == code
        assert err["message"] in plain.stderr and plain.stderr.count("\n") == 1 and not plain.stderr.startswith("{")


def test_sinkhorn_output_passes_certify_by_default(tmp_path):
    """``birkhoff sinkhorn A | birkhoff certify -``: sinkhorn iterates to the rounding level (2 n u) by default,
    and certify's default for float input (``--tol auto``) is that level; an exact input keeps tol 0."""
    A = tmp_path / "A.csv"
    A.write_text("0.5,2,3\n4,5,6\n7,8,10\n")
    P = run("sinkhorn", A, "-q")
    assert P.returncode == 0
    out = run("certify", "-", "--json", stdin=P.stdout)
    d = json.loads(out.stdout)
    assert out.returncode == 0 and d["tol"] == pytest.approx(6 * 2.0 ** -53, rel=1e-12) and d["tol_rule"].startswith("auto")
    exact = json.loads(run("certify", DATA_DIR / "exact_ds.csv", "--json").stdout)
    assert exact["tol"] == 0 and exact["tol_rule"] == "exact input: 0"
    assert json.loads(run("certify", A, "--tol", "auto", "--json").stdout)["tol_rule"].startswith("auto")
