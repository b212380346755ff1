from fractions import Fraction as F

import mpmath
import numpy as np
import pytest

from birkhoff import InvalidMatrixError
from birkhoff.io import load_matrix, save_matrix


def test_text_formats_and_exactness(tmp_path):
    (tmp_path / "q.csv").write_text("# a comment\n1/3, 2/3\n2/3 1/3\n")
    Q = load_matrix(tmp_path / "q.csv")
    assert Q.dtype == object and Q[0, 0] == F(1, 3)
    (tmp_path / "mixed.txt").write_text("1/2 0.5\n0.5 1/2\n")
    assert load_matrix(tmp_path / "mixed.txt")[0, 1] == F(1, 2)    # decimal read exactly
    (tmp_path / "f.csv").write_text("0.1,0.9\n0.9,0.1\n")
    Fm = load_matrix(tmp_path / "f.csv")
    assert Fm.dtype == np.float64 and Fm[0, 0] == 0.1
    (tmp_path / "i.txt").write_text("1 0\n0 1\n")
    assert load_matrix(tmp_path / "i.txt").dtype == object


def test_stack_with_blank_lines(tmp_path):
    (tmp_path / "s.txt").write_text("1 0\n0 1\n\n0 1\n1 0\n")
    assert load_matrix(tmp_path / "s.txt").shape == (2, 2, 2)


@pytest.mark.parametrize("ext", [".npy", ".npz", ".csv", ".txt", ".json"])
def test_float_round_trip_is_bit_exact(tmp_path, ext):
    M = np.random.default_rng(0).random((3, 4, 4)) ** 7
    save_matrix(tmp_path / f"m{ext}", M)
    assert np.array_equal(load_matrix(tmp_path / f"m{ext}"), M)


@pytest.mark.parametrize("ext", [".csv", ".json"])
def test_fraction_round_trip(tmp_path, ext):
    Q = np.array([[F(1, 3), F(2, 3)], [F(2, 3), F(1, 3)]], dtype=object)
    save_matrix(tmp_path / f"q{ext}", Q)
    assert (load_matrix(tmp_path / f"q{ext}") == Q).all()


def test_npy_refuses_inexact_fractions(tmp_path):
    with pytest.raises(InvalidMatrixError, match="float64"):
        save_matrix(tmp_path / "q.npy", np.array([[F(1, 3)]], dtype=object))
    save_matrix(tmp_path / "h.npy", np.array([[F(1, 2)]], dtype=object))
    assert load_matrix(tmp_path / "h.npy")[0, 0] == 0.5


def test_mpf_written_at_full_precision(tmp_path):
    with mpmath.workdps(40):
        x = mpmath.mpf(1) / 3
    save_matrix(tmp_path / "m.csv", np.array([[x]], dtype=object))
    assert (tmp_path / "m.csv").read_text().startswith("# exact\n0.3333333333333333333333333333333333333")


@pytest.mark.parametrize("name, content, needle", [
    ("b.csv", "1,2\n3\n", "ragged"),
    ("b.csv", "", "empty"),
    ("b.csv", "a,b\nc,d\n", "cannot read entry"),
    ("b.csv", "1/0,1\n1,1\n", "cannot read entry"),
    ("b.json", "[[1, 2], [3]", "invalid JSON"),
    ("b.json", '{"x": 1}', "nested list"),
    ("b.json", "[[true, 1], [1, 1]]", "numbers or number strings"),
    ("b.json", "[1, 2]", "nest 2 or 3"),
])
def test_bad_text_and_json(tmp_path, name, content, needle):
    (tmp_path / name).write_text(content)
    with pytest.raises(InvalidMatrixError, match=needle):
        load_matrix(tmp_path / name)


def test_missing_and_binary_garbage(tmp_path):
    with pytest.raises(InvalidMatrixError, match="cannot read"):
        load_matrix(tmp_path / "nope.npy")
    (tmp_path / "g.npy").write_bytes(b"\x00\x01garbage")
    with pytest.raises(InvalidMatrixError, match="not a readable"):
        load_matrix(tmp_path / "g.npy")
    (tmp_path / "x.xlsx").write_text("1")
    with pytest.raises(InvalidMatrixError, match="unknown extension"):
        load_matrix(tmp_path / "x.xlsx")


@pytest.mark.parametrize("dps", [15, 31, 50, 100])
def test_mpmath_round_trip_through_text(tmp_path, dps):
    """mpf entries are written under '# exact', read exactly, and give back the very mpf that was written."""
    with mpmath.workdps(dps):
        M = np.array([[mpmath.mpf(1) / 3, 1 - mpmath.mpf(1) / 3], [mpmath.mpf(2) / 7, mpmath.mpf(5) / 7]], dtype=object)
        save_matrix(tmp_path / "m.csv", M)
        L = load_matrix(tmp_path / "m.csv")
        for got, want in zip(L.flat, M.flat):
            with mpmath.workdps(400):
                exact = mpmath.mpf(got.numerator) / got.denominator if isinstance(got, F) else mpmath.mpf(got)
            assert +exact == want


@pytest.mark.parametrize("content, needle", [(b"", "empty"), (b"  \n\n", "empty")])
def test_empty_input(tmp_path, content, needle):
    (tmp_path / "e.txt").write_bytes(content)
    with pytest.raises(InvalidMatrixError, match=needle):
        load_matrix(tmp_path / "e.txt")


def test_unreadable_arrays(tmp_path):
    np.savez(tmp_path / "o.npz", M=np.array([[1, 2], [3, 4]], dtype=object))
    np.save(tmp_path / "4d.npy", np.ones((2, 2, 3, 3)))
    with pytest.raises(InvalidMatrixError, match="not readable"):
        load_matrix(tmp_path / "o.npz")
    with pytest.raises(InvalidMatrixError, match="stack"):
        load_matrix(tmp_path / "4d.npy")


def test_writes_are_atomic(tmp_path):
    save_matrix(tmp_path / "m.csv", np.eye(2))
    with pytest.raises(InvalidMatrixError, match="cannot write"):
        save_matrix(tmp_path / "missing" / "m.csv", np.eye(2))
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]            # no temporary left behind


def test_a_compressed_bomb_is_refused_from_its_header(tmp_path):
    """0.5 MB of .npz that decompresses to 8000 x 8000 (512 MB) used to be read and certified for
    400 s; the member's header is read first (a few KiB decompressed) and the shape refused.
    (Here 130 KB holding 4096 x 4096, 128 MB: the same refusal at a quarter of the cost.)"""
    f = tmp_path / "bomb.npz"
    np.savez_compressed(f, M=np.zeros((4096, 4096)))
    assert f.stat().st_size < 200_000
    with pytest.raises(InvalidMatrixError, match="16777216 entries"):
        load_matrix(f)
    g = tmp_path / "small.npz"
    np.savez_compressed(g, M=np.zeros((300, 300)))
    assert load_matrix(g, max_entries=90_000).shape == (300, 300)          # the limit is the user's to raise


@pytest.mark.parametrize("kind", ["device", "fifo", "folder"])
def test_only_regular_files_are_read(tmp_path, kind):
    """/dev/zero used to be read forever, a FIFO to block: both refused from their stat."""
    import os

    path = {"device": "/dev/zero", "folder": str(tmp_path)}.get(kind)
    if kind == "fifo":
        path = str(tmp_path / "m.csv")
        os.mkfifo(path)
    with pytest.raises(InvalidMatrixError, match="not a regular file"):
        load_matrix(path)


def test_entry_and_byte_limits(tmp_path, monkeypatch):
    import io
    import sys

    f = tmp_path / "m.csv"
    f.write_text("\n".join(" ".join(["0.5"] * 30) for _ in range(30)))
    with pytest.raises(InvalidMatrixError, match="900 entries"):
        load_matrix(f, max_entries=899)
    assert load_matrix(f, max_entries=900).shape == (30, 30)
    np.save(tmp_path / "m.npy", np.eye(30))
    with pytest.raises(InvalidMatrixError, match="900 entries"):
        load_matrix(tmp_path / "m.npy", max_entries=100)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"0 " * 10_000_000)))
    with pytest.raises(InvalidMatrixError, match="more than"):
        load_matrix("-", max_entries=1000)                       # stdin: read up to the byte bound only
