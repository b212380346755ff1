"""The committed run records as the page reads them: every file once, every run judged once.

A run's stability verdict is recomputed from its per-step losses (:func:`judge`:
:func:`reference.lab.studies.stability.classify`, no divergence, no loss spike at 0.5 nats over the
batch's unigram loss, validation below the unigram loss). Rates carry 95 % Wilson intervals
(:mod:`reference.lab.studies.stats`); two rates *differ* only when their intervals do not overlap.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterable

from .records import read_records
from .stability import THRESHOLDS, classify
from .stats import wilson

__all__ = ["Evidence", "judge", "label", "rate", "overlap_word", "groups", "LEARNED_MARGIN"]

LEARNED_MARGIN = 0.05                 # nats below the unigram loss: the stricter reading of "learned"


def judge(record: dict, spike_nats: float = THRESHOLDS[0]) -> dict:
    """The stability verdict of one record (:func:`reference.lab.studies.stability.classify`), from its
    per-step series (every step is kept for runs of up to 500 steps)."""
    if record["stride"] != 1:
        raise ValueError(f"{record['run']}: a strided series cannot be classified step by step")
    series = record["series"]
    steps = [{"loss": l, "grad_norm_total": g} for l, g in zip(series["loss"], series["grad_norm_total"])]
    summary = {k: record[k] for k in ("diverged", "val_loss", "unigram_loss")}
    return classify(summary, steps, spike_nats, series["unigram"])


class Evidence:
    """The records files of ``records_dir`` (``*.jsonl``), read once, and each run's verdict, computed once."""

    def __init__(self, records_dir: Path) -> None:
        self.files = {p.name: read_records(p) for p in sorted(Path(records_dir).glob("*.jsonl"))}
        self._judged: dict[int, dict] = {}

    def runs(self, *names: str) -> list[dict]:
        """The records of the files ``names`` (a file not committed yet gives none)."""
        return [r for name in names for r in self.files.get(name, [])]

    def judge(self, record: dict) -> dict:
        key = id(record)
        if key not in self._judged:
            self._judged[key] = judge(record)
        return self._judged[key]

    def count(self, runs: Iterable[dict], key: str) -> tuple[int, int]:
        """``(k, n)``: how many of ``runs`` have verdict ``key`` (stable, diverged, or spiked; ``learned``:
        stable and ending at least ``LEARNED_MARGIN`` nats below the unigram loss)."""
        runs = list(runs)
        if key == "learned":
            return sum(self.judge(r)["stable"] and r["val_loss"] <= r["unigram_loss"] - LEARNED_MARGIN
                       for r in runs), len(runs)
        field = "loss_spikes" if key == "spiked" else key
        return sum(bool(self.judge(r)[field]) for r in runs), len(runs)


def label(record: dict) -> str:
    """The mixer's name as the tables show it (HC's causal arm: ``hc (gain bounded)``)."""
    s = record["settings"]
    return s["mixer"] + (" (gain bounded)" if s.get("res_bound", "none") != "none" else "")


def rate(k: int, n: int) -> str:
    """``k/n [lo, hi]`` with the 95 % Wilson interval."""
    lo, hi = wilson(k, n)
    return f"{k}/{n} [{lo:.2f}, {hi:.2f}]"


def overlap_word(a: tuple[int, int], b: tuple[int, int]) -> str:
    """"differs" when the 95 % Wilson intervals of the rates ``a`` and ``b`` do not overlap, else
    "no difference detected"."""
    (alo, ahi), (blo, bhi) = wilson(*a), wilson(*b)
    return "differs" if alo > bhi or ahi < blo else "no difference detected"


def groups(runs: Iterable[dict], *fields: str) -> dict[tuple, list[dict]]:
    """``runs`` grouped by settings ``fields`` (``"label"``: :func:`label`), in sorted order."""
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        out[tuple(label(r) if f == "label" else r["settings"][f] for f in fields)].append(r)
    return dict(sorted(out.items()))
