"""docs/DEPTH.md's generated sections, rebuilt from the committed run records (docs/depth/records/).

    python -m reference.lab.studies.page            # rewrite every generated section of docs/DEPTH.md
    python -m reference.lab.studies.page --check    # exit 1 when the page and the records disagree

A generated section sits between ``<!-- records:NAME -->`` and ``<!-- /records:NAME -->``; everything
in it is computed here from the records (:mod:`reference.lab.studies.records`), nothing typed by hand.
The stability verdict of a run is recomputed from its per-step losses (:func:`classify`: no
divergence, no loss spike at 0.5 nats over the batch's unigram loss, validation below the unigram
loss); the table also counts the runs that end at least :data:`LEARNED_MARGIN` below the unigram
loss, so that "stable" does not rest on runs a few thousandths of a nat below it. Rates carry 95 %
Wilson intervals (:mod:`reference.lab.studies.stats`); two rates *differ* only when their
intervals do not overlap.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable

from birkhoff.cli import OneLineParser

from .records import read_records
from .seeds import spread
from .stability import THRESHOLDS, classify
from .stats import wilson

__all__ = ["SECTIONS", "render", "regenerate", "verdicts"]

PAGE = Path("docs/DEPTH.md")
LEARNED_MARGIN = 0.05                 # nats below the unigram loss: the stricter reading of "learned"
RECORDS = Path("docs/depth/records")


def verdicts(record: dict, spike_nats: float = THRESHOLDS[0]) -> dict:
    """The stability verdict of one record (:func:`reference.lab.studies.stability.classify`), from its
    per-step series (every step is kept for runs of up to 500 steps)."""
    if record["stride"] != 1:
        raise ValueError(f"{record['run']}: a strided series cannot be classified step by step")
    series = record["series"]
    steps = [{"loss": l, "grad_norm_total": g} for l, g in zip(series["loss"], series["grad_norm_total"])]
    summary = {k: record[k] for k in ("diverged", "val_loss", "unigram_loss")}
    return classify(summary, steps, spike_nats, series["unigram"])


def _label(record: dict) -> str:
    s = record["settings"]
    return s["mixer"] + (" (gain bounded)" if s.get("res_bound", "none") != "none" else "")


def _rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k}/{n} [{lo:.2f}, {hi:.2f}]"


def core_claim(records: list[dict]) -> str:
    """Per mixer, depth and lr: stable, diverged and spiked runs with their 95 % intervals, the
    validation loss over the finished seeds and the largest composite backward gain seen."""
    if not records:
        return "No committed runs yet."
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        s = r["settings"]
        groups[(s["depth"], s["lr"], _label(r))].append(r)
    judged = {id(r): verdicts(r) for r in records}        # each run classified once (names repeat across files)
    lines = ["| depth | lr | mixer | seeds | stable | stable, >= 0.05 below unigram | diverged | spiked (0.5 nat) | "
             "val loss (finished) | max backward gain (median over seeds) |",
             "|---:|---:|---|---:|---|---|---|---|---:|---:|"]
    for (depth, lr, label), runs in sorted(groups.items()):
        v = [judged[id(r)] for r in runs]
        n = len(runs)
        stable, diverged = sum(x["stable"] for x in v), sum(x["diverged"] for x in v)
        strict = sum(x["stable"] and r["val_loss"] <= r["unigram_loss"] - LEARNED_MARGIN for x, r in zip(v, runs))
        spiked = sum(x["loss_spikes"] > 0 for x in v)
        loss = spread(r["val_loss"] for r in runs if not r["diverged"])
        gains = sorted(r["max_gain_backward"] for r in runs if r["max_gain_backward"] is not None)
        cell = "-" if loss is None else f"{loss.mean:.3f} +- {loss.half_range:.3f} ({loss.n})"
        gain = "-" if not gains else f"{gains[len(gains) // 2]:.3g}"
        lines.append(f"| {depth} | {lr:g} | {label} | {n} | {_rate(stable, n)} | {_rate(strict, n)} | "
                     f"{_rate(diverged, n)} | {_rate(spiked, n)} | {cell} | {gain} |")
    seeds = sorted({r["settings"]["seed"] for r in records})
    lines += ["", f"{len(records)} runs, seeds {seeds[0]}-{seeds[-1]}; rates with 95 % Wilson intervals. "
              "Regenerate: `python -m reference.lab.studies.page`.", ""]
    lines += _stable_rate_comparisons(groups, judged)
    lines += _causal_arm(groups, judged)
    return "\n".join(lines)


def _causal_arm(groups: dict[tuple, list[dict]], judged: dict[int, dict]) -> list[str]:
    """HC against its causal arm, pooled over the points where both ran: diverged, spiked and stable
    rates (95 % Wilson intervals; "differs" when they do not overlap)."""
    arm = "hc (gain bounded)"
    points = sorted({(d, lr) for d, lr, label in groups if label == arm} & {(d, lr) for d, lr, label in groups
                                                                               if label == "hc"})
    if not points:
        return []
    words = []
    for key, name in (("diverged", "diverged"), ("loss_spikes", "spiked"), ("stable", "stable")):
        counts = []
        for label in ("hc", arm):
            runs = [r for p in points for r in groups[(*p, label)]]
            counts.append((sum(bool(judged[id(r)][key]) for r in runs), len(runs)))
        (ka, na), (kb, nb) = counts
        a, b = wilson(ka, na), wilson(kb, nb)
        word = "differs" if a[0] > b[1] or a[1] < b[0] else "no difference detected"
        words.append(f"{name} {ka}/{na} [{a[0]:.2f}, {a[1]:.2f}] against {kb}/{nb} [{b[0]:.2f}, {b[1]:.2f}]: {word}")
    lrs = ", ".join(f"{lr:g}" for _, lr in points)
    return [f"- HC against its causal arm (gain bounded), pooled over lr {lrs}: " + "; ".join(words) + "."]


def _stable_rate_comparisons(groups: dict[tuple, list[dict]], judged: dict[int, dict]) -> list[str]:
    """One line per depth and lr where HC ran beside another mixer: whose stable rate differs from HC's
    (95 % Wilson intervals that do not overlap) and whose does not (no difference detected)."""
    lines = []
    by_point: dict[tuple, dict[str, tuple[int, int]]] = defaultdict(dict)
    for (depth, lr, label), runs in groups.items():
        by_point[(depth, lr)][label] = (sum(judged[id(r)]["stable"] for r in runs), len(runs))
    for (depth, lr), rates in sorted(by_point.items()):
        if "hc" not in rates or len(rates) < 2:
            continue
        hc = wilson(*rates["hc"])
        parts = []
        for label, (k, n) in sorted(rates.items()):
            if label == "hc":
                continue
            other = wilson(k, n)
            word = "differs" if other[0] > hc[1] or other[1] < hc[0] else "no difference detected"
            parts.append(f"{label} {k}/{n}: {word}")
        lines.append(f"- L = {depth}, lr {lr:g}: stable rate of hc {rates['hc'][0]}/{rates['hc'][1]} against "
                     + "; ".join(parts) + ".")
    return lines


def mhc_gain(records: list[dict]) -> str:
    """mHC's composite backward gain (``SK_20`` is not converged: its products drift) as a distribution
    over seeds per depth and lr: at the end of training and its maximum over training."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        if r["settings"]["mixer"] == "mhc" and not r["diverged"]:
            groups[(r["settings"]["depth"], r["settings"]["lr"])].append(r)
    if not groups:
        return "No committed mHC runs yet."
    lines = ["| depth | lr | runs | final backward gain: median [min, max] | max over training: median [min, max] |",
             "|---:|---:|---:|---|---|"]

    def dist(values: list[float]) -> str:
        v = sorted(values)
        return f"{v[len(v) // 2]:.3g} [{v[0]:.3g}, {v[-1]:.3g}]"

    for (depth, lr), runs in sorted(groups.items()):
        lines.append(f"| {depth} | {lr:g} | {len(runs)} | {dist([r['gain_backward'] for r in runs])} | "
                     f"{dist([r['max_gain_backward'] for r in runs])} |")
    return "\n".join(lines)


PREMISE = 0.05                        # nats: replacing every H_res by I must cost this much on every seed


def premise(records: list[dict]) -> str:
    """Whether the mixers use ``H_res``: the validation-loss cost of replacing every ``H_res`` by ``I``
    (and by ``J/n``) per mixer and ``mixer_lr_scale``, over seeds. The premise holds for a setting
    when the ``I`` ablation costs at least :data:`PREMISE` nats on every seed."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        if not r["diverged"] and r["h_res_ablation"]:
            groups[(r["settings"]["mixer"], r["settings"]["depth"], r["settings"]["mixer_lr_scale"])].append(r)
    if not groups:
        return "No committed runs yet."
    lines = ["| mixer | depth | mixing lr x | seeds | val loss | dloss `H_res = I`: mean [min, max] | "
             "dloss `H_res = J/n` | off-identity mass | premise (>= 0.05 on every seed) |",
             "|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for (mixer, depth, scale), runs in sorted(groups.items()):
        ident = [r["h_res_ablation"]["identity"] for r in runs]
        avg = spread(r["h_res_ablation"]["average"] for r in runs)
        loss = spread(r["val_loss"] for r in runs)
        off = spread(r["h_res_off_identity"] for r in runs)
        held = "yes" if min(ident) >= PREMISE else "no"
        lines.append(f"| {mixer} | {depth} | {scale:g} | {len(runs)} | {loss.mean:.3f} +- {loss.half_range:.3f} | "
                     f"{sum(ident) / len(ident):+.3f} [{min(ident):+.3f}, {max(ident):+.3f}] | "
                     f"{avg.mean:+.3f} +- {avg.half_range:.3f} | {off.mean:.3f} | {held} |")
    return "\n".join(lines)


# section name -> (records files, renderer)
SECTIONS: dict[str, tuple[tuple[str, ...], Callable[[list[dict]], str]]] = {
    "core-claim": (("stability-L32.jsonl", "stability-L32-hc-bounded.jsonl"), core_claim),
    "mhc-gain": (("stability-L32.jsonl",), mhc_gain),
    "premise": (("premise-L8.jsonl",), premise),
}


def render(name: str, records_dir: Path = RECORDS) -> str:
    files, renderer = SECTIONS[name]
    records = [r for f in files if (records_dir / f).exists() for r in read_records(records_dir / f)]
    return renderer(records)


def regenerate(page: Path = PAGE, records_dir: Path = RECORDS) -> tuple[str, str]:
    """``(current, regenerated)`` text of ``page``: every generated section rebuilt from the records."""
    text = page.read_text()
    new = text
    for name in SECTIONS:
        pattern = re.compile(rf"(<!-- records:{re.escape(name)} -->\n).*?(^<!-- /records:{re.escape(name)} -->)",
                             re.DOTALL | re.MULTILINE)
        if not pattern.search(new):
            raise ValueError(f"{page} has no section records:{name}")
        new = pattern.sub(lambda m: m.group(1) + render(name, records_dir) + "\n" + m.group(2), new)
    return text, new


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m reference.lab.studies.page", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="do not write: exit 1 when the page differs from its records")
    ap.add_argument("--page", type=Path, default=PAGE)
    ap.add_argument("--records", type=Path, default=RECORDS)
    args = ap.parse_args(argv)
    try:
        current, new = regenerate(args.page, args.records)
    except (ValueError, OSError) as exc:
        print(f"reference.lab.studies.page: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if current != new:
            print(f"{args.page} differs from what its records give: run python -m reference.lab.studies.page",
                  file=sys.stderr)
            return 1
        return 0
    args.page.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
