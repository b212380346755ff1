"""What the studies' ``report.md`` files share: number cells, the stream-usage cells, the file."""

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


def write_report(out: Path, lines: list[str], plots: list[str]) -> Path:
    """``out/report.md``: ``lines`` followed by the plots."""
    path = out / "report.md"
    path.write_text("\n".join(lines + [""] + [f"![{p}]({p})" for p in plots] + [""]))
    return path
