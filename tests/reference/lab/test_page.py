"""docs/DEPTH.md's generated sections are what the committed records give (the page regenerates exactly)."""

import shutil
from pathlib import Path

from reference.lab.studies import page

ROOT = Path(__file__).resolve().parents[3]


def test_the_page_agrees_with_the_committed_records():
    assert page.main(["--check", "--page", str(ROOT / "docs/DEPTH.md"), "--records",
                      str(ROOT / "docs/depth/records")]) == 0


def test_an_edited_number_is_caught(tmp_path, capsys):
    copy = tmp_path / "DEPTH.md"
    shutil.copy(ROOT / "docs/DEPTH.md", copy)
    text = copy.read_text()
    start = text.index("<!-- records:core-claim -->")
    end = text.index("<!-- /records:core-claim -->")
    copy.write_text(text[:start] + "<!-- records:core-claim -->\n| a typed-in row |\n" + text[end:])
    assert page.main(["--check", "--page", str(copy), "--records", str(ROOT / "docs/depth/records")]) == 1
    assert "differs" in capsys.readouterr().err
    assert page.main(["--page", str(copy), "--records", str(ROOT / "docs/depth/records")]) == 0
    assert copy.read_text() == (ROOT / "docs/DEPTH.md").read_text()


def test_the_figures_are_drawn_from_the_records_and_byte_stable(tmp_path):
    from depth_records import evidence, seeds
    from reference.lab.studies import figures

    runs = seeds("hc", 32, 0.03, ["stable", "spiked", "diverged"], gain=1e3) + seeds("mhc", 32, 0.03, ["stable"] * 3)
    ev = evidence(tmp_path, **{"stability-L32": runs})
    first = [p.read_bytes() for p in figures.draw(ev, tmp_path / "a")]
    again = [p.read_bytes() for p in figures.draw(ev, tmp_path / "b")]
    assert first == again and all(b.startswith(b"\x89PNG") for b in first)
    text = (ROOT / "docs/DEPTH.md").read_text()
    assert all(f"depth/figures/{name}" in text for name in figures.FIGURES)
