"""Tasks: a char-level LM on a bundled real corpus, a synthetic Markov chain for fast tests,
and a long-range recall task for the token-mixing study.

Corpus (``reference/lab/corpus/stdlib_docstrings.txt.gz``): the docstrings of the Python
standard library's pure-Python modules, text present on every Python install, built
once by ``python -m reference.lab.data --build`` (module, class and function docstrings in
sorted file order, ASCII only, cut at 2 MB) and committed so that no run downloads
anything or depends on the local Python version. Provenance: CPython 3.11 ``Lib/``;
licence: Python Software Foundation License Version 2 (the docstrings are part of
CPython's source).

Batches are a pure function of ``(seed, step)``, so runs are reproducible, resumable,
and every DDP rank can cut its share of the same global batch.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import math
import sys
import sysconfig
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

CORPUS = Path(__file__).parent / "corpus" / "stdlib_docstrings.txt.gz"
CORPUS_BYTES = 2_000_000
TASKS = ("charlm", "markov", "recall")
IGNORE = -100  # target value cross_entropy skips


def build_corpus(limit: int = CORPUS_BYTES) -> str:
    """Docstrings of the stdlib's pure-Python modules, in sorted path order, ASCII only."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts: list[str] = []
    size = 0
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if rel[0] in ("site-packages", "test", "idlelib", "lib2to3") or "tests" in rel:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    text = doc.encode("ascii", "ignore").decode() + "\n\n"
                    parts.append(text)
                    size += len(text)
        if size >= limit:
            break
    return "".join(parts)[:limit]


@lru_cache(maxsize=1)
def corpus_text() -> str:
    return gzip.decompress(CORPUS.read_bytes()).decode("ascii")


class CharLM:
    """Next-character prediction on the bundled corpus (90% train / 10% validation)."""

    name = "charlm"

    def __init__(self, seq_len: int) -> None:
        text = corpus_text()
        self.chars = sorted(set(text))
        self.vocab = len(self.chars)
        lookup = {c: i for i, c in enumerate(self.chars)}
        data = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        table = np.zeros(256, dtype=np.int64)
        table[[ord(c) for c in self.chars]] = [lookup[c] for c in self.chars]
        tokens = table[data]
        cut = int(0.9 * len(tokens))
        self.splits = {"train": tokens[:cut], "val": tokens[cut:]}
        self.seq_len = seq_len

    def batch(self, seed: int, step: int, batch_size: int, split: str = "train"
              ) -> tuple[torch.Tensor, torch.Tensor]:
        data = self.splits[split]
        rng = np.random.default_rng([seed, step, 0 if split == "train" else 1])
        starts = rng.integers(0, len(data) - self.seq_len - 1, size=batch_size)
        win = data[starts[:, None] + np.arange(self.seq_len + 1)]
        return torch.from_numpy(win[:, :-1]), torch.from_numpy(win[:, 1:])

    def unigram_entropy(self) -> float:
        """Cross-entropy (nats) of the train-set character frequencies: the unigram baseline."""
        p = np.bincount(self.splits["train"], minlength=self.vocab) / len(self.splits["train"])
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    def unigram_probs(self) -> np.ndarray:
        """The train-set character frequencies (the unigram model)."""
        return np.bincount(self.splits["train"], minlength=self.vocab) / len(self.splits["train"])


class Markov:
    """Synthetic first-order Markov chain over ``vocab`` symbols (fixed random transitions).

    A per-token model can reach the conditional entropy; the unigram baseline is the
    entropy of the stationary distribution.
    """

    name = "markov"

    def __init__(self, seq_len: int, vocab: int = 16, seed: int = 1234) -> None:
        rng = np.random.default_rng(seed)
        self.T = rng.dirichlet(np.full(vocab, 0.2), size=vocab)
        self.vocab, self.seq_len = vocab, seq_len
        w, v = np.linalg.eig(self.T.T)
        pi = np.abs(np.real(v[:, np.argmin(np.abs(w - 1))]))
        self.pi = pi / pi.sum()

    def batch(self, seed: int, step: int, batch_size: int, split: str = "train"
              ) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([seed, step, 0 if split == "train" else 1])
        cum = np.cumsum(self.T, axis=1)
        seq = np.empty((batch_size, self.seq_len + 1), dtype=np.int64)
        seq[:, 0] = rng.choice(self.vocab, size=batch_size, p=self.pi)
        u = rng.random((batch_size, self.seq_len))
        for t in range(self.seq_len):
            seq[:, t + 1] = np.minimum((u[:, t, None] > cum[seq[:, t]]).sum(1), self.vocab - 1)
        return torch.from_numpy(seq[:, :-1]), torch.from_numpy(seq[:, 1:])

    def unigram_entropy(self) -> float:
        p = self.pi[self.pi > 0]
        return float(-(p * np.log(p)).sum())

    def unigram_probs(self) -> np.ndarray:
        """The stationary distribution (the unigram model)."""
        return self.pi



class Recall:
    """Long-range recall: name, at the last position, the one class symbol hidden in noise.

    Symbols ``0..classes-1`` are classes, the next ``noise`` symbols are noise. Each
    sequence is noise except one class symbol at a uniform position ``p < N / 2``; the
    target is that class at position ``N - 1`` and ``IGNORE`` elsewhere. The answer lies
    more than ``N / 2`` tokens back, at a distance that changes from sequence to
    sequence; chance accuracy is ``1 / classes``.
    """

    name = "recall"

    def __init__(self, seq_len: int, classes: int = 8, noise: int = 8) -> None:
        if seq_len < 2:
            raise ValueError(f"recall needs seq_len >= 2, got {seq_len}")
        self.seq_len, self.classes, self.vocab = seq_len, classes, classes + noise

    def batch(self, seed: int, step: int, batch_size: int, split: str = "train"
              ) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([seed, step, 0 if split == "train" else 1, 7])
        x = rng.integers(self.classes, self.vocab, size=(batch_size, self.seq_len))
        label = rng.integers(0, self.classes, size=batch_size)
        pos = rng.integers(0, max(1, self.seq_len // 2), size=batch_size)
        x[np.arange(batch_size), pos] = label
        y = np.full_like(x, IGNORE)
        y[:, -1] = label
        return torch.from_numpy(x), torch.from_numpy(y)

    def unigram_entropy(self) -> float:
        """Loss of a uniform guess over the classes (chance)."""
        return math.log(self.classes)

    def unigram_probs(self) -> np.ndarray:
        """A uniform guess over the classes (the targets are classes only)."""
        return np.concatenate([np.full(self.classes, 1.0 / self.classes), np.zeros(self.vocab - self.classes)])


def batch_unigram_loss(task, targets: torch.Tensor) -> float:
    """Cross-entropy (nats) of the scored ``targets`` under ``task``'s unigram model: how hard this
    batch is for a model that knows only symbol frequencies."""
    y = targets[targets != IGNORE].numpy()
    p = np.maximum(task.unigram_probs()[y], 1e-300)
    return float(-np.log(p).mean()) if y.size else 0.0


def make_task(name: str, seq_len: int):
    if name == "charlm":
        return CharLM(seq_len)
    if name == "markov":
        return Markov(seq_len)
    if name == "recall":
        return Recall(seq_len)
    raise ValueError(f"unknown task {name!r}; choose from {TASKS}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Build the bundled corpus (run once; committed).")
    ap.add_argument("--build", action="store_true")
    args = ap.parse_args(argv)
    if not args.build:
        ap.print_help()
        return
    text = build_corpus()
    CORPUS.parent.mkdir(parents=True, exist_ok=True)
    CORPUS.write_bytes(gzip.compress(text.encode("ascii"), mtime=0))
    print(f"wrote {CORPUS} ({len(text)} chars, {len(set(text))} symbols, "
          f"Python {sys.version.split()[0]}); unigram entropy "
          f"{math.log(len(set(text))):.3f} nats max")


if __name__ == "__main__":
    main()
