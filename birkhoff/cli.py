"""The ``birkhoff`` command.

Exit codes: 0 success (``certify``: certified doubly stochastic); 1 the command ran but
the answer is negative (``certify``: not DS; ``sinkhorn``: tolerance not reached);
2 bad input or usage, reported as one line on stderr; 3 an internal error (a bug:
one line, set ``BIRKHOFF_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import warnings
from contextlib import contextmanager
from fractions import Fraction
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from . import __version__, _compiled
from .bvn import bvn_decompose
from .certify import Certificate, ProductCertificate, certify, certify_batch, certify_product, certify_projection
from .validate import count, real
from .errors import BirkhoffError, ConvergenceError, InvalidArgumentError, InvalidMatrixError
from .io import MAX_FILE_ENTRIES, entry_text, load_matrix, save_matrix
from .kron import kron
from .project import project, project_cvxpy
from .quantize import quantize
from .sinkhorn import METHODS, sinkhorn
from .sinkhorn_mpmath import sinkhorn_mp

__all__ = ["main", "OneLineParser"]


class OneLineParser(argparse.ArgumentParser):
    """argparse with a one-line error message (no usage dump) and exit code 2; the project's
    command lines (``birkhoff``, ``reference.train``, the studies) all use it."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _checked(parse: Callable[[str], Any], check: Callable[[Any], Any]) -> Callable[[str], Any]:
    """An argparse ``type``: ``parse`` the text, then ``check`` it with ``birkhoff.validate``."""
    def convert(text: str) -> Any:
        try:
            value = parse(text.strip())
        except (ValueError, ZeroDivisionError):
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        try:
            return check(value)
        except InvalidArgumentError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def _number(text: str) -> float | Fraction:
    """``1e-9`` as a float, ``1/3`` as an exact Fraction."""
    return Fraction(text) if "/" in text else float(text)


def _nonneg(value: float | Fraction) -> float | Fraction:
    real(value, "the value")          # validated here; the exact value goes on to the API
    return value


_nonneg_real = _checked(_number, _nonneg)
_nonneg_int = _checked(int, lambda v: count(v, "the value"))
_positive_int = _checked(int, lambda v: count(v, "the value", low=1))

AUTO_TOL_RULE = "auto: 2 n u max(1, max abs row or column sum), u = 2**-53"


def _tol(text: str) -> float | Fraction | str:
    """``--tol``: a number, or ``auto`` (:func:`_auto_tol`)."""
    return "auto" if text.strip() == "auto" else _nonneg_real(text)


def _rounding_tol(n: int, scale: float = 1.0) -> float:
    """``2 n u scale`` rounded up: the margin error float rounding leaves in a doubly stochastic float matrix
    of size ``n`` whose row and column sums of magnitudes are at most ``scale`` (a policy: each sum of ``n``
    floats may be off by about ``n u`` times the sum of their magnitudes)."""
    return float(np.nextafter(2.0 * n * 2.0 ** -53 * scale, np.inf))


def _auto_tol(M: np.ndarray) -> float:
    """:data:`AUTO_TOL_RULE` for ``M``: :func:`_rounding_tol` at its size and scale; 0 for exact input, which
    has no rounding."""
    if M.dtype == object:
        return 0.0
    A = np.abs(M)
    return _rounding_tol(M.shape[-1], max(1.0, float(A.sum(-1).max(initial=0.0)), float(A.sum(-2).max(initial=0.0))))


def _resolve_tol(args: argparse.Namespace, M: np.ndarray) -> tuple[float | Fraction, str]:
    """The tolerance ``--tol`` asks for (default ``auto`` for float input, 0 for exact input) and its rule."""
    if args.tol == "auto" or (args.tol is None and M.dtype != object):
        return _auto_tol(M), AUTO_TOL_RULE
    return (0.0, "exact input: 0") if args.tol is None else (args.tol, "given")


# ----------------------------------------------------------------------------- input, output, progress

def _load(args: argparse.Namespace, path: str) -> np.ndarray:
    """``path`` read as the common options say (``--exact-input``, ``--key``)."""
    return load_matrix(path, exact=True if args.exact_input else None, key=args.key, max_entries=args.max_entries)


def _single(args: argparse.Namespace, path: str) -> np.ndarray:
    M = _load(args, path)
    if M.ndim != 2:
        raise InvalidMatrixError(f"{path} holds a stack of {M.shape[0]} matrices; one is needed")
    return M


def _json_matrix(M: np.ndarray) -> list:
    """Nested lists: float entries as JSON numbers, exact and mpmath entries as strings (read back exactly)."""
    if M.dtype != object:
        return M.tolist()
    return np.vectorize(entry_text, otypes=[object])(M).tolist()


def _emit(args: argparse.Namespace, schema: str, fields: dict, matrix: np.ndarray | None, line: str) -> None:
    """The result: ``-o`` gets the matrix (format by extension); stdout gets JSON (``--json``: the fields,
    and the matrix when there is no ``-o``) or the matrix as csv with ``line`` on stderr."""
    output = getattr(args, "output", None)
    if matrix is not None and output:
        save_matrix(output, matrix)
    if args.json:
        extra = {"output": output} if output else ({"matrix": _json_matrix(matrix)} if matrix is not None else {})
        print(json.dumps({"schema": schema, **fields, **extra}, indent=2))
        return
    if matrix is not None and not output:
        save_matrix("-", matrix)
        if not args.quiet:
            print(line, file=sys.stderr)
    elif not args.quiet or matrix is None:      # -q: nothing but the matrix (or, with -o, nothing) and errors
        print(line)


@contextmanager
def _working(args: argparse.Namespace):
    """An elapsed-time line on stderr for work that takes over 2 s (a terminal only; ``--quiet``: none)."""
    if args.quiet or not sys.stderr.isatty():
        yield
        return
    done = threading.Event()
    bar = tqdm(desc=f"birkhoff {args.command}", delay=2, bar_format="{desc}: {elapsed}", file=sys.stderr,
               leave=False)

    def tick() -> None:
        while not done.wait(0.5):
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        bar.close()


# ----------------------------------------------------------------------------- commands

def _cmd_certify(args: argparse.Namespace) -> int:
    M = _load(args, args.file)
    tol, rule = _resolve_tol(args, M)
    if args.product and args.each:
        raise InvalidMatrixError("--product certifies the chain's product, --each every matrix: pass one")
    if args.distance and (args.product or args.each):
        raise InvalidMatrixError("--distance is for a single matrix, not with --product or --each")
    if args.each:
        batch = certify_batch(M if M.ndim == 3 else M[None], tol=tol)
        certs = [batch[k] for k in range(len(batch))]
        if args.json:
            print(json.dumps({"schema": "birkhoff.certificates/1", "count": len(certs), "tol_rule": rule,
                              "certificates": [c.to_dict() for c in certs]}, indent=2))
        else:
            ok = sum(c.doubly_stochastic for c in certs)
            print(f"{ok} of {len(certs)} matrices certified doubly stochastic at tol = {tol} ({rule})")
            for k, c in enumerate(certs):
                least = "-" if c.min_tol is None else f"{c.min_tol:.3e}"
                print(f"  [{k}] {'yes' if c.doubly_stochastic else 'NO ':3s}  residuals <= {c.row_residual:.3e} / "
                      f"{c.col_residual:.3e}  (DS for tol >= {least})  gain fwd <= {c.gain_forward[1]:.9g}  "
                      f"bwd <= {c.gain_backward[1]:.9g}")
        return 0 if all(c.doubly_stochastic for c in certs) else 1
    cert: Certificate | ProductCertificate
    if args.product:
        cert = certify_product(M if M.ndim == 3 else M[None], tol=tol)
    else:
        if M.ndim != 2:
            raise InvalidMatrixError(f"{args.file} holds a stack of {M.shape[0]} matrices; pass --product to "
                                     "certify their product or --each to certify every one")
        cert = certify(M, tol=tol, distance=args.distance)
    if args.json:
        print(json.dumps({**cert.to_dict(), "tol_rule": rule}, indent=2))
    else:
        print(f"{cert}\n  tol rule          : {rule}")
    return 0 if cert.doubly_stochastic else 1


def _cmd_sinkhorn(args: argparse.Namespace) -> int:
    M = _load(args, args.file)
    if args.dps is not None:
        if args.iters is not None:
            raise InvalidMatrixError("--dps iterates to a tolerance; it cannot be combined with --iters")
        if M.ndim != 2:
            raise InvalidMatrixError("--dps takes a single matrix, not a stack")
        P = sinkhorn_mp(M, dps=args.dps, tol=None if args.tol == "auto" else args.tol, max_iter=args.max_iter,
                        method=args.method)
        fields = {"dps": args.dps, "converged": True}
        line = f"sinkhorn_mp: converged at {args.dps} digits"
    else:
        tol = _rounding_tol(M.shape[-1]) if args.tol in (None, "auto") else args.tol    # the output's scale is 1
        P, info = sinkhorn(M, iters=args.iters, tol=tol, max_iter=args.max_iter, method=args.method,
                           return_info=True)
        row, col = float(np.max(info.row_residual)), float(np.max(info.col_residual))
        res = max(row, col)
        mode = ("fixed" if args.iters is not None else f"converged to tol={tol}")
        newton = f" + {info.newton_steps} Newton steps" if info.method != "sinkhorn" else ""
        fields = {"sweeps": int(info.iterations), "newton_steps": int(info.newton_steps), "method": info.method,
                  "mode": "fixed" if args.iters is not None else "tolerance", "row_residual": row, "col_residual": col,
                  "log_domain": bool(info.log_domain)}
        line = (f"sinkhorn: {info.iterations} sweeps{newton} ({mode}), max marginal error "
                f"{res:.3e}{' (log domain)' if info.log_domain else ''}")
    _emit(args, "birkhoff.sinkhorn/2", fields, P, line)
    return 0


def _cmd_bvn(args: argparse.Namespace) -> int:
    d = bvn_decompose(_single(args, args.file), exact=True if args.exact else None, tol=args.tol)
    show = str if d.exact else float
    if args.json:
        print(json.dumps({"schema": "birkhoff.bvn/2", "n": int(d.perms.shape[1]),
                          "exact": d.exact, "terms": len(d), "reconstruction_error": d.residual,
                          "weights": [show(w) for w in d.weights],
                          "perms": d.perms.tolist()}, indent=2))
    else:
        print(f"{len(d)} terms (Marcus-Ree bound {(d.perms.shape[1] - 1) ** 2 + 1}), "
              f"{'exact' if d.exact else 'float'}, max reconstruction error {d.residual:.3e}")
        for w, p in zip(d.weights, d.perms):
            print(f"{show(w)!s:>24}  {' '.join(map(str, p))}")
    return 0


def _cmd_kron(args: argparse.Namespace) -> int:
    K = kron(*(_single(args, f) for f in args.files))
    _emit(args, "birkhoff.kron/1", {"n": int(K.shape[0]), "factors": len(args.files)}, K,
          f"kron: {K.shape[0]}x{K.shape[0]} product of {len(args.files)} factors")
    return 0


def _cmd_project(args: argparse.Namespace) -> int:
    A = _single(args, args.file)
    result = project_cvxpy(A) if args.cvxpy else project(A)
    lo, hi = certify_projection(A, result)
    solver = "cvxpy/Clarabel" if args.cvxpy else "semismooth Newton"
    line = (f"dist_F(A, Birkhoff) in [{lo!r}, {hi!r}]  (certified; {solver}, {result.iterations} iterations, "
            f"||X - A||_F^2 = {float(result.objective)!r})")
    fields = {"distance": [lo, hi], "solver": solver, "iterations": int(result.iterations),
              "objective": float(result.objective)}
    if args.output or args.json:
        _emit(args, "birkhoff.project/1", fields, result.X, line)
    else:
        print(line)
    return 0


def _cmd_quantize(args: argparse.Namespace) -> int:
    Q, scale = quantize(_single(args, args.file), args.scale, tol=args.tol, closest=args.closest)
    _emit(args, "birkhoff.quantize/1", {"scale": int(scale)}, Q,
          f"quantize: integer matrix with every row and column summing to {scale}")
    return 0


def _args_bvn(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="doubly stochastic matrix")
    p.add_argument("--exact", action="store_true", help="Fraction arithmetic (needs exact margins)")
    p.add_argument("--tol", type=_nonneg_real, default=1e-9, help="allowed margin residual (float mode)")


def _cmd_warmup(args: argparse.Namespace) -> int:
    report = _compiled.warmup()
    if any(r is None for r in report.values()):
        raise OSError("numba is not installed: every call takes the numpy path (pip install numba)")
    if args.json:
        print(json.dumps({"schema": "birkhoff.warmup/1", "families": report}, indent=2))
    elif not args.quiet:
        for family, r in report.items():
            if r is not None:                       # every one is (checked above)
                print(f"{family}: ready in {r['seconds']:.2f} s (cache: {r['cache']})")
    return 0


def _args_warmup(p: argparse.ArgumentParser) -> None:
    """No arguments: every compiled kernel family."""


def _args_kron(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="F", help="square factors U_1 ... U_K")
    p.add_argument("-o", "--output", help="write the product here; default stdout csv")


def _args_project(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="any real square matrix")
    p.add_argument("--cvxpy", action="store_true", help="use the cvxpy reference (Clarabel)")
    p.add_argument("-o", "--output", help="write the projection X here")


def _args_quantize(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="doubly stochastic matrix")
    p.add_argument("--scale", type=_positive_int, default=127, help="fixed-point scale")
    p.add_argument("--tol", type=_nonneg_real, default=1e-9, help="allowed margin residual")
    p.add_argument("--closest", action="store_true", help="minimise sum |Q - scale P| (integer program)")
    p.add_argument("-o", "--output", help="write Q here; default stdout csv")


Command = tuple[Callable[[argparse.Namespace], int], Callable[[argparse.ArgumentParser], None], str]


def _args_certify(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="matrix file (.npy .npz .csv .txt .json, - for stdin)")
    p.add_argument("--tol", type=_tol, default=None,
                   help="residual allowed for 'doubly stochastic': a number (0: exact) or auto, the rounding a float "
                        "matrix of this size carries (default: auto for float input, 0 for exact input; the output "
                        "states the rule and the smallest tol that passes)")
    p.add_argument("--product", action="store_true",
                   help="FILE holds a chain (L, n, n): certify Ms[-1] @ ... @ Ms[0]")
    p.add_argument("--each", action="store_true",
                   help="FILE holds a stack (L, n, n): certify every matrix (certify_batch)")
    p.add_argument("--distance", action="store_true",
                   help="also enclose the Frobenius distance to the Birkhoff polytope")


def _args_sinkhorn(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="nonnegative matrix or stack (..., n, n)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--iters", type=_nonneg_int, help="exactly N row-then-column sweeps (mHC SK_t)")
    g.add_argument("--tol", type=_tol, help="iterate to this max marginal error, or auto (default): 2 n u, the "
                                            "rounding level, which certify's default accepts")
    p.add_argument("--max-iter", type=_positive_int, default=10_000, help="sweep limit")
    p.add_argument("--method", choices=METHODS, default="auto",
                   help="tolerance mode: auto (sweeps, Newton when sweeps are slow), sinkhorn or newton")
    p.add_argument("--dps", type=_checked(int, lambda v: count(v, "the value", low=15)),
                   help="mpmath with D decimal digits (>= 15; single matrix)")
    p.add_argument("-o", "--output", help="write the result here (format by extension); default stdout csv")


COMMANDS: dict[str, Command] = {
    "certify": (_cmd_certify, _args_certify,
                "rigorous certificate: DS?, residuals, spectral radius/norm, gains"),
    "sinkhorn": (_cmd_sinkhorn, _args_sinkhorn,
                 "scale a nonnegative matrix to doubly stochastic"),
    "bvn": (_cmd_bvn, _args_bvn, "Birkhoff-von Neumann decomposition into permutations"),
    "kron": (_cmd_kron, _args_kron, "Kronecker product of factors (KromHC H_res)"),
    "project": (_cmd_project, _args_project,
                "Euclidean projection onto the Birkhoff polytope, certified distance"),
    "quantize": (_cmd_quantize, _args_quantize,
                 "integer matrix with exact margins (fixed-point DS, controlled rounding)"),
    "warmup": (_cmd_warmup, _args_warmup,
               "compile the numba kernels once (cached on disk for later processes)"),
}


def _common() -> OneLineParser:
    """The options every subcommand takes."""
    p = OneLineParser(add_help=False)
    p.add_argument("--json", action="store_true", help="machine-readable output (a stable schema, see README)")
    p.add_argument("-q", "--quiet", action="store_true", help="nothing but the result and errors (no summary or progress lines)")
    p.add_argument("--exact-input", action="store_true",
                   help="read decimals in text files exactly (0.1 = 1/10); by default a text file is exact only "
                        "when visibly so (fractions, integers, a '# exact' first line)")
    p.add_argument("--key", help="the array of an .npz file to read (required when it holds several)")
    p.add_argument("--max-entries", type=_positive_int, default=MAX_FILE_ENTRIES,
                   help="refuse input files (or stdin) with more entries, checked before reading the data")
    return p


def _parser(parser_class: type[OneLineParser] = OneLineParser) -> argparse.ArgumentParser:
    parser = parser_class(prog="birkhoff", description="Doubly stochastic matrices, exact and certified.")
    parser.add_argument("--version", action="version", version=f"birkhoff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)
    common = _common()
    for name, (_, add_args, help_) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_, description=help_, parents=[common],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter))
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush of a broken or full stdout
    adds no second message and no exit code 120."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


class _UsageError(Exception):
    """A command-line usage error (argparse's message), raised instead of printing it."""


class _JsonParser(OneLineParser):
    """:class:`OneLineParser` whose errors reach :func:`main`, which prints them as ``--json`` asks."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: error: {message}")


def _report(as_json: bool, kind: str, prefix: str, message: str, code: int) -> int:
    """``prefix message`` on one line of stderr, or under ``--json`` one JSON object there (schema
    ``birkhoff.error/1``: ``error``, the kind; ``message``; ``exit_code``); returns ``code``."""
    if as_json:
        print(json.dumps({"schema": "birkhoff.error/1", "error": kind, "message": message, "exit_code": code}),
              file=sys.stderr)
    else:
        print(prefix + message, file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``birkhoff`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    parser = _parser(_JsonParser)
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        with warnings.catch_warnings(), _working(args):  # stderr carries one line: floating-point
            warnings.simplefilter("ignore", RuntimeWarning)   # warnings are not results
            return COMMANDS[args.command][0](args)
    except _UsageError as exc:
        return _report(as_json, "usage", "", str(exc), 2)
    except SystemExit as exc:
        return int(exc.code or 0)
    except ConvergenceError as exc:
        return _report(as_json, type(exc).__name__, "birkhoff: ", str(exc), 1)
    except BirkhoffError as exc:
        return _report(as_json, type(exc).__name__, "birkhoff: error: ", str(exc), 2)
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except OSError as exc:                       # writing the result failed: a full disk, a closed stdout
        _silence_stdout()
        return _report(as_json, "OSError", "birkhoff: error: ", f"cannot write the output: {exc.strerror or exc}", 2)
    except MemoryError:
        return _report(as_json, "MemoryError", "birkhoff: error: ", "the input needs more memory than this machine has",
                       2)
    except KeyboardInterrupt:
        return _report(as_json, "KeyboardInterrupt", "birkhoff: ", "interrupted", 130)
    except Exception as exc:  # a bug: one line, never a traceback at the CLI
        if os.environ.get("BIRKHOFF_DEBUG"):
            raise
        return _report(as_json, "internal", "birkhoff: internal error: ", f"{type(exc).__name__}: {exc} "
                       "(set BIRKHOFF_DEBUG=1 for the traceback)", 3)


if __name__ == "__main__":
    sys.exit(main())
