"""Run one measurement in a child process forked from the benchmark (its own peak memory and limits,
without a fresh interpreter's imports: torch is imported once, by the parent).

The parent must not start CUDA (a forked child cannot use a CUDA context it inherits): it only imports;
everything that touches a device runs in a child.
"""

from __future__ import annotations

import multiprocessing


class ChildFailed(RuntimeError):
    """The child raised (``exitcode`` 0 and the exception's text) or died (``exitcode`` < 0: a signal)."""

    def __init__(self, message: str, exitcode: int):
        super().__init__(message)
        self.exitcode = exitcode


def isolated(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a forked child; its result, or :class:`ChildFailed`."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def child():
        try:
            send.send(("ok", fn(*args, **kwargs)))
        except BaseException as exc:                # the parent raises it, with the text
            send.send(("error", f"{type(exc).__name__}: {exc}"))

    proc = ctx.Process(target=child)
    proc.start()
    send.close()
    try:
        status, value = receive.recv()
    except EOFError:                                # died without a word (a signal, os._exit)
        status, value = "error", None
    proc.join()
    if status != "ok":
        raise ChildFailed(value or f"the child exited with code {proc.exitcode}", proc.exitcode or 0)
    return value
