"""The trainer: logs, determinism, resume, divergence, dtypes, DDP, the triton backend, checkpoints,
and clean failures (exit 2 with one line, exit 3 on divergence)."""

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from reference.mixers import MIXERS
from reference.models import Model, ModelConfig
from reference.lab.train import Config, main as train_main, run


TINY = Config(width=8, n_streams=4, steps=4, batch_size=4, seq_len=8, task="markov",
              eval_batches=1, progress=False,
              plots=False)     # curves.png: the CLI tests draw it


def test_train_writes_logs_and_learns(tmp_path):
    cfg = replace(TINY, mixer="kromhc", depth=3, steps=30, lr=1e-2, out=str(tmp_path))
    s = run(cfg)
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 30 and {"loss", "tokens_per_s", "grad_norm", "gain_forward",
                                 "gain_backward", "ds_residual"} <= set(lines[0])
    assert s["final_loss"] < s["unigram_loss"]          # learns the Markov transitions
    assert abs(s["gain_forward"] - 1) < 1e-5 and s["ds_residual"] < 1e-6
    assert s["certificate"]["schema"] == "birkhoff.certificate/2"
    lo, hi = s["composite_sigma2"]                      # the stack's stream collapse, certified (KromHC: DS)
    assert s["certificate"]["sigma2"] == [lo, hi] and 0 <= lo <= hi <= 1 + 1e-6
    assert (tmp_path / "ckpt.pt").exists() and json.loads((tmp_path / "summary.json").read_text())
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator   # a dependency (train)

    events = EventAccumulator(str(next((tmp_path / "tensorboard").glob("steps-*"))))
    events.Reload()
    assert {"loss", "lr", "gain_forward", "grad_norm_total"} <= set(events.Tags()["scalars"])
    assert len(events.Scalars("loss")) == 30


def test_the_health_hook_logs_every_k_steps_and_resumes_cleanly(tmp_path):
    """``--health-every k``: reference.Monitor on the step's batch every k steps (health.csv, TensorBoard); the
    run's losses are those of a run without it; a resume drops the rows an earlier process logged past the
    checkpoint, and the folder ends with one row per due step."""
    import csv

    cfg = replace(TINY, mixer="mhc", depth=2, steps=6, health_every=2, out=str(tmp_path / "h"))
    plain = run(replace(cfg, health_every=0, out=str(tmp_path / "p")))
    assert not (tmp_path / "p" / "health.csv").exists()
    assert run(cfg)["final_loss"] == plain["final_loss"]               # the hook changes nothing it checks
    path = tmp_path / "h" / "health.csv"
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["0", "2", "4"] and 0.99 < float(rows[0]["gain_forward"]) < 1.01
    with path.open("a", newline="") as f:                              # logged past the checkpoint at step 6
        csv.writer(f).writerow(["6"] + ["999"] * (len(rows[0]) - 1))
    run(replace(cfg, steps=10, resume=True))
    with path.open(newline="") as f:
        steps = [r["step"] for r in csv.DictReader(f)]
    assert steps == ["0", "2", "4", "6", "8"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "h" / "tensorboard" / "health"))
    events.Reload()
    assert "health/gain_forward" in events.Tags()["scalars"]


def test_deterministic_with_seed(tmp_path):
    a = run(replace(TINY, mixer="mhc", depth=2, out=str(tmp_path / "a")))
    b = run(replace(TINY, mixer="mhc", depth=2, out=str(tmp_path / "b")))
    assert a["final_loss"] == b["final_loss"]


def test_resume_gives_same_trajectory(tmp_path):
    straight = replace(TINY, mixer="mhc", depth=2, steps=8, out=str(tmp_path / "s"))
    run(straight)
    part = replace(straight, steps=4, out=str(tmp_path / "r"))
    run(part)
    run(replace(part, steps=8, resume=True))
    def losses(d):
        return [json.loads(l)["loss"] for l in (d / "metrics.jsonl").read_text().splitlines()]
    assert losses(tmp_path / "r") == pytest.approx(losses(tmp_path / "s"), rel=1e-6, abs=1e-7)
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["resumed_from"] == 4


def test_divergence_is_detected(tmp_path):
    code = train_main(["--mixer", "hc", "--depth", "2", "--steps", "20", "--task", "markov",
                       "--width", "8", "--batch-size", "4", "--seq-len", "8", "--lr", "1e12",
                       "--grad-clip", "0", "--out", str(tmp_path), "--no-progress"])
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert code == 3 and last["diverged"] and last["loss"] is None
    assert json.loads((tmp_path / "summary.json").read_text())["diverged"]


@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
def test_dtypes(tmp_path, dtype):
    s = run(replace(TINY, mixer="behc", depth=2, steps=2, dtype=dtype, out=str(tmp_path)))
    assert s["final_loss"] is not None and math.isfinite(s["final_loss"])


@pytest.mark.slow
def test_ddp_two_processes_match_one(tmp_path):
    """torchrun with 2 gloo processes == 1 process with the same global batch."""
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    args = ["-m", "reference.train", "--mixer", "mhc", "--depth", "2", "--steps", "5",
            "--task", "markov", "--width", "8", "--batch-size", "4", "--seq-len", "8",
            "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", *args,
                          "--out", str(tmp_path / "two")], capture_output=True, text=True,
                         env=env, timeout=300)
    assert two.returncode == 0 and "terminate called" not in two.stderr, two.stderr[-2000:]
    assert train_main([*args[2:], "--out", str(tmp_path / "one")]) == 0          # one process: this one
    def losses(d):
        return [json.loads(l)["loss"] for l in (d / "metrics.jsonl").read_text().splitlines()]
    assert len(losses(tmp_path / "two")) == 5
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)


def test_bad_cli_arguments(tmp_path, capsys):
    for bad in (["--mixer", "nope"], ["--dtype", "int8"]):                 # refused by argparse
        with pytest.raises(SystemExit) as e:
            train_main(bad + ["--out", str(tmp_path)])
        assert e.value.code == 2
    for bad in (["--depth", "0"], ["--streams", "0"]):       # checked once, where the configuration is used
        assert train_main(bad + ["--out", str(tmp_path / "run"), "--no-progress"]) == 2
        assert not (tmp_path / "run").exists()
    assert "n_streams must be an integer >= 1, got 0" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("mixer", ["mhc", "hc", "kromhc"])
def test_triton_backend_same_trajectory(tmp_path, mixer):
    """--backend triton (gpu kernels; CPU interpreter here) == --backend torch over a few steps (the training
    steps only: no validation, the interpreter's slowest part)."""
    base = replace(TINY, mixer=mixer, depth=2, steps=2, eval_batches=0, out=str(tmp_path / "torch"))
    a = run(base)
    b = run(replace(base, backend="triton", out=str(tmp_path / "triton")))
    def losses(d):
        return [json.loads(l)["loss"] for l in (Path(d) / "metrics.jsonl").read_text().splitlines()]
    assert losses(tmp_path / "triton") == pytest.approx(losses(tmp_path / "torch"), rel=1e-5)
    assert b["final_loss"] == pytest.approx(a["final_loss"], rel=1e-5)


def test_checkpoint_rebuilds_its_model(tmp_path):
    from reference.checkpoint import CheckpointError, load_checkpoint
    from reference.lab.runs import load_model

    cfg = replace(TINY, mixer="kromhc", depth=2, kind="transformer", heads=2, out=str(tmp_path))
    run(cfg)
    ckpt = load_checkpoint(tmp_path / "ckpt.pt")                   # weights_only=True inside
    assert ckpt["model_config"]["mixer"] == "kromhc" and ckpt["train_config"]["depth"] == 2
    model = Model.from_checkpoint(tmp_path / "ckpt.pt")
    assert model.config == ModelConfig(**ckpt["model_config"]) and model.config.kind == "transformer"
    loaded, read_cfg = load_model(tmp_path)
    idx = torch.randint(0, 8, (2, 8))
    torch.testing.assert_close(model(idx), loaded(idx))
    assert read_cfg.mixer == "kromhc" and read_cfg.out == str(tmp_path)
    (tmp_path / "bad.pt").write_bytes((tmp_path / "ckpt.pt").read_bytes()[:100])       # truncated
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a reference checkpoint"):
        Model.from_checkpoint(tmp_path / "foreign.pt")
    assert not list(tmp_path.glob("*.tmp"))                        # atomic writes leave no temporaries


def test_stream_usage_in_every_summary(tmp_path):
    """summary.json says whether the streams are used: spread, and the H_res ablation (I and J/n)."""
    from reference.tap import HResOverride, StreamSpread

    ref = run(replace(TINY, mixer="kromhc", depth=3, steps=20, lr=1e-2, out=str(tmp_path / "r")))
    sym = run(replace(TINY, mixer="kromhc", depth=3, steps=20, lr=1e-2, init="symmetric", out=str(tmp_path / "s")))
    assert set(ref["h_res_ablation"]) == set(HResOverride.KINDS)
    assert ref["stream_spread"] > 10 * sym["stream_spread"]       # the reference init uses the streams
    assert 0 < ref["h_res_off_identity"] < 0.01                   # H_res starts (and stays) near I
    residual = run(replace(TINY, mixer="residual", depth=2, out=str(tmp_path / "res")))
    assert residual["h_res_off_identity"] == 0
    assert residual["stream_spread"] == 0 and residual["h_res_ablation"] == {"identity": 0.0, "average": 0.0}
    spread = StreamSpread()
    x = torch.randn(2, 4, 8)
    spread.streams(None, torch.stack([x, x], -2))
    assert spread.spread == 0


SMALL = ["--depth", "2", "--task", "markov", "--width", "8", "--batch-size", "4", "--seq-len", "8", "--no-progress"]


@pytest.mark.parametrize("name", sorted(MIXERS))
@pytest.mark.parametrize("lr, clip", [("1e10", "0"), ("1e10", "1"), ("1e38", "1")])
def test_every_mixer_diverges_cleanly(tmp_path, name, lr, clip):
    """A blown-up run ends with exit 3, a summary that says where and why, and never a traceback."""
    code = train_main(["--mixer", name, "--lr", lr, "--grad-clip", clip, "--steps", "20", "--out", str(tmp_path),
                       *SMALL])
    summary = json.loads((tmp_path / "summary.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    if code == 0:                       # a few mixers survive some settings: then nothing diverged
        assert not summary["diverged"] and len(records) == 20
        return
    assert code == 3 and summary["diverged"] and records[-1]["diverged"]
    d = summary["divergence"]
    assert d["step"] == records[-1]["step"] and d["cause"] in ("loss", "gradient", "optimizer step overflow")
    assert not (tmp_path / "ckpt.pt").exists()                    # a diverged model is not saved


def test_resume_edges(tmp_path):
    out = str(tmp_path)
    args = ["--mixer", "mhc", "--out", out, *SMALL]
    assert train_main(args + ["--steps", "6"]) == 0
    before = (tmp_path / "summary.json").read_text(), (tmp_path / "ckpt.pt").read_bytes()
    assert train_main(args + ["--steps", "6", "--resume"]) == 0             # finished: nothing changes
    assert ((tmp_path / "summary.json").read_text(), (tmp_path / "ckpt.pt").read_bytes()) == before
    assert train_main(args + ["--steps", "4", "--resume"]) == 2             # backwards: refused
    assert (tmp_path / "ckpt.pt").read_bytes() == before[1]
    assert train_main(["--mixer", "kromhc", "--out", out, *SMALL, "--steps", "8", "--resume"]) == 2
    deeper = [a if a != "2" else "3" for a in args]
    assert train_main(deeper + ["--steps", "8", "--resume"]) == 2
    with open(tmp_path / "metrics.jsonl", "a") as f:                       # a killed run's half line
        f.write('{"step": 6, "lo')
    (tmp_path / "summary.json").unlink()
    assert train_main(args + ["--steps", "8", "--resume"]) == 0
    assert [json.loads(l)["step"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()] == list(range(8))
    for content in (b"", b"not a checkpoint", (tmp_path / "ckpt.pt").read_bytes()[:200]):
        (tmp_path / "ckpt.pt").write_bytes(content)
        assert train_main(args + ["--steps", "9", "--resume"]) == 2


@pytest.mark.parametrize("bad", [["--heads", "0", "--model", "transformer"], ["--heads", "3", "--model", "transformer"],
                                 ["--lr", "inf"], ["--lr", "nan"], ["--lr", "-1"]])
def test_bad_runs_exit_2_with_one_line(tmp_path, capsys, bad):
    assert train_main(["--mixer", "mhc", "--steps", "2", "--out", str(tmp_path), *SMALL, *bad]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reference.train: error:") and len(err.splitlines()) == 1


def test_triton_backend_without_device_or_interpreter(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    if torch.cuda.is_available():
        pytest.skip("with CUDA present the triton backend is valid")
    assert train_main(["--mixer", "mhc", "--backend", "triton", "--steps", "2", "--out", str(tmp_path), *SMALL]) == 2
    assert "TRITON_INTERPRET=1" in capsys.readouterr().err


def test_metrics_are_strict_json_after_a_divergence(tmp_path):
    train_main(["--mixer", "hc", "--lr", "1e10", "--grad-clip", "0", "--steps", "20", "--out", str(tmp_path), *SMALL])
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    json.loads((tmp_path / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(c))


def test_help_states_each_default_once(capsys):
    with pytest.raises(SystemExit) as e:
        train_main(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())        # argparse wraps lines
    assert "(default: None)" not in text and text.count("(default: 1.0) (default") == 0
    assert "(default: mhc)" in text and "(default: 0.999; paper: 0.95)" in text


def test_the_gain_panel_reads_at_every_scale():
    """HC's gains span decades (log scale); a DS mixer's stay within rounding of 1, drawn as ``gain - 1`` (a log
    axis labelled them all '1 x 10^0'); mHC's drift between 1 and 4 (linear, plain labels)."""
    from reference.lab.run_plots import gain_axis

    assert gain_axis([1.0, 3e4, 2e14]) == (True, False)
    assert gain_axis([1.0, 1 + 2e-6, 1 - 5e-7]) == (False, True)
    assert gain_axis([1.0, 2.5, 3.8]) == (False, False) and gain_axis([]) == (False, False)
