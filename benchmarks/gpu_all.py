"""``make gpu``: every GPU check and benchmark in one run, each table written as a file for docs/BENCHMARKS.md.

    python benchmarks/gpu_all.py --out runs/gpu            # a machine with CUDA: about 8 minutes
    python benchmarks/gpu_all.py --quick --out runs/gpu    # no CUDA: TRITON_INTERPRET=1, small shapes (the test)

Steps, in order; each writes ``OUT/<step>.md`` (its command, exit code, seconds and output)
and ``OUT/summary.md`` lists them all:

* ``check``: ``python -m gpu.check``, every Triton kernel against the float64 reference;
* ``peers``: ``python -m gpu.check --peers``, Liger-Kernel's and hyper-connections' mHC kernels;
* ``tests``: the tests marked ``cuda`` (``tests/gpu/``) on the device, heavy variants included (the full
  ``gradcheck``s; CUDA only: ``make test`` runs them on CPU);
* ``bench``: ``python -m gpu.bench``, kernels vs eager and ``torch.compile``, with ``hc_coeffs`` (CUDA only);
* ``layer``: ``python -m gpu.bench --layer``, one mHC layer vs Liger and hyper-connections (CUDA only);
* ``overhead``: ``benchmarks/bench_mixers.py``, each mixer's step time over plain residual, bf16;
* ``study``: ``python -m reference.lab.studies.sweep --preset gpu-smoke``, the study's GPU path
  (CUDA only: on a CPU it is the sweep that ``tests/reference/lab/test_studies.py`` runs).

``--quick`` (forced without CUDA) runs every step that can run at its smallest shapes and
records the others as skipped with the reason (without CUDA: ``tests``, ``bench``, ``layer``,
``study``; ``tests`` always, since the suite runs this script); the exit code is 1 if any step failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def steps(cuda: bool, quick: bool, out: Path) -> list[tuple[str, list[str] | None, str]]:
    """``(name, argv or None, why skipped)`` for every step."""
    q = ["--quick"] if quick else []
    gpu_only = "needs CUDA (make test runs the CPU side)"
    shapes = ["--tokens", "4096", "--widths", "1024"] if quick else []
    if cuda and not quick:
        overhead = ["--device", "cuda", "--backend", "triton", "--dtype", "bfloat16", "--block", "transformer",
                    "--depth", "8", "--width", "1024", "--batch", "8", "--seq", "2048"]
    else:
        overhead = ["--quick", "--steps", "1", *(["--device", "cuda", "--backend", "triton"] if cuda else [])]
    study = ["--preset", "gpu-smoke", "--out", str(out / "study")] + (
        ["--steps", "2", "--depths", "2", "--mixers", "residual", "mhc"] if quick else [])
    tests = None if quick else [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "--heavy",
                                str(ROOT / "tests")]
    return [
        ("check", [PY, "-m", "gpu.check", *q], ""),
        ("peers", [PY, "-m", "gpu.check", "--peers", *q], ""),
        ("tests", tests, "--quick: the suite that runs this script runs them" if cuda else gpu_only),
        ("bench", [PY, "-m", "gpu.bench", *shapes] if cuda else None, gpu_only),
        ("layer", [PY, "-m", "gpu.bench", "--layer", *shapes] if cuda else None, gpu_only),
        ("overhead", [PY, str(ROOT / "benchmarks" / "bench_mixers.py"), *overhead], ""),
        ("study", [PY, "-m", "reference.lab.studies.sweep", *study, "--no-progress"] if cuda else None, gpu_only),
    ]


def run_step(name: str, argv: list[str], out: Path, env: dict[str, str], timeout: float) -> tuple[int, float]:
    """Run one step, write ``OUT/<name>.md``; returns ``(exit code, seconds)`` (124 on timeout)."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        rc, text = proc.returncode, proc.stdout + (f"\n[stderr]\n{proc.stderr[-4000:]}" if proc.returncode else "")
    except subprocess.TimeoutExpired as exc:
        rc, text = 124, (exc.stdout or b"").decode(errors="replace") + f"\n[timed out after {timeout:g} s]"
    seconds = time.perf_counter() - t0
    command = " ".join(Path(a).name if a == PY else a for a in argv).replace(str(ROOT) + "/", "")
    body = f"## {name}\n\n`{command}`: exit {rc}, {seconds:.0f} s\n\n```\n{text.strip()}\n```\n"
    (out / f"{name}.md").write_text(body)
    return rc, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/gpu", help="where the step files go (default runs/gpu)")
    ap.add_argument("--quick", action="store_true", help="smallest shapes (forced without CUDA)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per step")
    args = ap.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    quick = args.quick or not cuda
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **({} if cuda else {"TRITON_INTERPRET": "1"}))
    device = torch.cuda.get_device_name() if cuda else "CPU (TRITON_INTERPRET=1)"
    rows, failed, total = [], 0, 0.0
    for name, cmd, why in steps(cuda, quick, out):
        if cmd is None:
            rows.append(f"| {name} | skipped: {why} | | |")
            print(f"{name:9s} skipped ({why})", flush=True)
            continue
        rc, seconds = run_step(name, cmd, out, env, args.timeout)
        failed += rc != 0
        total += seconds
        rows.append(f"| {name} | [{name}.md]({name}.md) | {rc} | {seconds:.0f} |")
        print(f"{name:9s} exit {rc}  {seconds:6.0f} s", flush=True)
    (out / "summary.md").write_text(f"# make gpu on {device}{' (quick)' if quick else ''}\n\n"
                                    "| step | output | exit | seconds |\n|---|---|---:|---:|\n"
                                    + "\n".join(rows) + f"\n\nTotal {total:.0f} s; {failed} step(s) failed.\n")
    print(f"total {total:.0f} s, {failed} failed; tables in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
