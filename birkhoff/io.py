"""Read and write matrices: ``.npy``, ``.npz``, ``.csv``/``.txt``, ``.json``; ``-`` is stdin/stdout.

How text is read (``exact=None``, the default): a file is read in exact arithmetic when it
is *visibly exact*: a token with ``/`` (``1/3``), every token an integer, or a first line
``# exact`` (what :func:`save_matrix` writes above exact decimals, e.g. ``sinkhorn --dps``
output); JSON strings are exact too. Any other decimal is a float64, however many digits
it has: ``np.savetxt``'s 19 significant digits read back to the same doubles.
``exact=True`` reads every decimal as the exact rational it writes (``0.1`` is 1/10);
``exact=False`` reads everything as float64.

In csv/txt, entries are separated by commas and/or whitespace, ``#`` starts a comment,
and blank lines separate matrices of a stack ``(L, n, n)`` (e.g. a product chain).
JSON holds nested lists of numbers or number strings. Exact entries are bounded before
they are built (:func:`birkhoff.validate.parse_exact`: at most 4300 digits, decimal
exponents within +-20000), so a few bytes cannot ask for a number of a billion digits.

What is read is bounded before it is decompressed or allocated: regular files and stdin only
(a device such as ``/dev/zero``, a FIFO or a folder is refused without being opened for
reading), at most ``max_entries`` entries (default :data:`MAX_FILE_ENTRIES`, ``2^22``: a
2048 x 2048 matrix), checked from an ``.npy`` header or each ``.npz`` member's header before
its data is read, and at most ``64 max_entries + 1 MiB`` bytes of file or stdin.

``save_matrix`` writes through a symbolic link (the file it points to is replaced
atomically; the link stays).
"""

from __future__ import annotations

import io as _io
import json
import os
import re
import stat
import sys
import zipfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import mpmath
import numpy as np

from .validate import as_matrix, count, flag, parse_exact
from .errors import InvalidMatrixError

__all__ = ["load_matrix", "save_matrix", "entry_text", "MAX_FILE_ENTRIES"]

# The default bound on the entries of a file (or stdin) that load_matrix reads; --max-entries at the CLI.
MAX_FILE_ENTRIES = 2 ** 22
# Bytes read per allowed entry (a float in text is at most ~25 characters), plus a fixed allowance.
_BYTES_PER_ENTRY = 64
_BYTES_EXTRA = 2 ** 20

_TEXT = {".csv", ".txt", ".tsv", ".dat"}
_SPLIT = re.compile(r"[,\s]+")
_INT = re.compile(r"^[+-]?\d+$")
EXACT_HEADER = "# exact"


def _too_many(shape: tuple[int, ...], where: str, max_entries: int, what: str) -> None:
    entries = int(np.prod(shape, dtype=object))
    if entries > max_entries:
        raise InvalidMatrixError(f"{where}: {what} holds {entries} entries (shape {tuple(shape)}), over the limit "
                                 f"of {max_entries} (raise it with --max-entries / max_entries=)")


def _parse_tokens(blocks: list[list[list[str]]], where: str, exact: bool | None, marked: bool = False,
                  max_entries: int = MAX_FILE_ENTRIES) -> np.ndarray:
    flat = [t for b in blocks for row in b for t in row]
    _too_many((len(flat),), where, max_entries, "the input")       # before any number is parsed
    if exact is None:
        exact = marked or any("/" in t for t in flat) or all(_INT.match(t) for t in flat)

    def parse(t: str, pos: str):
        try:
            return parse_exact(t) if exact else float(parse_exact(t)) if "/" in t else float(t)
        except ValueError as exc:
            detail = f" ({exc})" if isinstance(exc, InvalidMatrixError) else ""
            shown = t if len(t) <= 40 else t[:37] + "..."
            raise InvalidMatrixError(f"{where}: cannot read entry {shown!r} at {pos} as a number{detail}") from None

    mats = []
    for bi, block in enumerate(blocks):
        widths = {len(r) for r in block}
        if len(widths) != 1:
            raise InvalidMatrixError(
                f"{where}: ragged rows in matrix {bi} (row lengths {sorted(widths)})")
        mats.append([[parse(t, f"row {i + 1}, column {j + 1}") for j, t in enumerate(r)]
                     for i, r in enumerate(block)])
    shapes = {(len(m), len(m[0])) for m in mats}
    if len(shapes) != 1:
        raise InvalidMatrixError(f"{where}: matrices of different shapes {sorted(shapes)}")
    arr = np.array(mats, dtype=object if exact else np.float64)
    return arr[0] if len(mats) == 1 else arr


def _read_text(text: str, where: str, exact: bool | None, max_entries: int) -> np.ndarray:
    marked = text.lstrip().startswith(EXACT_HEADER)
    blocks: list[list[list[str]]] = [[]]
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            if blocks[-1]:
                blocks.append([])
            continue
        blocks[-1].append([t for t in _SPLIT.split(line) if t])
    blocks = [b for b in blocks if b]
    if not blocks:
        raise InvalidMatrixError(f"{where}: no numbers found (empty file)")
    return _parse_tokens(blocks, where, exact, marked, max_entries)


def _json_token(x: Any, where: str) -> str:
    if isinstance(x, bool) or not isinstance(x, (int, float, str)):
        raise InvalidMatrixError(f"{where}: JSON entries must be numbers or number strings, got {x!r}")
    return str(x) if not isinstance(x, float) else repr(x)


def _read_json(text: str, where: str, exact: bool | None, max_entries: int) -> np.ndarray:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidMatrixError(f"{where}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError as exc:                      # an integer beyond Python's 4300-digit conversion limit
        raise InvalidMatrixError(f"{where}: invalid JSON ({exc})") from None
    except RecursionError:
        raise InvalidMatrixError(f"{where}: invalid JSON (nested too deeply; a matrix needs 2 or 3 levels)") from None
    if isinstance(data, dict):
        data = data.get("matrix", data.get("M"))
    if not isinstance(data, list) or not data:
        raise InvalidMatrixError(f"{where}: JSON must hold a non-empty nested list of numbers")
    depth = 0
    probe: Any = data
    while isinstance(probe, list) and probe:
        probe, depth = probe[0], depth + 1
    if depth not in (2, 3):
        raise InvalidMatrixError(f"{where}: JSON must nest 2 or 3 levels of lists, found {depth}")
    stack = data if depth == 3 else [data]
    blocks, strings = [], False
    for m in stack:
        if not isinstance(m, list) or not all(isinstance(r, list) for r in m):
            raise InvalidMatrixError(f"{where}: JSON matrices must be lists of rows")
        blocks.append([[_json_token(x, where) for x in r] for r in m])
        strings = strings or any(isinstance(x, str) for r in m for x in r)
    return _parse_tokens(blocks, where, exact, marked=strings, max_entries=max_entries)


def _npy_shape(stream) -> tuple[int, ...] | None:
    """The shape in an ``.npy`` header (the stream is left at the header's start), or None when
    the header is not readable (``np.load`` then says why)."""
    start = stream.tell()
    try:
        version = np.lib.format.read_magic(stream)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, _ = read(stream, max_header_size=10_000)
        return tuple(shape)
    except Exception:           # numpy raises ValueError, EOFError...: np.load reports it
        return None
    finally:
        stream.seek(start)


def _check_sizes(raw: bytes, where: str, key: str | None, max_entries: int) -> None:
    """Every array that ``np.load`` would read (an ``.npy``, or the picked ``.npz`` members) has at most
    ``max_entries`` entries, read from the headers before any data is decompressed."""
    if raw[:2] != b"PK":
        shape = _npy_shape(_io.BytesIO(raw))
        if shape is not None:
            _too_many(shape, where, max_entries, "the array")
        return
    try:
        archive = zipfile.ZipFile(_io.BytesIO(raw))
        names = archive.namelist()
    except Exception:                    # np.load reports a broken archive
        return
    for name in names:
        if key is not None and name not in (key, key + ".npy"):
            continue
        try:
            with archive.open(name) as member:
                head = _io.BytesIO(member.read(10_240))     # the header only: at most 10 KiB decompressed
        except Exception:
            continue
        shape = _npy_shape(head)
        if shape is not None:
            _too_many(shape, where, max_entries, f"array {name.removesuffix('.npy')!r}")


def _read_binary(raw: bytes, suffix: str, where: str, key: str | None, max_entries: int) -> np.ndarray:
    _check_sizes(raw, where, key, max_entries)
    try:
        obj = np.load(_io.BytesIO(raw), allow_pickle=False)
    except MemoryError:
        raise InvalidMatrixError(f"{where}: claims an array larger than this machine's memory") from None
    except Exception as exc:  # numpy raises ValueError, OSError, EOFError, zipfile errors...
        raise InvalidMatrixError(f"{where}: not a readable {suffix} file ({exc})") from None
    if isinstance(obj, np.lib.npyio.NpzFile):
        keys = list(obj.keys())
        if key is not None and key not in keys:
            raise InvalidMatrixError(f"{where}: .npz has no array {key!r}; it holds {keys}")
        if key is None and len(keys) != 1:      # several arrays: never a silent pick, even of an 'M'
            raise InvalidMatrixError(f"{where}: .npz holds {len(keys)} arrays, {keys}; pick one with --key (key=)")
        key = keys[0] if key is None else key
        try:
            return obj[key]
        except MemoryError:
            raise InvalidMatrixError(f"{where}: array {key!r} claims more memory than this machine has") from None
        except Exception as exc:     # a pickled (object) array, a bad CRC, a broken compressed stream, a short file
            raise InvalidMatrixError(f"{where}: array {key!r} is not readable ({type(exc).__name__}: {exc})") from None
    if key is not None:
        raise InvalidMatrixError(f"{where}: --key (key=) picks an array of an .npz file; this is a plain array")
    return obj


def _stdin_bytes(limit: int) -> bytes:
    """Standard input as bytes, at most ``limit + 1`` of them; a closed or missing stdin is an
    ``InvalidMatrixError``."""
    try:
        return sys.stdin.buffer.read(limit + 1)
    except (AttributeError, ValueError, OSError):           # None, closed, or not readable
        raise InvalidMatrixError("cannot read '-': standard input is closed") from None


def _file_bytes(path: str | os.PathLike, where: str, limit: int) -> bytes:
    """A regular file's bytes, at most ``limit + 1``: a device, FIFO or folder is refused from its
    ``stat``, before it is opened (opening a FIFO blocks, reading /dev/zero never ends)."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket or special file")
            raise InvalidMatrixError(f"cannot read {where!r}: {kind}, not a regular file")
        with open(path, "rb") as f:
            return f.read(limit + 1)
    except OSError as exc:
        raise InvalidMatrixError(f"cannot read {where!r}: {exc.strerror or exc}") from None


def load_matrix(path: str | os.PathLike, *, exact: bool | None = None, key: str | None = None,
                max_entries: int = MAX_FILE_ENTRIES) -> np.ndarray:
    """Load a matrix (or a stack ``(L, n, n)``) and validate it.

    Parameters
    ----------
    path : str or PathLike
        ``.npy``, ``.npz`` (array ``key``; without one, the file must hold exactly one array),
        ``.csv``, ``.txt``, ``.json``, or ``-`` for stdin (format sniffed: npy magic, JSON, text).
    exact : bool, optional
        How text is read (module doc): None, visibly exact files exactly and decimals as
        float64; True, every decimal exactly; False, everything as float64.
    key : str, optional
        The array of an ``.npz`` file; required when it holds several.
    max_entries : int
        The most entries read (module doc); the bytes read are bounded by
        ``64 max_entries + 1 MiB``.

    Returns
    -------
    ndarray
        float64, or object array of ``Fraction`` for exact text input.

    Raises
    ------
    InvalidMatrixError
        Missing/unreadable file, not a regular file, over ``max_entries``, malformed content,
        ragged rows, NaN/Inf, empty.
    """
    exact = None if exact is None else flag(exact, "exact")
    max_entries = count(max_entries, "max_entries", low=1)
    where = str(path)
    limit = _BYTES_PER_ENTRY * max_entries + _BYTES_EXTRA
    raw = _stdin_bytes(limit) if where == "-" else _file_bytes(path, where, limit)
    if len(raw) > limit:
        raise InvalidMatrixError(f"{where}: more than {limit} bytes, over what {max_entries} entries need "
                                 "(raise the limit with --max-entries / max_entries=)")
    suffix = Path(where).suffix.lower() if where != "-" else ""
    if not raw.strip():
        raise InvalidMatrixError(f"{where}: no numbers found (empty {'input' if where == '-' else 'file'})")
    if suffix in (".npy", ".npz") or raw[:6] == b"\x93NUMPY" or raw[:2] == b"PK":
        arr = _read_binary(raw, suffix or ".npy", where, key, max_entries)
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidMatrixError(f"{where}: not a text file (not UTF-8)") from None
        if key is not None:
            raise InvalidMatrixError(f"{where}: --key (key=) picks an array of an .npz file, not of a text file")
        if suffix == ".json" or (not suffix and text.lstrip()[:1] in "[{"):
            arr = _read_json(text, where, exact, max_entries)
        elif suffix in _TEXT or not suffix:
            arr = _read_text(text, where, exact, max_entries)
        else:
            raise InvalidMatrixError(
                f"{where}: unknown extension {suffix!r} (use .npy .npz .csv .txt .json)")
    _too_many(np.shape(arr), where, max_entries, "the input")
    M = as_matrix(arr, batched=True, square=False, name=where)
    if M.ndim > 3:
        raise InvalidMatrixError(f"{where}: holds an array of shape {M.shape}; a matrix (n, m) or a stack "
                                 "(L, n, m) is needed")
    return M


def entry_text(x: Any) -> str:
    """One entry as text that reads back to the same value: ``p/q``, an integer, mpmath at full
    precision, a float's shortest ``repr``."""
    if isinstance(x, (Fraction, int, np.integer)) and not isinstance(x, bool):
        return str(x)
    if isinstance(x, mpmath.mpf):
        bits = max(53, int(x.man_exp[0]).bit_length()) if x else 53
        return mpmath.nstr(x, mpmath.libmp.repr_dps(bits))   # enough digits to read back exactly
    return repr(float(x))


def _as_text_rows(M: np.ndarray) -> list[list[list[str]]]:
    stack = M if M.ndim == 3 else M[None]
    return [[[entry_text(x) for x in row] for row in m] for m in stack]


def save_matrix(path: str | os.PathLike, M) -> None:
    """Write ``M`` (``(n, m)`` or ``(L, n, m)``) in the format of the extension; ``-`` = stdout csv.

    Floats are written with ``repr`` (shortest string that reads back to the same
    double), Fractions as ``p/q`` and mpmath numbers at their full precision under a first
    line ``# exact`` (csv/txt; strings in JSON), so text formats round-trip: floats and
    Fractions exactly; mpmath numbers come back as the exact decimals written, which round
    to the same ``mpf`` at the precision they were written at.
    ``.npy``/``.npz`` store float64 and refuse exact matrices that float64 cannot hold
    exactly. Files are written atomically (a temporary file, then a rename).
    """
    exact = as_matrix(M, batched=True, square=False, name="M")
    arr = np.asarray(M) if isinstance(M, (np.ndarray, list)) else exact
    has_mpf = arr.dtype == object and any(isinstance(x, mpmath.mpf) for x in arr.flat)
    if not has_mpf:  # mpf entries are kept as they are, to be written at full precision
        arr = exact
    where = str(path)
    suffix = Path(where).suffix.lower() if where != "-" else ".csv"
    if suffix in (".npy", ".npz"):
        f = exact.astype(np.float64)
        if exact.dtype == object and not all(Fraction(float(a)) == a for a in exact.flat):
            raise InvalidMatrixError(
                f"{where}: exact entries are not all float64-representable; save as .csv or .json")
        buf = _io.BytesIO()
        (np.save if suffix == ".npy" else lambda b, a: np.savez(b, M=a))(buf, f)
        data = buf.getvalue()
    elif suffix == ".json":
        blocks = _as_text_rows(arr)
        conv = [[[t if ("/" in t or arr.dtype == object) else float(t) for t in r] for r in b]
                for b in blocks]
        data = (json.dumps(conv[0] if arr.ndim == 2 else conv) + "\n").encode()
    elif suffix in _TEXT:
        sep = ", " if suffix == ".csv" else " "
        text = "\n\n".join("\n".join(sep.join(r) for r in b) for b in _as_text_rows(arr))
        data = ((EXACT_HEADER + "\n" if has_mpf else "") + text + "\n").encode()
    else:
        raise InvalidMatrixError(f"{where}: unknown extension {suffix!r} (use .npy .npz .csv .txt .json)")
    if where == "-":
        sys.stdout.write(data.decode())
        sys.stdout.flush()
        return
    target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)   # write through a link
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:                      # the folder itself is not there (or is a file)
            pass
        raise InvalidMatrixError(f"cannot write {where!r}: {exc.strerror or exc}") from None
