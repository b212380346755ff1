"""docs/DEPTH.md's figures, drawn from the committed run records (:class:`Evidence`).

``stable_rate.png``: the stable rate against lr per mixer, one panel per protocol and depth, with
95 % Wilson intervals. ``gains.png``: the composite gains over training, HC's forward gain (log
scale) and mHC's backward gain, median over seeds with the min-max band. PNG metadata carries no
date, so the same records and matplotlib give the same file.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .evidence import Evidence, groups  # noqa: E402
from .stats import wilson  # noqa: E402
from .tables import CONSTANT, PAPER  # noqa: E402

__all__ = ["FIGURES", "draw"]

FIGURES = ("stable_rate.png", "gains.png")
_METADATA = {"Software": None}


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=110, metadata=_METADATA)
    plt.close(fig)


def stable_rate(ev: Evidence, path: Path) -> None:
    runs = ev.runs(*CONSTANT, *PAPER)
    panels = groups(runs, "schedule", "depth")
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.2 * max(1, len(panels)), 3.4), squeeze=False)
    names = sorted({name for (name,) in groups(runs, "label")})
    colors = {name: f"C{i}" for i, name in enumerate(names)}
    for ax, ((schedule, depth), point) in zip(axes[0], panels.items()):
        for (name,), rs in groups(point, "label").items():
            by_lr = groups(rs, "lr")
            shift = 1 + 0.012 * (names.index(name) - (len(names) - 1) / 2)    # overlapping points side by side
            lrs = np.array([lr for (lr,) in by_lr]) * shift
            counts = [ev.count(r, "stable") for r in by_lr.values()]
            k = np.array([c[0] / c[1] for c in counts])
            lo, hi = np.array([wilson(*c) for c in counts]).T
            ax.errorbar(lrs, k, yerr=[k - lo, hi - k], marker="o", capsize=3, label=name, color=colors[name])
        ax.set_xscale("log")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("learning rate")
        ax.set_title(f"L = {depth}, {schedule} lr", fontsize=10)
    axes[0][0].set_ylabel("stable runs (95 % Wilson)")
    legend = {lab: h for ax in axes[0] for h, lab in zip(*ax.get_legend_handles_labels())}
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=len(legend), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    _save(fig, path)


def gains(ev: Evidence, path: Path) -> None:
    runs = [r for r in ev.runs(*CONSTANT) if r["settings"].get("res_bound", "none") == "none" and not r["diverged"]]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), squeeze=False)
    for ax, (mixer, key, title) in zip(axes[0], (("hc", "gain_forward", "HC: composite forward gain"),
                                                 ("mhc", "gain_backward", "mHC: composite backward gain"))):
        chosen = [r for r in runs if r["settings"]["mixer"] == mixer]
        for (depth, lr), rs in groups(chosen, "depth", "lr").items():
            series = np.array([r["series"][key] for r in rs], dtype=float)
            steps = np.arange(series.shape[1]) * rs[0]["stride"]
            line, = ax.plot(steps, np.nanmedian(series, axis=0), label=f"L = {depth}, lr {lr:g}")
            ax.fill_between(steps, np.nanmin(series, axis=0), np.nanmax(series, axis=0), alpha=0.08,
                            color=line.get_color())
        if mixer == "hc":
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(title, fontsize=10)
        if chosen:
            ax.legend(fontsize=7)
    fig.suptitle("median over seeds, band: min to max", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def draw(ev: Evidence, out: Path) -> list[Path]:
    """Every figure of :data:`FIGURES` into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in FIGURES]
    stable_rate(ev, paths[0])
    gains(ev, paths[1])
    return paths
