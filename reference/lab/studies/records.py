"""Compact run records: one JSON line per finished run, the raw evidence behind docs/DEPTH.md.

    python -m reference.lab.studies.records runs/stability-L32 --out docs/depth/records/stability-L32.jsonl
    python -m reference.lab.studies.records docs/depth/records/stability-L64.jsonl runs/stability-L64e \
        --out docs/depth/records/stability-L64.jsonl      # more seeds for committed points

A record keeps what a number on the page can be computed from, and of the machine it ran on only
its training time: the run's settings (every :class:`~reference.lab.runs.Config` field that changes
the result, the seed included), its outcome (diverged, and where and why), the final training,
validation and unigram losses, the composite gains of ``prod H_res`` at the end and their maxima
over training, the DS residual, the stream use (``stream_spread``, ``h_res_off_identity``,
``h_res_ablation``), the parameter counts, ``train_seconds`` (from the trainer's tokens/s, for the
page's CPU-hours), and the per-step loss, the batch's unigram cross-entropy, total gradient norm
and composite gains (every ``stride``-th step, ``stride = ceil(steps / 500)``, 6 significant
digits for losses, 4 for the rest). The per-step losses and unigram losses are what the stability
verdicts (spikes of the excess loss) are recomputed from, at any threshold; the unigram losses are
a function of the data, the seed and the step (``stability.batch_baselines``), kept so that a
record is read without rebuilding the batches. Lines are sorted by run name and written with sorted
keys, so the same runs give the same bytes.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

from birkhoff.cli import OneLineParser

from ..runs import BOOKKEEPING, SUMMARY, read_config, read_metrics, read_summary
from ...checkpoint import atomic_write

__all__ = ["RECORD_VERSION", "MAX_POINTS", "compact", "collect", "read_records", "write_records"]

RECORD_VERSION = 1
MAX_POINTS = 500                      # per-step series longer than this are kept every stride-th step
_SUMMARY_FIELDS = ("final_loss", "val_loss", "unigram_loss", "gain_forward", "gain_backward", "ds_residual",
                   "h_res_off_identity", "stream_spread", "h_res_ablation", "params", "mixing_params_per_layer")
_SERIES = {"loss": 6, "unigram": 6, "grad_norm_total": 4, "gain_forward": 4, "gain_backward": 4}


def _round(x: Any, digits: int) -> Any:
    """``x`` to ``digits`` significant digits (None and non-finite values as None; dicts and lists inside)."""
    if isinstance(x, dict):
        return {k: _round(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_round(v, digits) for v in x]
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return x
    if isinstance(x, int):
        return x
    return float(f"{x:.{digits}g}") if math.isfinite(x) else None


def compact(run_dir: str | os.PathLike) -> dict:
    """The record of the finished run in ``run_dir`` (:class:`FileNotFoundError` when it has no summary)."""
    run_dir = Path(run_dir)
    summary, cfg, steps = read_summary(run_dir), read_config(run_dir), read_metrics(run_dir)
    from .stability import batch_baselines

    stride = max(1, math.ceil(len(steps) / MAX_POINTS))
    steps = [{**r, "unigram": b} for r, b in zip(steps, batch_baselines(cfg, len(steps)))]
    kept = steps[::stride]
    settings = {k: v for k, v in asdict(cfg).items() if k not in BOOKKEEPING}

    def peak(key: str) -> float | None:
        values = [r[key] for r in steps if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        return _round(max(values), 6) if values else None

    return {
        "record": RECORD_VERSION, "run": run_dir.name, "settings": settings,
        "diverged": bool(summary["diverged"]), "divergence": _round(summary.get("divergence"), 6),
        **{k: _round(summary.get(k), 6) for k in _SUMMARY_FIELDS},
        "max_gain_forward": peak("gain_forward"), "max_gain_backward": peak("gain_backward"),
        "steps_run": len(steps), "stride": stride, "train_seconds": _train_seconds(cfg, steps),
        "series": {k: [_round(r.get(k), d) for r in kept] for k, d in _SERIES.items()},
    }


def _train_seconds(cfg, steps: list[dict]) -> float | None:
    """The run's training time in seconds, ``sum_t batch_size seq_len / tokens_per_s(t)`` (evaluation and
    ablations excluded; None when a step did not log its speed): what the page's CPU-hours add up."""
    rates = [r.get("tokens_per_s") for r in steps]
    if not rates or not all(isinstance(x, (int, float)) and math.isfinite(x) and x > 0 for x in rates):
        return None
    return _round(sum(cfg.batch_size * cfg.seq_len / x for x in rates), 3)


def collect(roots: Iterable[str | os.PathLike]) -> list[dict]:
    """The records of every finished run (a folder with ``summary.json``) under ``roots``, and those of the
    records files (``.jsonl``) among ``roots``, kept as they are: seeds added to a point whose first runs
    are already committed. By run name."""
    roots = [Path(r) for r in roots]
    files = [r for r in roots if r.suffix == ".jsonl"]
    if missing := [str(r) for r in roots if not r.exists()]:
        raise FileNotFoundError(f"no such runs folder or records file: {missing[0]}")
    folders = sorted({p.parent for root in roots if root not in files for p in root.rglob(SUMMARY)},
                     key=lambda p: (p.name, str(p)))
    return [r for f in files for r in read_records(f)] + [compact(f) for f in folders]


def write_records(path: str | os.PathLike, records: list[dict]) -> None:
    """``records`` as JSON lines (sorted keys, by run name), atomically; duplicate run names are refused."""
    names = [r["run"] for r in records]
    if len(set(names)) != len(names):
        raise ValueError(f"two records share a run name: {sorted({n for n in names if names.count(n) > 1})[:3]}")
    text = "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in sorted(records, key=lambda r: r["run"]))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def read_records(path: str | os.PathLike) -> list[dict]:
    """The records of a file written by :func:`write_records`."""
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    bad = [r.get("run") for r in records if r.get("record") != RECORD_VERSION]
    if bad:
        raise ValueError(f"{path}: records of another version: {bad[:3]}")
    return records


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m reference.lab.studies.records", description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", help="folders holding finished run folders (searched recursively), "
                                             "or records files (.jsonl) whose records are kept")
    ap.add_argument("--out", required=True, help="the records file (.jsonl) to write")
    args = ap.parse_args(argv)
    try:
        records = collect(args.roots)
        write_records(args.out, records)
    except (ValueError, OSError) as exc:
        print(f"reference.lab.studies.records: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    size = Path(args.out).stat().st_size
    print(f"{len(records)} records, {size / 1024:.0f} KiB: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
