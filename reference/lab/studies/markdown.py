"""What the studies' ``report.md`` files share: number cells, the stream-usage cells, the plots, the file."""

from __future__ import annotations

from pathlib import Path

USAGE_HEADER = "stream spread | dloss H_res=I | dloss H_res=J/n"


def fmt(x, spec: str = ".4f") -> str:
    """A table cell: ``-`` for a missing (None) value."""
    return "-" if x is None else format(x, spec)


def usage_cells(row: dict) -> str:
    """Stream spread and the two ``H_res`` ablations of one run summary, as table cells."""
    ablation = row.get("h_res_ablation") or {}
    return (f"{fmt(row.get('stream_spread'), '.2e')} | {fmt(ablation.get('identity'), '+.1e')} | "
            f"{fmt(ablation.get('average'), '+.1e')}")


def save_figure(fig, out: Path, name: str) -> str:
    """Lay out ``fig``, write it to ``out/name`` (120 dpi), close it; returns ``name``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out / name, dpi=120)
    plt.close(fig)
    return name


def write_report(out: Path, lines: list[str], plots: list[str]) -> Path:
    """``out/report.md``: ``lines`` followed by the plots."""
    path = out / "report.md"
    path.write_text("\n".join(lines + [""] + [f"![{p}]({p})" for p in plots] + [""]))
    return path
