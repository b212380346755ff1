"""Kill the trainer at random moments, resume it as a user would, and compare with an uninterrupted run.

Two kinds of kill:

* in process: a :class:`Killed` (a ``BaseException`` nothing in the trainer catches, so no
  cleanup runs, as with ``kill -9``; the lock is released as the OS would) raised at the
  k-th call of one of the trainer's write points: half-way through a metrics line, half-way
  through a checkpoint or JSON temporary file, just before a rename, before an optimizer
  step. Hypothesis draws the points and counts, up to three kills per run;
* a real ``SIGKILL`` of ``python -m reference.train`` at a random record count.

After each kill the run is continued with :func:`reference.lab.train.run_once` (``--resume`` when
a checkpoint exists, else started again). Every record (less its timing) and the summary
(less ``out`` and ``resumed_from``) must equal the uninterrupted run's.

The longer variant: ``TRAIN_FAULT_EXAMPLES=500 python -m pytest tests/reference/lab/test_train_faults.py``.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings, strategies as st

import reference.lab.train as train_module
from reference.lab.runs import read_metrics, read_summary
from reference.lab.train import Config, run, run_once

CFG = Config(mixer="mhc", depth=2, width=8, n_streams=4, steps=9, ckpt_every=2, batch_size=4, seq_len=8,
             task="markov", eval_batches=1, progress=False)
POINTS = ("record", "checkpoint", "json", "rename", "step")
EXAMPLES = int(os.environ.get("TRAIN_FAULT_EXAMPLES", "12"))


class Killed(BaseException):
    """A simulated kill -9."""


def comparable(run_dir: Path) -> tuple[list[dict], dict]:
    records = [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in read_metrics(run_dir)]
    summary = {k: v for k, v in read_summary(run_dir).items() if k not in ("out", "resumed_from")}
    return records, summary


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    run(replace(CFG, out=str(out)))
    return comparable(out)


class Faults:
    """Arms one kill at the ``k``-th call of write point ``point``."""

    def __init__(self, monkeypatch):
        self.point, self.k, self.calls = None, 0, 0
        record, save, write_json, step = (train_module.append_record, torch.save, train_module.write_json,
                                          torch.optim.AdamW.step)
        replace_path = Path.replace

        def hit(point: str) -> bool:
            if self.point != point:
                return False
            self.calls += 1
            return self.calls == self.k

        def on_record(run_dir, rec, **kw):
            if hit("record"):
                with open(Path(run_dir) / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(rec)[:17])                      # a torn line
                raise Killed
            return record(run_dir, rec, **kw)

        def on_save(obj, f, *a, **kw):
            if hit("checkpoint"):
                Path(f).write_bytes(b"PK\x03\x04 torn checkpoint")
                raise Killed
            return save(obj, f, *a, **kw)

        def on_json(path, obj):
            if hit("json"):
                Path(str(path) + ".tmp").write_text('{"torn": ')
                raise Killed
            return write_json(path, obj)

        def on_rename(path_self, target):
            if hit("rename"):
                raise Killed
            return replace_path(path_self, target)

        def on_step(opt, *a, **kw):
            if hit("step"):
                raise Killed
            return step(opt, *a, **kw)

        monkeypatch.setattr(train_module, "append_record", on_record)
        monkeypatch.setattr(torch, "save", on_save)
        monkeypatch.setattr(train_module, "write_json", on_json)
        monkeypatch.setattr(Path, "replace", on_rename)
        monkeypatch.setattr(torch.optim.AdamW, "step", on_step)

    def arm(self, point: str | None, k: int = 0) -> None:
        self.point, self.k, self.calls = point, k, 0


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kills=st.lists(st.tuples(st.sampled_from(POINTS), st.integers(1, 10)), min_size=1, max_size=3))
def test_kills_at_random_write_points_lose_nothing(tmp_path_factory, straight, kills):
    out = tmp_path_factory.mktemp("killed")
    cfg = replace(CFG, out=str(out))
    with pytest.MonkeyPatch.context() as patches:                 # undone after each example
        faults = Faults(patches)
        for point, k in kills:
            faults.arm(point, k)
            try:
                run_once(cfg)
            except Killed:
                event(f"killed at {point}")
                continue
        faults.arm(None)
        run_once(cfg)
    assert comparable(out) == straight
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())


@pytest.mark.slow
def test_sigkill_at_a_random_record_then_resume(tmp_path):
    """A real kill -9 of the CLI while it trains, then ``--resume`` (or a restart without a checkpoint)."""
    args = [sys.executable, "-m", "reference.train", "--mixer", "mhc", "--depth", "2", "--width", "8",
            "--task", "markov", "--batch-size", "4", "--seq-len", "8", "--eval-batches", "1", "--steps", "40",
            "--ckpt-every", "3", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = subprocess.run([*args, "--out", str(tmp_path / "s")], env=env, capture_output=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]
    rng = random.Random(int(os.environ.get("TRAIN_FAULT_SEED", "0")))
    out = tmp_path / "k"
    target = rng.randrange(1, 40)
    proc = subprocess.Popen([*args, "--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = out / "metrics.jsonl"
    while proc.poll() is None and (not metrics.exists() or metrics.read_bytes().count(b"\n") < target):
        time.sleep(0.002)
    time.sleep(rng.random() * 0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = "--resume" if (out / "ckpt.pt").exists() else "--overwrite"
    done = subprocess.run([*args, "--out", str(out), again], env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert comparable(out) == comparable(tmp_path / "s")
