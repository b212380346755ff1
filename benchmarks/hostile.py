"""Hostile-input run: every public entry point fed malformed, extreme and adversarial inputs.

    python benchmarks/hostile.py --rounds 40       # the run quoted in docs/RELIABILITY.md
    python benchmarks/hostile.py --rounds 2        # a quick one (the suite runs this)

Each round draws, for every entry point of ``birkhoff`` (API and CLI), ``gpu.ops`` and
``python -m reference.train``, one input from each hostile class (NaN/Inf, negative,
empty, ragged, non-square, wrong ndim, strings, None, complex, bools, exact values with
huge exponents, masked arrays, sparse / meta / float8 / bfloat16 tensors, scales
1e-300..1e300, subnormals, all-zero, ill-scaled (entries spanning 1e-300..1e300, one
dominant entry, rank one), bad flags and counts, corrupt and hostile files: a compressed
bomb, a device, a FIFO, a folder; rational tolerances; trainer sizes past their bounds,
tampered optimizer state, a FIFO checkpoint), with a 10 s guard. An outcome is

* ``ok``: returned; numeric results hold no NaN (else counted as ``nan-result``), and the
  solvers' results pass their own promise, checked here in exact arithmetic (``project``:
  ``X >= 0`` with marginals within its tolerance; ``sinkhorn``: marginals; ``bvn_decompose``:
  reconstruction; ``quantize``: exact margins; else counted as ``wrong-result``);
* ``typed``: the promised error (``BirkhoffError`` for ``birkhoff``, ``TypeError`` /
  ``ValueError`` for ``gpu.ops``, exit 1 or 2 with one stderr line for the CLIs);
* ``untyped:<name>``: any other exception, exit code or a traceback: a failure;
* ``hang``: still running after the guard: a failure.

Prints probes and outcomes per entry point; exits 1 if any failure was seen.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import signal
import sys
import tempfile
from collections import Counter, defaultdict
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TRITON_INTERPRET", "1")

import mpmath  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import birkhoff as B  # noqa: E402
from birkhoff.cli import main as birkhoff_main  # noqa: E402
from birkhoff.io import save_matrix  # noqa: E402

GUARD_S = 10
FAILURES = ("untyped", "hang", "nan-result", "wrong-result")
EPS = np.finfo(np.float64).eps


class Hang(BaseException):
    pass


def _alarm(*_: Any) -> None:
    raise Hang


# ----------------------------------------------------------------------------- hostile values

def matrices(rng: np.random.Generator) -> dict[str, Any]:
    """One input per hostile matrix class (fresh random draws each round)."""
    n = int(rng.integers(1, 7))
    base = rng.random((n, n))
    scale = 10.0 ** rng.uniform(-300, 300)
    nan = base.copy()
    nan[rng.integers(n), rng.integers(n)] = rng.choice([np.nan, np.inf, -np.inf])
    masked = np.ma.masked_array(base, mask=rng.random((n, n)) < 0.3)
    return {
        "random": base, "scaled": base * scale, "signed": base - base.mean(), "subnormal": base * 5e-324,
        "zeros": np.zeros((n, n)), "nan/inf": nan, "empty": np.zeros((0, 0)), "non-square": rng.random((n, n + 1)),
        "1-d": rng.random(n), "0-d": 0.5, "3-d": rng.random((2, n, n)), "ragged": [[1.0, 0.0], [0.5]],
        "strings": [["a", "b"], ["c", "d"]], "None": None, "complex": base + 1j, "bools": base > 0.5,
        "huge ints": np.full((n, n), 10 ** 400, dtype=object),
        "fractions": np.array([[Fraction(1, 3 ** 50)] * n] * n, dtype=object),
        "decimal exponent": np.array([[Decimal(f"1e{int(rng.integers(-10**9, 10**9))}")] * n] * n, dtype=object),
        "mpf exponent": np.array([[mpmath.mpf(f"1e{int(rng.integers(-10**9, 10**9))}")] * n] * n, dtype=object),
        "masked": masked, "sparse tensor": torch.eye(n).to_sparse(), "meta tensor": torch.eye(n, device="meta"),
        "float8 tensor": torch.tensor(base, dtype=torch.float32).to(torch.float8_e5m2),
        "bfloat16 tensor": torch.tensor(base).to(torch.bfloat16), "int tensor": torch.ones(n, n, dtype=torch.int64),
        "object junk": np.array([[object()] * n] * n, dtype=object), "DS": np.full((n, n), 1.0 / n),
        **ill_scaled(rng, n),
    }


def ill_scaled(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Finite inputs whose information lies below float rounding of their largest entries."""
    dominant = rng.standard_normal((n, n))
    dominant[rng.integers(n), rng.integers(n)] = 10.0 ** rng.uniform(10, 300)
    return {"span 1e-300..1e300": 10.0 ** rng.uniform(-300, 300, (n, n)) * rng.choice([-1.0, 1.0], (n, n)),
            "dominant entry": dominant,
            "rank one": np.outer(rng.standard_normal(n), rng.standard_normal(n)) * 10.0 ** rng.uniform(-150, 150)}


def _marginal_error(X: np.ndarray) -> Fraction:
    Q = np.vectorize(Fraction, otypes=[object])(np.asarray(X, dtype=np.float64))
    return max(abs(s - 1) for s in [*Q.sum(-1).flat, *Q.sum(-2).flat])


# the numeric classes that are also scaled to DS (by sinkhorn) for bvn_decompose and quantize
SCALABLE = ("random", "scaled", "subnormal", "span 1e-300..1e300", "dominant entry", "rank one")
# what a returned result must satisfy (exact arithmetic; None: nothing beyond "no NaN")
PROMISES: dict[str, Callable[[Any], bool]] = {
    "project": lambda p: bool((p.X >= 0).all()) and _marginal_error(p.X) <= 1e-10,
    "sinkhorn": lambda P: _marginal_error(P) <= Fraction(1e-12) + 4 * P.shape[-1] * Fraction(EPS),
    "bvn_decompose": lambda d: d.residual <= 1e-6,
    "quantize": lambda r: all((np.asarray(r[0]).sum(k) == r[1]).all() for k in (0, 1)),
}


def scalars(rng: np.random.Generator) -> dict[str, Any]:
    return {"None": None, "string": "1e-9", "bool": True, "negative": -1, "nan": float("nan"), "inf": float("inf"),
            "huge int": 2 ** 100, "zero": 0, "fraction": Fraction(1, 3), "decimal exponent": Decimal("1e-999999999"),
            "mpf exponent": mpmath.mpf("1e-999999999"), "np int": np.int64(3), "float": float(rng.random()),
            "array": np.ones(2), "complex": 1j}


FLAG_VALUES = {"'no'": "no", "None": None, "1": 1, "0.0": 0.0, "np.True_": np.True_, "[]": []}


# ----------------------------------------------------------------------------- entry points

def birkhoff_calls(rng: np.random.Generator) -> dict[str, list[tuple[str, Callable[[], Any]]]]:
    """Entry point -> [(probe name, call)]."""
    M, S = matrices(rng), scalars(rng)
    P = M["DS"]
    n = P.shape[0]
    calls: dict[str, list] = defaultdict(list)

    def add(entry: str, name: str, call: Callable[[], Any]) -> None:
        calls[entry].append((name, call))

    for name, A in M.items():
        add("sinkhorn", name, lambda A=A: B.sinkhorn(A, max_iter=2000))
        add("sinkhorn(iters)", name, lambda A=A: B.sinkhorn(A, iters=20))
        add("sinkhorn_logits", name, lambda A=A: B.sinkhorn_logits(A))
        add("sinkhorn_mp", name, lambda A=A: B.sinkhorn_mp(A, dps=20, max_iter=500))
        add("has_total_support", name, lambda A=A: B.has_total_support(A))
        add("certify", name, lambda A=A: B.certify(A))
        add("certify_batch", name, lambda A=A: B.certify_batch(A))
        add("certify_product", name, lambda A=A: B.certify_product(A))
        add("bvn_decompose", name, lambda A=A: B.bvn_decompose(A))
        if name in SCALABLE:
            add("bvn_decompose", f"{name}, scaled to DS", lambda A=A: B.bvn_decompose(B.sinkhorn(np.abs(A))))
            add("quantize", f"{name}, scaled to DS", lambda A=A: B.quantize(B.sinkhorn(np.abs(A))))
        add("quantize", name, lambda A=A: B.quantize(A))
        add("project", name, lambda A=A: B.project(A))
        add("certify_projection", name, lambda A=A: B.certify_projection(A, B.project(P)))
        add("kron", name, lambda A=A: B.kron(A, P))
        add("kron_apply", name, lambda A=A: B.kron_apply([P], A))
        add("hc_lipschitz_bound", name, lambda A=A: B.hc_lipschitz_bound(A, np.ones(n), np.ones(n)))
        add("hc_lipschitz_bound(H_pre)", name, lambda A=A: B.hc_lipschitz_bound(P, A, np.ones(n)))
        add("composite_lipschitz_bound", name, lambda A=A: B.composite_lipschitz_bound([(A, np.ones(n), np.ones(n))]))
        add("from_permutations(weights)", name, lambda A=A: B.from_permutations(A, np.arange(n)[None]))
        add("permutation_matrix", name, lambda A=A: B.permutation_matrix(A))
        add("kromhc_factor", name, lambda A=A: B.kromhc_factor(A))
        add("save_matrix", name, lambda A=A: save_matrix(os.path.join(tempfile.gettempdir(), "hostile.csv"), A))
    for name, v in S.items():
        add("sinkhorn(tol)", name, lambda v=v: B.sinkhorn(P, tol=v))
        add("sinkhorn(iters=)", name, lambda v=v: B.sinkhorn(P, iters=v))
        add("sinkhorn_mp(dps)", name, lambda v=v: B.sinkhorn_mp(P, dps=v))
        add("sinkhorn_mp(tol)", name, lambda v=v: B.sinkhorn_mp(P, dps=20, tol=v))
        add("certify(tol)", name, lambda v=v: B.certify(P, tol=v))
        add("bvn_decompose(tol)", name, lambda v=v: B.bvn_decompose(P, tol=v))
        add("quantize(scale)", name, lambda v=v: B.quantize(P, v))
        add("project(tol)", name, lambda v=v: B.project(P, tol=v))
        add("hc_lipschitz_bound(lip_f)", name, lambda v=v: B.hc_lipschitz_bound(P, np.ones(n), np.ones(n), v))
        add("all_permutations", name, lambda v=v: B.all_permutations(v))
        add("cyclic_permutations", name, lambda v=v: B.cyclic_permutations(v))
        add("kron_factor_sizes", name, lambda v=v: B.kron_factor_sizes(v))
        add("kromhc_factor", f"scalar {name}", lambda v=v: B.kromhc_factor(v))
        add("kron_apply(axis)", name, lambda v=v: B.kron_apply([P], np.ones((n, 2)), axis=v))
    for name, v in FLAG_VALUES.items():
        add("certify(distance)", name, lambda v=v: B.certify(P, distance=v))
        add("bvn_decompose(exact)", name, lambda v=v: B.bvn_decompose(P, exact=v))
        add("quantize(closest)", name, lambda v=v: B.quantize(P, closest=v))
        add("sinkhorn(return_info)", name, lambda v=v: B.sinkhorn(P, return_info=v))
        add("permutation_matrix(exact)", name, lambda v=v: B.permutation_matrix(np.arange(n), exact=v))
    big = int(rng.integers(2 ** 40, 2 ** 62))
    add("kron_factor_sizes", "2^40..2^62", lambda: B.kron_factor_sizes(big))
    add("quantize(scale)", "2^60 closest", lambda: B.quantize(P, 2 ** 60, closest=True))
    add("certify_product", "ragged list", lambda: B.certify_product([P, [[1.0, 0.0], [0.0]]]))
    add("kron_apply", "generator of factors", lambda: B.kron_apply((P for _ in range(2)), np.ones(n * n)))
    add("composite_lipschitz_bound", "(H,)", lambda: B.composite_lipschitz_bound([(P,)]))
    return calls


_BOMB: list[bytes] = []


def _bomb() -> bytes:
    """130 KB of .npz that decompresses to 4096 x 4096 float64 (128 MB); made once a run."""
    if not _BOMB:
        buf = io.BytesIO()
        np.savez_compressed(buf, M=np.zeros((4096, 4096)))
        _BOMB.append(buf.getvalue())
    return _BOMB[0]


def _file_probes(rng: np.random.Generator, folder: Path) -> dict[str, Path]:
    """Corrupt and hostile files for load_matrix and the CLI (and the paths that are no regular file)."""
    n = int(rng.integers(1, 5))
    files = {
        "huge exponent csv": "1/3 2/3\n2/3 1e99999999\n",
        "huge exponent json": '[["1/2", "1/2"], ["1/2", "1e-999999999"]]',
        "long decimal exponent": "0.3333333333333333333333 1\n1 1e-99999999\n",
        "5000-digit int json": "[[" + "7" * 5000 + ", 0], [0, 1]]",
        "deep json": "[" * 50_000 + "]" * 50_000,
        "ragged csv": "1 2\n3\n",
        "binary garbage": bytes(rng.integers(0, 256, 64, dtype=np.uint8)),
        "empty": "",
        "nan csv": "nan 1\n1 0\n",
        "division by zero": "1/0 1\n1 0\n",
        "savetxt floats": "\n".join(" ".join(f"{x:.18e}" for x in row) for row in np.full((n, n), 1.0 / n)),
    }
    buf = io.BytesIO()
    np.save(buf, np.full((n, n), 1.0 / n))
    npy = bytearray(buf.getvalue())
    files["truncated npy"] = bytes(npy[: len(npy) // 2])
    buf = io.BytesIO()
    np.savez_compressed(buf, M=np.full((64, 64), 1 / 64))
    broken = bytearray(buf.getvalue())
    broken[80:90] = b"\xff" * 10
    files["broken npz"] = bytes(broken)
    files["npz bomb"] = _bomb()
    out = {}
    for name, content in files.items():
        suffix = ".json" if "json" in name else ".npy" if "npy" in name else ".npz" if "npz" in name else ".csv"
        path = folder / (name.replace(" ", "_") + suffix)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        out[name] = path
    os.mkfifo(folder / "fifo.csv")
    out.update({"/dev/zero": Path("/dev/zero"), "fifo": folder / "fifo.csv", "folder": folder})
    return out


def cli_calls(rng: np.random.Generator, folder: Path) -> dict[str, list[tuple[str, list[str]]]]:
    calls: dict[str, list] = defaultdict(list)
    for name, path in _file_probes(rng, folder).items():
        for cmd in (["certify"], ["certify", "--product"], ["sinkhorn"], ["bvn"], ["project"], ["quantize"], ["kron"]):
            calls[f"birkhoff {cmd[0]}"].append((name, [*cmd, str(path)]))
    good = folder / "good.csv"
    good.write_text("1/2 1/2\n1/2 1/2\n")
    for bad in (["--tol", "nan"], ["--tol", "-1"], ["--tol", "1/0"], ["--tol", "1e99999"], ["--tol", "1/4"], ["--dps", "5"],
                ["--iters", "1.5"], ["--scale", "0"], ["-o", str(good) + "/x.csv"], ["--nope"]):
        for cmd in ("certify", "sinkhorn", "quantize", "bvn"):
            calls[f"birkhoff {cmd}"].append((" ".join(bad), [cmd, str(good), *bad]))
    return calls


def gpu_calls(rng: np.random.Generator) -> dict[str, list[tuple[str, Callable[[], Any]]]]:
    from gpu import ops

    x = torch.randn(3, 4, 8)
    calls: dict[str, list] = defaultdict(list)
    # (non-finite activations propagate through the layer ops as through any torch op, unchecked:
    # a check would cost a device sync per call; the trainer catches them as a divergence)
    hostile = {"int": x.long(), "float8": x.to(torch.float8_e5m2),
               "sparse": x.to_sparse(), "meta": x.to("meta"), "complex": x.to(torch.complex64), "numpy": x.numpy(),
               "n=17": torch.randn(3, 17, 8), "0-d": torch.tensor(1.0), "empty": torch.zeros(0, 4, 8)}
    for name, t in hostile.items():
        calls["gpu.hc_pre"].append((name, lambda t=t: ops.hc_pre(t, torch.rand(3, 4))))
        calls["gpu.hc_post_res"].append((name, lambda t=t: ops.hc_post_res(t, torch.rand(3, 8), torch.rand(3, 4, 4),
                                                                            torch.rand(3, 4))))
        calls["gpu.sinkhorn"].append((name, lambda t=t: ops.sinkhorn(t)))
        calls["gpu.screen_batch"].append((name, lambda t=t: ops.screen_batch(t)))
    perms = {"repeat": [[0, 0, 1]], "out of range": [[0, 1, 7]], "negative": [[-1, 0, 1]], "K=0": np.zeros((0, 3)),
             "float": [[0.0, 1.0, 2.0]], "n=17": [list(range(17))]}
    for name, p in perms.items():
        tensor = torch.as_tensor(np.asarray(p, dtype=np.float64 if name == "float" else np.int64))
        calls["gpu.bvn_combine"].append((name, lambda p=tensor: ops.bvn_combine(torch.rand(2, p.shape[0]), p)))
    for name, s in {"2^31": (0, 2 ** 31), "negative": (0, -1), "float": (0, 1.5), "empty": (), "None": (None,)}.items():
        calls["gpu.token_mix"].append((name, lambda s=s: ops.token_mix(torch.randn(1, 5, 3), torch.ones(len(s), 3), s)))
    for name, eps in {"nan": float("nan"), "0": 0.0, "-1": -1.0, "inf": float("inf"), "str": "1e-6"}.items():
        calls["gpu.hc_coeffs(eps)"].append((name, lambda e=eps: ops.hc_coeffs(
            torch.randn(2, 4, 8), torch.zeros(32, 24), torch.ones(3), torch.zeros(24), eps=e)))
    return calls


def train_calls(folder: Path) -> dict[str, list[tuple[str, list[str]]]]:
    small = ["--depth", "1", "--width", "8", "--task", "markov", "--batch-size", "2", "--seq-len", "4",
             "--eval-batches", "1", "--no-progress"]
    base = folder / "run"
    probes = {
        "lr nan": ["--lr", "nan"], "lr 1e30 one step": ["--lr", "1e30", "--steps", "1"],
        "weight decay -1": ["--weight-decay", "-1"], "grad clip inf": ["--grad-clip", "inf"],
        "steps 0": ["--steps", "0"], "heads 3": ["--model", "transformer", "--heads", "3"],
        "resume, no run": ["--resume", "--out", str(folder / "none")],
        "out is a file": ["--out", str(folder / "file")],
        "resume and overwrite": ["--resume", "--overwrite"],
        "existing run": [], "changed lr on resume": ["--resume", "--lr", "0.3"],
        "changed seed on resume": ["--resume", "--seed", "5"], "backwards": ["--resume", "--steps", "1"],
        "seed -1": ["--seed", "-1"], "ckpt-every -1": ["--ckpt-every", "-1"],
        "lr 1e30, no validation": ["--lr", "1e30", "--steps", "1", "--eval-batches", "0", "--out", str(folder / "blow")],
        "depth 1e9": ["--depth", "1000000000"], "width 1e8": ["--width", "100000000"],
        "batch size 1e8": ["--batch-size", "100000000"], "seed 2^70": ["--seed", str(2 ** 70)],
        "seq-len 1e8": ["--seq-len", "100000000"], "out ''": ["--out", ""],
        "paper schedule, steps grow": ["--schedule", "paper", "--steps", "3", "--resume", "--out", str(folder / "paper")],
        **{f"ckpt: {how}": ["--resume", "--steps", "3", "--out", str(folder / how.replace(" ", "_"))]
           for how in TAMPERED},
    }
    (folder / "file").write_text("x")
    return {"reference.train": [(name, [*small, "--steps", "2", "--out", str(base), *extra])
                                for name, extra in probes.items()]}


def _tamper(ckpt: dict, how: str, path: Path) -> None:
    groups = ckpt["opt"]["param_groups"]
    if how == "betas 0.5":
        groups[0]["betas"] = (0.5, 0.5)
    elif how == "weight decay 0.7":
        groups[0]["weight_decay"] = 0.7
    elif how == "nan exp_avg_sq":
        next(iter(ckpt["opt"]["state"].values()))["exp_avg_sq"].view(-1)[0] = float("nan")
    if how == "fifo":
        path.unlink()
        os.mkfifo(path)
    else:
        torch.save(ckpt, path)


TAMPERED = ("betas 0.5", "weight decay 0.7", "nan exp_avg_sq", "fifo")


def _train_folders(folder: Path, train_main: Callable[[list[str]], int]) -> None:
    """The runs the trainer probes resume: a finished one (``run``), a paper-schedule one, and one
    unfinished copy per tampered checkpoint."""
    small = ["--depth", "1", "--width", "8", "--task", "markov", "--batch-size", "2", "--seq-len", "4",
             "--eval-batches", "1", "--no-progress", "--steps", "2"]
    train_main([*small, "--out", str(folder / "run")])
    train_main([*small, "--schedule", "paper", "--out", str(folder / "paper")])
    for how in TAMPERED:
        out = folder / how.replace(" ", "_")
        shutil.copytree(folder / "run", out, ignore=shutil.ignore_patterns(".lock", "summary.json"))
        _tamper(torch.load(out / "ckpt.pt", weights_only=True), how, out / "ckpt.pt")


# ----------------------------------------------------------------------------- running

def _no_nan(result: Any) -> bool:
    """A returned number or array holds no NaN (an ``inf`` upper bound is a valid bound)."""
    if result is None:
        return True
    value = result.X if hasattr(result, "X") else result[0] if isinstance(result, tuple) else result
    if isinstance(value, float):
        return value == value
    arr = np.asarray(value) if isinstance(value, np.ndarray) else None
    return arr is None or arr.dtype.kind != "f" or not bool(np.isnan(arr).any())   # exact arrays hold no NaN


def _outcome(call: Callable[[], Any], typed: tuple[type, ...], promise: Callable[[Any], bool] | None = None) -> str:
    signal.alarm(GUARD_S)
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            result = call()
    except Hang:
        return "hang"
    except typed:
        return "typed"
    except Exception as exc:                              # noqa: BLE001 - counting every kind of failure
        return f"untyped:{type(exc).__name__}"
    finally:
        signal.alarm(0)
    if not _no_nan(result):
        return "nan-result"
    return "ok" if promise is None or promise(result) else "wrong-result"


def _cli_outcome(main: Callable[[list[str]], int], argv: list[str], expected: tuple[int, ...],
                 refuse: bool = False) -> str:
    """``ok`` (exit 0; with ``refuse``, every probe must be refused, so exit 0 is ``untyped:accepted``),
    ``typed`` (an expected exit code with at most one stderr line), or a failure."""
    err = io.StringIO()
    signal.alarm(GUARD_S)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    except SystemExit as exc:
        code = exc.code
    except Hang:
        return "hang"
    except Exception as exc:                              # noqa: BLE001
        return f"untyped:{type(exc).__name__}"
    finally:
        signal.alarm(0)
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip() and "%|" not in ln]
    if code == 0:
        return "untyped:accepted" if refuse else "ok"
    if code in expected and len(lines) <= 1 and "Traceback" not in err.getvalue():
        return "typed"
    return f"untyped:exit {code}, {len(lines)} stderr lines"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from reference.lab.train import main as train_main

    signal.signal(signal.SIGALRM, _alarm)
    rng = np.random.default_rng(args.seed)
    table: dict[str, Counter] = defaultdict(Counter)
    examples: dict[str, list[str]] = defaultdict(list)

    def record(entry: str, name: str, outcome: str) -> None:
        table[entry][outcome] += 1
        if outcome.split(":")[0] in FAILURES and len(examples[entry]) < 3:
            examples[entry].append(f"{name} -> {outcome}")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for r in range(args.rounds):
            for entry, probes in birkhoff_calls(rng).items():
                for name, call in probes:
                    record(entry, name, _outcome(call, (B.BirkhoffError,), PROMISES.get(entry)))
            for entry, probes in gpu_calls(rng).items():
                for name, call in probes:
                    record(entry, name, _outcome(call, (TypeError, ValueError)))
            sub = folder / f"cli{r}"
            sub.mkdir()
            for entry, probes in cli_calls(rng, sub).items():
                for name, argv_ in probes:
                    record(entry, name, _cli_outcome(birkhoff_main, argv_, (1, 2)))
            if r < 2:                                         # the trainer probes are deterministic
                tsub = folder / f"train{r}"
                tsub.mkdir()
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    _train_folders(tsub, train_main)
                for entry, probes in train_calls(tsub).items():
                    for name, argv_ in probes:
                        record(entry, name, _cli_outcome(train_main, argv_, (2, 3), refuse=True))
    total = Counter()
    print("| entry point | probes | ok | typed error | failures |\n|---|---:|---:|---:|---|")
    for entry in sorted(table):
        c = table[entry]
        total.update(c)
        bad = {k: v for k, v in c.items() if k.split(":")[0] in FAILURES}
        print(f"| {entry} | {sum(c.values())} | {c['ok']} | {c['typed']} | "
              f"{', '.join(f'{k} x{v}' for k, v in bad.items()) or '0'} |")
    failures = sum(v for k, v in total.items() if k.split(":")[0] in FAILURES)
    print(f"\n{len(table)} entry points, {sum(total.values())} probes: {total['ok']} ok, {total['typed']} typed errors, "
          f"{failures} failures")
    for entry, lines in examples.items():
        for line in lines:
            print(f"  {entry}: {line}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
