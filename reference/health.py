"""The health monitor: one checked forward pass of any model built from :class:`reference.hyper.HyperConnected`.

``monitor(model, *inputs)`` runs ``model(*inputs)`` once (in eval mode, without gradients)
and reports, per hyper-connected layer in application order:

* the composite gain of ``H_res^(l) ... H_res^(1)`` over the first ``tokens`` tokens, forward
  (max abs row sum) and backward (max abs column sum), in float64 at every layer and
  certified (``birkhoff.certify_product``, token 0) at depths 1, 2, 4, ... and the last, with the
  composite's ``sigma2 = ||P - J/n||_2``: how far the stack so far has collapsed the streams toward
  their average (1: not at all for a DS ``P``; 0: every stream is the average);
* the stream spread ``||x - mean_j x_j|| / ||x||`` and the RMS of the layer's output streams;
* the off-identity mass of ``H_res``, ``1 - tr(H_res) / n`` (mean over the tokens);
* whether ``H_res`` is applied: the layer is run again with ``H_res = 0``; identical
  outputs mean the layer ignores ``H_res``;
* whether every value is finite.

and flags the failure modes users of hyper-connections report: ``H_res`` not applied,
``H_res`` stuck at the identity (off-identity mass < 2e-3 in every layer; the reference init has ~1e-3;
a model whose mixing parameters all still hold their initial values gets a note instead, "at init",
since an identity-like ``H_res`` is what the sources initialise), a composite
gain whose certified interval lies outside ``[0.99, 1.01]``, stream RMS growing more than
10x from the first layer to the last, and non-finite values. It is also a hook for a
training loop: ``monitor(model, batch).flags`` every few hundred steps, or the
trainer's ``summary.json["health"]``.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn as nn

from .checkpoint import atomic_write

from birkhoff import certify_product

from .hyper import HyperConnected
from .metrics import max_ds_residual, off_identity_mass
from .tap import Tap, stream_spread

__all__ = ["LayerHealth", "Health", "Monitor", "Observed", "monitor", "GAIN_TOL", "IDENTITY_TOL", "GROWTH_LIMIT", "SCALARS"]

GAIN_TOL = 1e-2                # a composite gain certified outside [1 - tol, 1 + tol] is flagged
IDENTITY_TOL = 2e-3            # off-identity mass below this in every layer: H_res stuck at I (the init: ~1e-3)
GROWTH_LIMIT = 10.0            # stream RMS growing more than this from the first layer to the last
SCALARS = ("gain_forward", "gain_backward", "certified_gain_forward", "certified_gain_backward", "certified_sigma2",
           "off_identity", "stream_spread", "rms_growth", "flags")       # Health.scalars, in Monitor's CSV order


@dataclass
class LayerHealth:
    """One hyper-connected layer (see the module doc); ``certified_*`` are None between the
    certified depths."""

    index: int
    name: str
    mixer: str
    gain_forward: float
    gain_backward: float
    certified_forward: tuple[float, float] | None
    certified_backward: tuple[float, float] | None
    certified_sigma2: tuple[float, float] | None       # ||P - J/n||_2 of the composite so far: stream collapse
    stream_spread: float
    rms: float
    off_identity: float
    ds_residual: float
    h_res_applied: bool | None
    finite: bool
    at_init: bool | None = None                         # every mixing parameter still at its initial value


@dataclass
class Health:
    """The monitor's report: ``layers`` in application order and the ``flags`` raised (empty: healthy)."""

    layers: list[LayerHealth]
    flags: list[str] = field(default_factory=list)
    certificate: dict | None = None          # birkhoff.certify_product of the whole composite (token 0)
    notes: list[str] = field(default_factory=list)     # information, not faults (an untrained model, no mixers)

    @property
    def ok(self) -> bool:
        return not self.flags

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "flags": list(self.flags), "notes": list(self.notes),
                "layers": [asdict(layer) for layer in self.layers]}

    def scalars(self) -> dict[str, float]:
        """One number per quantity of :data:`SCALARS` (the certified ones where certified), for a log: the
        composite gains of the whole stack (float64, and the certified upper ends), its certified ``sigma2``,
        the mean off-identity mass, the largest stream spread, the last layer's RMS over the first's, and
        the number of flags."""
        if not self.layers:
            return {"flags": float(len(self.flags))}
        last, cert = self.layers[-1], self.certificate or {}
        out = {"gain_forward": last.gain_forward, "gain_backward": last.gain_backward,
               "off_identity": sum(h.off_identity for h in self.layers) / len(self.layers),
               "stream_spread": max(h.stream_spread for h in self.layers),
               "rms_growth": last.rms / self.layers[0].rms if self.layers[0].rms > 0 else math.nan,
               "flags": float(len(self.flags))}
        for key, name in (("gain_forward", "certified_gain_forward"), ("gain_backward", "certified_gain_backward"),
                          ("sigma2", "certified_sigma2")):
            if cert.get(key) is not None and cert[key][1] is not None:
                out[name] = float(cert[key][1])
        return out

    def __str__(self) -> str:
        shown = [h for h in self.layers if h.certified_forward is not None or not h.finite or h.h_res_applied is False]
        lines = [f"health: {'ok' if self.ok else 'FLAGS'} ({len(self.layers)} hyper-connected layers)"]
        lines += [f"  ! {flag}" for flag in self.flags]
        lines += [f"  - {note}" for note in self.notes]
        if not self.layers:
            return "\n".join(lines)
        lines.append("  layer  mixer     gain fwd (certified)          gain bwd (certified)          spread   rms"
                     "       off-I    H_res used")
        for h in shown:
            cf = f"[{h.certified_forward[0]:.6g}, {h.certified_forward[1]:.6g}]" if h.certified_forward else "-"
            cb = f"[{h.certified_backward[0]:.6g}, {h.certified_backward[1]:.6g}]" if h.certified_backward else "-"
            used = {True: "yes", False: "NO", None: "-"}[h.h_res_applied]
            lines.append(f"  {h.index:5d}  {h.mixer:8s}  {cf:28s}  {cb:28s}  {h.stream_spread:7.3f}  {h.rms:8.3g}"
                         f"  {h.off_identity:7.4f}  {used}")
        return "\n".join(lines)


class _Watch(Tap):
    """Records each mixer's ``H_res`` (first ``tokens`` tokens) and output-stream statistics, in the order the
    mixers run; with ``gradients``, also whether the backward pass that follows brings a nonzero gradient to
    each layer's output streams and to its ``H_res``."""

    def __init__(self, tokens: int, gradients: bool = False) -> None:
        self.tokens, self.gradients = tokens, gradients
        self.h: dict[int, torch.Tensor] = {}
        self.stats: dict[int, tuple[float, float, bool]] = {}
        self.reached: dict[int, bool] = {}         # id(mixer): a nonzero gradient reached its output streams
        self.used: dict[int, bool] = {}            # id(mixer): ... reached its H_res

    def h_res(self, mixer: nn.Module, H_res: torch.Tensor) -> torch.Tensor:
        self.h[id(mixer)] = H_res.detach().reshape(-1, *H_res.shape[-2:])[: self.tokens].to(torch.float64)
        if self.gradients and H_res.requires_grad:
            self.used.setdefault(id(mixer), False)
            H_res.register_hook(self._nonzero(self.used, id(mixer)))
        return H_res

    def streams(self, mixer: nn.Module, x: torch.Tensor) -> None:
        if self.gradients and x.requires_grad:
            x.register_hook(self._nonzero(self.reached, id(mixer)))
        x = x.detach().double()
        self.stats[id(mixer)] = (stream_spread(x), float(x.norm()) / math.sqrt(max(x.numel(), 1)),
                                 bool(torch.isfinite(x).all()))

    @staticmethod
    def _nonzero(seen: dict[int, bool], key: int):
        def hook(grad: torch.Tensor) -> None:
            seen[key] = seen.get(key, False) or bool(grad.ne(0).any())
        return hook

    def applied(self, mixer: nn.Module) -> bool | None:
        """Does the loss depend on ``mixer``'s ``H_res``, by the gradients? None when no nonzero gradient
        reached the layer's output (no backward pass) or ``H_res`` needs none."""
        if not self.reached.get(id(mixer)) or id(mixer) not in self.used:
            return None
        return self.used[id(mixer)]


class _ZeroHRes(Tap):
    def h_res(self, mixer: nn.Module, H_res: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(H_res)


class Monitor:
    """The monitor as a training companion, every ``every`` steps: ``hook(step, *inputs)`` runs :func:`monitor`
    on ``inputs``, or ``with hook.observe(step):`` around the step's own forward and backward passes reads
    them (no pass of its own; the trainer's way); off the due steps both return at once. Each report appends
    :meth:`Health.scalars` to ``OUT/health.csv`` and, where the ``tensorboard`` package is installed, to
    TensorBoard events in ``OUT/tensorboard/health``. The hook certifies the whole stack's composite only
    (:func:`monitor` also certifies depths 1, 2, 4, ...): its scalars and flags are the same.

    Cost (``benchmarks/bench_monitor.py``): ``observe`` adds about a forward pass to the step it reads
    (its copies of the streams and one certificate), ``hook(step, x)`` that and the monitor's own passes;
    at the default interval of 200 steps either is well under 1 % of training time.
    ``out=None`` logs nothing; the health is returned either way.
    ``start``: the step a resumed run continues from; the rows and events of steps ``>= start`` that an
    earlier process logged past its checkpoint are dropped when the hook is made (the trainer's
    ``--health-every`` hook passes it).
    """

    def __init__(self, model: nn.Module, out: str | Path | None = None, every: int = 200, tokens: int = 8,
                 start: int = 0) -> None:
        if int(every) < 1:
            raise ValueError(f"Monitor: every must be an integer >= 1, got {every!r}")
        self.model, self.every, self.tokens, self.start = model, int(every), tokens, int(start)
        self.out = None if out is None else Path(out)
        self._writer = None
        self._tensorboard = importlib.util.find_spec("tensorboard") is not None
        if self.start and self.out is not None and (self.out / "health.csv").exists():
            self._drop_rows_from(self.out / "health.csv", self.start)

    def __call__(self, step: int, *inputs: Any, **kwargs: Any) -> Health | None:
        if step % self.every:
            return None
        health = _monitor(self.model, inputs, kwargs, self.tokens, every_depth=False)
        if self.out is not None:
            self._log(step, health.scalars())
        return health

    @contextmanager
    def observe(self, step: int) -> Iterator[Observed]:
        """On a due step, read the passes the block runs itself instead of a pass of its own::

            with hook.observe(step) as seen:          # seen.health: the report, once the block has run
                loss = loss_fn(model(x), y)
                loss.backward()

        The report is that of :func:`monitor` on the block's last forward pass (train mode, its precision),
        except that whether each layer applies ``H_res`` is read from the backward pass (a nonzero
        gradient reaches the layer's output but none its ``H_res``: not applied), so a block without one
        leaves it unknown. Nothing is logged when the block raises or runs no forward pass."""
        seen = Observed()
        if step % self.every:
            yield seen
            return
        layers = _active(self.model)
        watch = _Watch(self.tokens, gradients=True)
        for _, m in layers:
            m.watch = watch
        try:
            yield seen
        finally:
            for _, m in layers:
                m.watch = None
        ran = _ran(layers, watch)
        if layers and not ran:
            return
        seen.health = _report(ran, watch, {id(m): watch.applied(m.mixer) for _, m in ran}, every_depth=False) \
            if ran else _no_layers(self.model)
        if self.out is not None:
            self._log(step, seen.health.scalars())

    def _log(self, step: int, scalars: dict[str, float]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "health.csv"
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, ["step", *SCALARS])
            if new:
                writer.writeheader()
            writer.writerow({"step": step, **scalars})
        if self._tensorboard:
            if self._writer is None:
                from torch.utils.tensorboard import SummaryWriter
                self._writer = SummaryWriter(str(self.out / "tensorboard" / "health"), purge_step=self.start or None)
            for key, value in scalars.items():
                self._writer.add_scalar(f"health/{key}", value, step)
            self._writer.flush()

    @staticmethod
    def _drop_rows_from(path: Path, step: int) -> None:
        """Rewrite ``health.csv`` (atomically) without its rows of steps ``>= step``."""
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        keep = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) < step]
        text = io.StringIO()
        csv.writer(text).writerows(keep)
        atomic_write(path, lambda tmp: tmp.write_text(text.getvalue()))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


@dataclass
class Observed:
    """What :meth:`Monitor.observe` saw: the report of a due step's block (None otherwise)."""

    health: Health | None = None


def _active(model: nn.Module) -> list[tuple[str, HyperConnected]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, HyperConnected) and not m.disable]


def _ran(layers: list[tuple[str, HyperConnected]], watch: _Watch) -> list[tuple[str, HyperConnected]]:
    """The ``layers`` whose mixer ran in the pass ``watch`` recorded, in the order they ran."""
    rank = {key: i for i, key in enumerate(watch.h)}
    return sorted([(name, m) for name, m in layers if id(m.mixer) in rank], key=lambda nm: rank[id(nm[1].mixer)])


def _no_layers(model: nn.Module) -> Health:
    found = sum(isinstance(m, HyperConnected) for m in model.modules())
    return Health([], notes=[f"no active hyper-connected layer ({found} HyperConnected, all disabled)" if found
                             else "no hyper-connected layer: nothing to check"])


def _certified_depths(L: int) -> list[int]:
    """1, 2, 4, ..., and L (every depth when L <= 32)."""
    if L <= 32:
        return list(range(1, L + 1))
    return sorted({2 ** k for k in range(int(math.log2(L)) + 1)} | {L})


@torch.no_grad()
def monitor(model: nn.Module, *inputs: Any, tokens: int = 8, **kwargs: Any) -> Health:
    """Run ``model(*inputs, **kwargs)`` once and check every :class:`HyperConnected` layer (module doc).

    The model is put in eval mode for the pass and restored; nothing is trained or kept.
    ``tokens``: how many tokens' ``H_res`` enter the composite gains.
    """
    return _monitor(model, inputs, kwargs, tokens, every_depth=True)


def _monitor(model: nn.Module, inputs: tuple, kwargs: dict, tokens: int, every_depth: bool) -> Health:
    """:func:`monitor`; ``every_depth=False`` certifies the whole stack's composite only."""
    layers = _active(model)
    if not layers:
        return _no_layers(model)
    watch, applied = _Watch(tokens), {}
    rerun: set[int] = set()

    def check(module: HyperConnected, args: tuple, kwargs: dict, output: Any) -> None:
        if id(module) in rerun or module.mixer.single_stream:     # the H_res = 0 rerun itself, or no H_res
            return
        y = output[0] if isinstance(output, tuple) else output
        rest = {k: v for k, v in kwargs.items() if k != "tap"}
        rerun.add(id(module))
        module.watch = None                        # the watch records the real pass only
        try:
            y0 = module(*args, tap=_ZeroHRes(), **rest)
        finally:
            rerun.discard(id(module))
            module.watch = watch
        applied[id(module)] = not torch.equal(y0[0] if isinstance(y0, tuple) else y0, y)

    was_training = model.training
    handles = [m.register_forward_hook(check, with_kwargs=True) for _, m in layers]
    for _, m in layers:
        m.watch = watch
    try:
        model.eval()
        model(*inputs, **kwargs)
    finally:
        for h in handles:
            h.remove()
        for _, m in layers:
            m.watch = None
        model.train(was_training)
    return _report(_ran(layers, watch), watch, applied, every_depth)


def _report(layers: list[tuple[str, HyperConnected]], watch: _Watch, applied: dict, every_depth: bool) -> Health:
    """The report of ``layers`` (in application order) from what ``watch`` recorded; ``applied``: per layer,
    whether it applies ``H_res`` (absent or None: unknown); the composites certified at depths 1, 2, 4, ...
    (``every_depth``) or of the whole stack only."""
    chain = [watch.h[id(m.mixer)] for _, m in layers]
    probe = min(h.shape[0] for h in chain)
    P = None
    depths = set(_certified_depths(len(chain)) if every_depth else [len(chain)])
    out = []
    for i, ((name, m), H) in enumerate(zip(layers, chain)):
        H = H[:probe]
        P = H if P is None else H @ P
        finite_chain = bool(torch.isfinite(P).all())
        cert = None
        if i + 1 in depths and finite_chain:
            cert = certify_product(np.stack([c[0].cpu().numpy() for c in chain[: i + 1]]))
        spread, rms, finite = watch.stats.get(id(m.mixer), (0.0, 0.0, True))
        out.append(LayerHealth(
            index=i, name=name, mixer=m.mixer.name,
            gain_forward=float(P.abs().sum(-1).amax()), gain_backward=float(P.abs().sum(-2).amax()),
            certified_forward=tuple(cert.gain_forward) if cert else None,
            certified_backward=tuple(cert.gain_backward) if cert else None,
            certified_sigma2=tuple(cert.sigma2) if cert else None,
            stream_spread=spread, rms=rms,
            off_identity=off_identity_mass(H[None]), ds_residual=max_ds_residual(H[None]),
            h_res_applied=applied.get(id(m)), finite=finite and bool(torch.isfinite(H).all()),
            at_init=m.mixer.at_init()))
    flags, notes = _flags(out, [h for h, (_, m) in zip(out, layers) if not m.mixer.single_stream])
    return Health(out, flags, cert.to_dict() if cert is not None else None, notes)


def _flags(layers: list[LayerHealth], mixing: list[LayerHealth]) -> tuple[list[str], list[str]]:
    """The flags raised, and the notes (information); ``mixing``: the layers that mix streams."""
    flags, notes = [], []
    bad = [h.index for h in layers if not h.finite]
    if bad:
        flags.append(f"non-finite values from layer {bad[0]} on ({len(bad)} layers)")
    ignored = [h.index for h in layers if h.h_res_applied is False]
    if ignored:
        flags.append(f"H_res not applied: the output does not depend on it in layers {_short(ignored)}")
    if mixing and all(abs(h.off_identity) < IDENTITY_TOL for h in mixing):
        mass = max(abs(h.off_identity) for h in mixing)
        if all(h.at_init for h in mixing):
            notes.append(f"at init: H_res is the identity-like start of every layer (off-identity mass {mass:.1e}), "
                         f"as initialised; it is flagged if it is still there once the mixing parameters have moved")
        else:
            flags.append(f"H_res stuck at the identity: off-identity mass < {IDENTITY_TOL:g} in every layer "
                         f"(max {mass:.1e}); the streams do not mix")
    last = next((h for h in reversed(layers) if h.certified_forward is not None), None)
    if last is not None:
        for direction, (lo, hi) in (("forward", last.certified_forward), ("backward", last.certified_backward)):
            if lo > 1 + GAIN_TOL or hi < 1 - GAIN_TOL:
                flags.append(f"composite {direction} gain over {last.index + 1} layers is [{lo:.6g}, {hi:.6g}], "
                             f"away from 1")
    if layers and layers[0].rms > 0 and layers[-1].rms / layers[0].rms > GROWTH_LIMIT:
        flags.append(f"activation growth: the stream RMS grows {layers[-1].rms / layers[0].rms:.3g}x from the first "
                     f"layer to the last")
    return flags, notes


def _short(indices: list[int]) -> str:
    return ", ".join(map(str, indices[:8])) + (f", ... ({len(indices)} in all)" if len(indices) > 8 else "")
