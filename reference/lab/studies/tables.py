"""docs/DEPTH.md's tables, each computed from the committed run records (:class:`Evidence`).

Every function returns the markdown of one generated section; nothing in it is typed by hand.
"""

from __future__ import annotations

import math
from statistics import median

from .evidence import LEARNED_MARGIN, Evidence, groups, overlap_word, rate
from .seeds import spread
from .stats import bootstrap_difference, compare, wilson

__all__ = ["CONSTANT", "PAPER", "DEEP", "PREMISE_FILES", "PAPER_GAIN", "TARGET_NATS", "PREMISE",
           "core_table", "core_claim", "paper_protocol", "mhc_gain", "convergence", "steps_to_target", "censored_steps",
           "deep_sk", "premise", "sizes"]

CONSTANT = ("stability-L8.jsonl", "stability-L32.jsonl", "stability-L64.jsonl", "stability-L32-hc-bounded.jsonl")
PAPER = ("paper-L32.jsonl", "paper-L64.jsonl")
DEEP = ("deep-sk.jsonl",)
PREMISE_FILES = ("premise-L8.jsonl", "premise-more.jsonl")
PAPER_GAIN = 1.6                      # the mHC paper's largest composite backward gain of mHC (section 5.4)
TARGET_NATS = 0.1                     # "converged": the 10-step mean excess loss at least this far below 0
WINDOW = 10
PREMISE = 0.05                        # nats: replacing every H_res by I must cost this much on every seed
WITHOUT_H_RES = ("residual", "rezero")   # one stream, no mixing: no composite gain to show


def _loss_cell(runs: list[dict]) -> str:
    loss = spread(r["val_loss"] for r in runs if not r["diverged"])
    return "-" if loss is None else f"{loss.mean:.3f} +- {loss.half_range:.3f} ({loss.n})"


def _median(values: list[float]) -> str:
    return "-" if not values else f"{median(values):.3g}"


def _dist(values: list[float]) -> str:
    v = sorted(values)
    return "-" if not v else f"{median(v):.3g} [{v[0]:.3g}, {v[-1]:.3g}]"


def core_table(ev: Evidence, runs: list[dict]) -> list[str]:
    """Per depth, lr and mixer: stable, diverged and spiked runs with their 95 % intervals, the
    validation loss over the finished seeds and the median of the largest composite backward gain."""
    lines = ["| depth | lr | mixer | seeds | stable | stable, >= 0.05 below unigram | diverged | spiked (0.5 nat) | "
             "val loss (finished) | max backward gain (median over seeds) |",
             "|---:|---:|---|---:|---|---|---|---|---:|---:|"]
    for (depth, lr, name), point in groups(runs, "depth", "lr", "label").items():
        gains = [r["max_gain_backward"] for r in point if r["max_gain_backward"] is not None
                 and r["settings"]["mixer"] not in WITHOUT_H_RES]
        lines.append(f"| {depth} | {lr:g} | {name} | {len(point)} | {rate(*ev.count(point, 'stable'))} | "
                     f"{rate(*ev.count(point, 'learned'))} | {rate(*ev.count(point, 'diverged'))} | "
                     f"{rate(*ev.count(point, 'spiked'))} | {_loss_cell(point)} | {_median(gains)} |")
    seeds = sorted({r["settings"]["seed"] for r in runs})
    unigram = sorted({round(r["unigram_loss"], 4) for r in runs})
    shown = f"{unigram[0]:.4f}" if len(unigram) == 1 else f"{unigram[0]:.4f}-{unigram[-1]:.4f}"
    return lines + ["", f"{len(runs)} runs, seeds {seeds[0]}-{seeds[-1]}; rates with 95 % Wilson intervals; "
                        f"the unigram loss (the training text's character entropy): {shown} nats.", ""]


def _hc_comparisons(ev: Evidence, runs: list[dict]) -> list[str]:
    """One line per depth and lr where HC ran beside another mixer: whose stable rate differs from HC's."""
    lines = []
    for (depth, lr), point in groups(runs, "depth", "lr").items():
        by = groups(point, "label")
        if ("hc",) not in by or len(by) < 2:
            continue
        hc = ev.count(by[("hc",)], "stable")
        parts = [f"{name} {k}/{n}: {overlap_word((k, n), hc)}" for (name,), rs in by.items() if name != "hc"
                 for k, n in [ev.count(rs, "stable")]]
        lines.append(f"- L = {depth}, lr {lr:g}: stable rate of hc {hc[0]}/{hc[1]} against " + "; ".join(parts) + ".")
    return lines


def _causal_arm(ev: Evidence, runs: list[dict]) -> list[str]:
    """HC against its causal arm, pooled over the points where both ran."""
    by = groups(runs, "depth", "lr", "label")
    arm = "hc (gain bounded)"
    points = sorted({(d, lr) for d, lr, name in by if name == arm} & {(d, lr) for d, lr, name in by if name == "hc"})
    if not points:
        return []
    words = []
    for key in ("diverged", "spiked", "stable"):
        a, b = (ev.count([r for p in points for r in by[(*p, name)]], key) for name in ("hc", arm))
        words.append(f"{key} {rate(*a)} against {rate(*b)}: {overlap_word(a, b)}")
    lrs = ", ".join(f"{lr:g}" for _, lr in points)
    return [f"- HC against its causal arm (gain bounded), pooled over lr {lrs}: " + "; ".join(words) + "."]


def _hc_over_depth(ev: Evidence, runs: list[dict]) -> list[str]:
    """HC's stable rate at each depth, pooled over the lrs every depth ran."""
    hc = [r for r in runs if r["settings"]["mixer"] == "hc" and r["settings"].get("res_bound", "none") == "none"]
    by = groups(hc, "depth", "lr")
    depths = sorted({d for d, _ in by})
    lrs = sorted(set.intersection(*({lr for d2, lr in by if d2 == d} for d in depths))) if depths else []
    if len(depths) < 2 or not lrs:
        return []
    counts = {d: ev.count([r for lr in lrs for r in by[(d, lr)]], "stable") for d in depths}
    cells = "; ".join(f"L = {d}: {rate(*counts[d])}" for d in depths)
    word = overlap_word(counts[depths[0]], counts[depths[-1]])
    return [f"- HC's stable rate over depth, pooled over lr {', '.join(f'{x:g}' for x in lrs)}: {cells} "
            f"(L = {depths[0]} against L = {depths[-1]}: {word})."]


def _bracket(ev: Evidence, point: list[dict], key: str) -> str:
    """The lr bracket of one mixer and depth by the rate of ``key``: from the largest lr whose rate's Wilson
    interval lies above 1/2 to the smallest lr above it whose interval lies below 1/2 (an end the grid does
    not reach is open, and an open upper end lists the rates at the last three lrs, where it stopped)."""
    by_lr = {lr: ev.count(rs, key) for (lr,), rs in groups(point, "lr").items()}
    bounds = {lr: wilson(*kn) for lr, kn in by_lr.items()}
    stable = [lr for lr, (lo, _) in bounds.items() if lo > 0.5]
    low = max(stable) if stable else None
    unstable = [lr for lr, (_, hi) in bounds.items() if hi < 0.5 and (low is None or lr > low)]
    high = min(unstable) if unstable else None
    if low is None and high is None:
        return f"not located by lr {min(by_lr):g}-{max(by_lr):g} (no rate's interval lies above or below 1/2)"
    left = f"{low:g}" if low is not None else f"below {min(by_lr):g}"
    if high is not None:
        return f"[{left}, {high:g})"
    last = ", ".join(f"{by_lr[lr][0]}/{by_lr[lr][1]} at {lr:g}" for lr in sorted(by_lr)[-3:])
    return f"[{left}, beyond {max(by_lr):g}) ({last})"


def _brackets(ev: Evidence, runs: list[dict]) -> list[str]:
    """Per depth and mixer, the lr brackets the grid supports with 95 % confidence: by the stable runs and
    by the runs that also end at least ``LEARNED_MARGIN`` nats below the unigram loss."""
    lines = [f"- {name} at L = {depth}: stable-lr bracket {_bracket(ev, point, 'stable')}; "
             f"by the runs >= {LEARNED_MARGIN:g} below unigram {_bracket(ev, point, 'learned')}"
             for (depth, name), point in groups(runs, "depth", "label").items()
             if len({r["settings"]["lr"] for r in point}) >= 2]
    return ["Stable-lr brackets (the largest lr stable in most runs, its rate's 95 % interval above 1/2, "
            "to the first lr unstable in most, its interval below 1/2), by the stable runs and by the runs that "
            f"also end at least {LEARNED_MARGIN:g} nats below the unigram loss:", ""] + lines + [""] if lines else []


def core_claim(ev: Evidence) -> str:
    """The constant-lr grid (stability protocol): the table, HC against each mixer, HC over depth, the causal arm."""
    runs = ev.runs(*CONSTANT)
    if not runs:
        return "No committed runs yet."
    return "\n".join(core_table(ev, runs) + _brackets(ev, runs) + _hc_comparisons(ev, runs)
                     + _hc_over_depth(ev, runs) + _causal_arm(ev, runs))


def paper_protocol(ev: Evidence) -> str:
    """The same table under the papers' protocol (warmup, cosine decay, clipping 1.0, weight decay 0.1,
    beta2 0.95)."""
    runs = ev.runs(*PAPER)
    if not runs:
        return "No committed runs yet."
    return "\n".join(core_table(ev, runs) + _brackets(ev, runs) + _hc_comparisons(ev, runs))


def mhc_gain(ev: Evidence) -> str:
    """mHC's composite backward gain (``SK_20`` is not converged: its products drift) as a distribution
    over seeds per protocol, depth and lr, and how many runs exceed the mHC paper's largest value."""
    runs = [r for r in ev.runs(*CONSTANT, *PAPER, *DEEP) if r["settings"]["mixer"] == "mhc" and not r["diverged"]]
    if not runs:
        return "No committed mHC runs yet."
    lines = ["| model | protocol | depth | lr | runs | final backward gain: median [min, max] | "
             "max over training: median [min, max] |", "|---|---|---:|---:|---:|---|---|"]
    for (kind, schedule, depth, lr), point in groups(runs, "kind", "schedule", "depth", "lr").items():
        lines.append(f"| {kind} | {schedule} | {depth} | {lr:g} | {len(point)} | "
                     f"{_dist([r['gain_backward'] for r in point])} | "
                     f"{_dist([r['max_gain_backward'] for r in point])} |")
    above = sum(r["max_gain_backward"] > PAPER_GAIN for r in runs)
    lines += ["", f"Runs whose composite backward gain exceeds {PAPER_GAIN} at some step: {rate(above, len(runs))}."]
    return "\n".join(lines)


def steps_to_target(record: dict, nats: float = TARGET_NATS, window: int = WINDOW) -> int | None:
    """The first step ``t + 1`` at which the mean excess loss (batch loss minus the batch's unigram
    cross-entropy) over steps ``t - window + 1 .. t`` is ``<= -nats``; None if the run never gets there."""
    series = record["series"]
    excess = [l - u if l is not None and u is not None else math.inf
              for l, u in zip(series["loss"], series["unigram"])]
    for t in range(window - 1, len(excess)):
        if sum(excess[t - window + 1:t + 1]) / window <= -nats:
            return (t + 1) * record["stride"]
    return None


def censored_steps(record: dict) -> int:
    """:func:`steps_to_target`, or the run's full length when it never gets there (censored)."""
    reached = steps_to_target(record)
    return record["settings"]["steps"] if reached is None else reached


def convergence(ev: Evidence) -> str:
    """Steps to a target loss (:func:`steps_to_target`) per mixer at the depths and lrs where plain
    residual ran, and each mixer's difference from residual with a 95 % bootstrap interval over seeds;
    a run that never reaches the target counts as its full length (censored, and counted)."""
    runs = [r for r in ev.runs(*CONSTANT) if r["settings"].get("res_bound", "none") == "none"]
    points = groups(runs, "depth", "lr")
    lines = ["| depth | lr | mixer | seeds | reached the target | steps to target: mean +- half-range | "
             "difference from residual [95 % interval] | residual / mixer |", "|---:|---:|---|---:|---|---|---|---:|"]
    for (depth, lr), point in points.items():
        by = groups(point, "label")
        if ("residual",) not in by:
            continue
        raw = {name: [steps_to_target(r) for r in rs] for (name,), rs in by.items()}
        steps = {name: [r["settings"]["steps"] if x is None else x for x, r in zip(raw[name], rs)]
                 for (name,), rs in by.items()}
        base = steps["residual"]
        for (name,), rs in by.items():
            reached = sum(x is not None for x in raw[name])
            s = spread(steps[name])
            if name == "residual":
                diff, ratio = "-", "-"
            else:
                d, lo, hi = bootstrap_difference(steps[name], base)
                diff = f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]: {compare(lo, hi)}"
                ratio = f"{(sum(base) / len(base)) / s.mean:.2f}"
            lines.append(f"| {depth} | {lr:g} | {name} | {len(rs)} | {rate(reached, len(rs))} | "
                         f"{s.mean:.1f} +- {s.half_range:.1f} | {diff} | {ratio} |")
    if len(lines) == 2:
        return "No committed residual runs yet."
    return "\n".join(lines)


def deep_sk(ev: Evidence) -> str:
    """mHC (``SK_20``) against the exactly doubly stochastic BE-HC in the deep MLP stack, and the baselines
    BE-HC is compared with there (ReZero, plain residual): per depth, stability with its interval,
    validation loss and the composite backward gain (none for a mixer without ``H_res``)."""
    runs = ev.runs(*DEEP)
    if not runs:
        return "No committed runs yet."
    lines = ["| depth | lr | steps | mixer | seeds | stable | diverged | val loss (finished) | "
             "final backward gain: median [min, max] | max over training: median [min, max] |",
             "|---:|---:|---:|---|---:|---|---|---:|---|---|"]
    for (depth, lr, steps, name), point in groups(runs, "depth", "lr", "steps", "label").items():
        live = [r for r in point if not r["diverged"] and r["settings"]["mixer"] not in WITHOUT_H_RES]
        lines.append(f"| {depth} | {lr:g} | {steps} | {name} | {len(point)} | {rate(*ev.count(point, 'stable'))} | "
                     f"{rate(*ev.count(point, 'diverged'))} | {_loss_cell(point)} | "
                     f"{_dist([r['gain_backward'] for r in live])} | {_dist([r['max_gain_backward'] for r in live])} |")
    sk = [r for r in runs if r["settings"]["mixer"] in ("mhc", "behc")]
    pooled = {name: ev.count(rs, "stable") for (name,), rs in groups(sk, "label").items()}
    lines += ["", "mHC against BE-HC, pooled over depths: "
              + "; ".join(f"{name} stable {rate(*c)}" for name, c in pooled.items())
              + (f" ({overlap_word(*pooled.values())})." if len(pooled) == 2 else ".")]
    return "\n".join(lines)


def premise(ev: Evidence) -> str:
    """Whether the mixers use ``H_res``: the validation-loss cost of replacing every ``H_res`` by ``I``
    (and by ``J/n``) per mixer and ``mixer_lr_scale``, over seeds. The premise holds for a setting
    when the ``I`` ablation costs at least :data:`PREMISE` nats on every seed."""
    runs = [r for r in ev.runs(*PREMISE_FILES) if not r["diverged"] and r["h_res_ablation"]]
    if not runs:
        return "No committed runs yet."
    lines = ["| mixer | depth | steps | mixing lr x | seeds | val loss | dloss `H_res = I`: mean [min, max] | "
             "dloss `H_res = J/n` | off-identity mass | premise (>= 0.05 on every seed) |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    for (mixer, depth, steps, scale), point in groups(runs, "mixer", "depth", "steps", "mixer_lr_scale").items():
        ident = [r["h_res_ablation"]["identity"] for r in point]
        avg = spread(r["h_res_ablation"]["average"] for r in point)
        loss = spread(r["val_loss"] for r in point)
        off = spread(r["h_res_off_identity"] for r in point)
        held = "yes" if min(ident) >= PREMISE else "no"
        lines.append(f"| {mixer} | {depth} | {steps} | {scale:g} | {len(point)} | "
                     f"{loss.mean:.3f} +- {loss.half_range:.3f} | "
                     f"{sum(ident) / len(ident):+.3f} [{min(ident):+.3f}, {max(ident):+.3f}] | "
                     f"{avg.mean:+.3f} +- {avg.half_range:.3f} | {off.mean:.3f} | {held} |")
    return "\n".join(lines)


_SUBLAYERS = {"mlp": 1, "transformer": 2}       # mixed sublayers per layer (reference.models)


def sizes(ev: Evidence) -> str:
    """What the page cost and what it trained: per records file its runs, tokens and CPU time, and
    per model, mixer and depth the parameters and the mixers' share."""
    if not ev.files:
        return "No committed runs yet."
    lines = ["| records | runs | tokens per run | training time (one process) |", "|---|---:|---|---:|"]
    total = 0.0
    for name, runs in ev.files.items():
        tokens = sorted({r["settings"]["steps"] * r["settings"]["batch_size"] * r["settings"]["seq_len"] for r in runs})
        seconds = sum(r.get("train_seconds") or 0.0 for r in runs)
        total += seconds
        lines.append(f"| {name} | {len(runs)} | {', '.join(f'{t:,}' for t in tokens)} | {seconds / 3600:.2f} h |")
    lines += ["", f"In all {sum(map(len, ev.files.values()))} runs, {total / 3600:.1f} process-hours of training "
              "(evaluation and ablations not counted; up to 4 processes shared the 2 cores, so this is an upper "
              "bound of the CPU time). Model sizes:", "",
              "| model | depth | width | mixer | parameters | mixing parameters (share) |",
              "|---|---:|---:|---|---:|---:|"]
    every = [r for runs in ev.files.values() for r in runs]
    for (kind, depth, width, mixer), point in groups(every, "kind", "depth", "width", "mixer").items():
        r = point[0]
        mixing = r["mixing_params_per_layer"] * depth * _SUBLAYERS[kind]
        share = 100 * mixing / r["params"]
        shown = f"{share:.1f}" if share == 0 or share >= 0.1 else f"{share:.2g}"      # ReZero's alphas: 0.047 %
        lines.append(f"| {kind} | {depth} | {width} | {mixer} | {r['params']:,} | {mixing:,} ({shown} %) |")
    return "\n".join(lines)
