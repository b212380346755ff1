"""The plots a single run writes next to its records: ``OUT/curves.png`` and, when installed, TensorBoard."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..checkpoint import atomic_write

__all__ = ["gain_axis", "plot_run", "write_tensorboard"]


def gain_axis(values: list[float]) -> tuple[bool, bool]:
    """``(log, minus_one)`` for the gain panel: a log scale where the gains span more than a decade; ``gain - 1``
    on a linear scale where they all stay within 1e-3 of 1 (the DS mixers: 1 up to rounding)."""
    log = bool(values) and max(values) > 10 * min(values)
    return log, bool(values) and not log and max(abs(v - 1) for v in values) < 1e-3


def plot_run(run_dir: Path, records: list[dict], summary: dict) -> Path:
    """``curves.png``: training loss (with the unigram baseline and the validation loss), the learning
    rate, and the composite forward / backward gain of ``prod H_res`` per step (log scale where the gains span
    more than a decade; linear otherwise, as ``gain - 1`` where they stay within 1e-3 of 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    steps = [r["step"] for r in records]
    fig, (loss_ax, lr_ax, gain_ax) = plt.subplots(1, 3, figsize=(13, 3.6))
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.14, top=0.91, wspace=0.3)   # a layout pass costs 0.2 s a run
    loss_ax.plot(steps, [r.get("loss") for r in records], lw=0.8, label="train")
    loss_ax.axhline(summary["unigram_loss"], color="k", ls="--", lw=1, label="unigram")
    if summary.get("val_loss") is not None:
        loss_ax.axhline(summary["val_loss"], color="C1", lw=1, label=f"validation {summary['val_loss']:.3f}")
    loss_ax.set(xlabel="step", ylabel="loss (nats)", title=f"{summary['mixer']}, L = {summary['depth']}"
                + (" (diverged)" if summary["diverged"] else ""))
    loss_ax.legend(fontsize=7)
    lr_ax.plot(steps, [r.get("lr") for r in records], lw=1)
    lr_ax.set(xlabel="step", ylabel="learning rate", title="schedule")
    series = {label: [(r["step"], r[key]) for r in records if r.get(key)]
              for key, label in (("gain_forward", "forward"), ("gain_backward", "backward"))}
    wide, near = gain_axis([v for pts in series.values() for _, v in pts])
    for label, pts in series.items():
        if pts:
            gain_ax.plot([t for t, _ in pts], [v - 1 if near else v for _, v in pts], lw=1, label=label)
    gain_ax.set(xlabel="step", ylabel="composite gain of prod H_res" + (" - 1" if near else ""),
                yscale="log" if wide else "linear", title="gain")
    if not wide:                                                      # plain tick labels: no offset, no 1e0 x
        formatter = matplotlib.ticker.ScalarFormatter(useOffset=False)
        formatter.set_powerlimits((-3, 4))
        gain_ax.yaxis.set_major_formatter(formatter)
    gain_ax.legend(fontsize=7)
    path = Path(run_dir) / "curves.png"
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))   # a full disk leaves no half file
    finally:
        plt.close(fig)
    return path


def write_tensorboard(run_dir: Path, records: list[dict]) -> Path | None:
    """The records as TensorBoard scalars in ``OUT/tensorboard/steps-<n>/`` (None when ``tensorboard`` is not
    installed); a new folder per summary, so a resumed run's logs sit beside the earlier ones."""
    if importlib.util.find_spec("tensorboard") is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    path = Path(run_dir) / "tensorboard" / f"steps-{len(records)}"
    with SummaryWriter(str(path)) as writer:
        for r in records:
            for key in ("loss", "lr", "gain_forward", "gain_backward", "grad_norm_total", "ds_residual"):
                if r.get(key) is not None:
                    writer.add_scalar(key, r[key], r["step"])
    return path
