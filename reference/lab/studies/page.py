"""docs/DEPTH.md's generated sections, rebuilt from the committed run records (docs/depth/records/).

    python -m reference.lab.studies.page            # rewrite every generated section and figure of docs/DEPTH.md
    python -m reference.lab.studies.page --check    # exit 1 when the page and the records disagree

A generated section sits between ``<!-- records:NAME -->`` and ``<!-- /records:NAME -->``; everything
in it is computed from the records (:mod:`reference.lab.studies.records`) by
:mod:`~reference.lab.studies.tables` and :mod:`~reference.lab.studies.claims`, nothing typed by
hand; the rest of the page holds the settings, the rules and the commands, no result. The figures
(:mod:`~reference.lab.studies.figures`) go to ``depth/figures/`` beside the page.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable

from birkhoff.cli import OneLineParser

from . import figures, tables
from .claims import verdict_table
from .evidence import Evidence

__all__ = ["SECTIONS", "render", "regenerate"]

PAGE = Path("docs/DEPTH.md")
RECORDS = Path("docs/depth/records")

# section name -> its renderer
SECTIONS: dict[str, Callable[[Evidence], str]] = {
    "verdicts": verdict_table,
    "sizes": tables.sizes,
    "core-claim": tables.core_claim,
    "paper-protocol": tables.paper_protocol,
    "mhc-gain": tables.mhc_gain,
    "convergence": tables.convergence,
    "deep-sk": tables.deep_sk,
    "premise": tables.premise,
}


def render(name: str, records_dir: Path = RECORDS, evidence: Evidence | None = None) -> str:
    """The markdown of section ``name`` from the records in ``records_dir``."""
    return SECTIONS[name](evidence or Evidence(records_dir))


def regenerate(page: Path = PAGE, records_dir: Path = RECORDS, evidence: Evidence | None = None) -> tuple[str, str]:
    """``(current, regenerated)`` text of ``page``: every generated section rebuilt from the records."""
    text = page.read_text()
    new, evidence = text, evidence or Evidence(records_dir)
    for name in SECTIONS:
        pattern = re.compile(rf"(<!-- records:{re.escape(name)} -->\n).*?(^<!-- /records:{re.escape(name)} -->)",
                             re.DOTALL | re.MULTILINE)
        if not pattern.search(new):
            raise ValueError(f"{page} has no section records:{name}")
        new = pattern.sub(lambda m: m.group(1) + render(name, records_dir, evidence) + "\n" + m.group(2), new)
    return text, new


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m reference.lab.studies.page", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="do not write: exit 1 when the page differs from its records")
    ap.add_argument("--page", type=Path, default=PAGE)
    ap.add_argument("--records", type=Path, default=RECORDS)
    args = ap.parse_args(argv)
    try:
        evidence = Evidence(args.records)            # read and judged once, for the sections and the figures
        current, new = regenerate(args.page, args.records, evidence)
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
    figures.draw(evidence, args.page.parent / "depth" / "figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
