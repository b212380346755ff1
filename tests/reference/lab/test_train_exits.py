"""Every way out of the trainer says why and keeps the run: divergence (exit 3 and one line),
SIGINT / SIGTERM (a checkpoint, one line, exit 130 / 143, an exact resume), a full disk (exit 2,
nothing half-written), a tampered optimizer state, sizes past their documented bounds, a
non-regular checkpoint file, growing --steps under the paper schedule."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import reference.lab.train as train_module
from reference.lab.train import main as train_main

SMALL = ["--mixer", "mhc", "--depth", "2", "--task", "markov", "--width", "8", "--batch-size", "4",
         "--seq-len", "8", "--eval-batches", "1", "--no-progress"]


def last_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def records(folder) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "tokens_per_s"}
            for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_a_last_update_that_blows_up_exits_3_without_validation(tmp_path, capsys):
    """--eval-batches 0 used to exit 0 with "diverged": false while the health flags said non-finite."""
    args = [a for a in SMALL if a not in ("--eval-batches", "1")]
    assert train_main([*args, "--eval-batches", "0", "--steps", "1", "--lr", "1e30", "--out", str(tmp_path)]) == 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["diverged"] and summary["divergence"]["cause"] == "final model output"
    assert "non-finite: final model output" in last_line(capsys)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_checkpoints_says_how_to_resume_and_resumes_exactly(tmp_path, monkeypatch, capsys, signum, code):
    """Ctrl-C with the default --ckpt-every 0 used to lose the whole run. The signal is raised by the
    handler's own flag at the 5th record (as a real signal would set it between two records)."""
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    assert train_main([*SMALL, "--steps", "10", "--out", str(ref)]) == 0
    original = train_module.append_record

    def signal_at_five(out, record):
        original(out, record)
        if record["step"] == 4:
            train_module._STOP._handle(signum, None)

    monkeypatch.setattr(train_module, "append_record", signal_at_five)
    assert train_main([*SMALL, "--steps", "10", "--out", str(cut)]) == code
    line = last_line(capsys)
    assert f"interrupted by {signal.Signals(signum).name} at step 5" in line and line.endswith("--resume")
    assert (cut / "ckpt.pt").exists() and not (cut / "summary.json").exists()
    monkeypatch.undo()
    resume = line.split("resume with: python -m reference.train ")[1].split()
    assert train_main(resume) == 0
    assert records(cut) == records(ref)
    a, b = (json.loads((f / "summary.json").read_text()) for f in (ref, cut))
    assert (a["final_loss"], a["val_loss"]) == (b["final_loss"], b["val_loss"])


def test_a_real_sigint_to_the_command(tmp_path):
    """The command as a user runs it: Ctrl-C (SIGINT) mid-run, exit 130, one line, a checkpoint."""
    proc = subprocess.Popen([sys.executable, "-m", "reference.train", *SMALL, "--steps", "100000", "--out",
                             str(tmp_path)], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (tmp_path / "metrics.jsonl").exists() or \
            not (tmp_path / "metrics.jsonl").read_text().count("\n") >= 3:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and len(err.strip().splitlines()) == 1 and "resume with" in err, err
    assert (tmp_path / "ckpt.pt").exists()


def test_a_full_disk_in_torch_save_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    """torch's writer reports a full disk as a RuntimeError (it used to reach the user raw, exit 1)."""
    def full(obj, f, *a, **kw):
        with open(f, "wb") as h:
            h.write(b"PK\x03\x04 partial")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing "
                           "file data/3: file write failed")

    monkeypatch.setattr(torch, "save", full)
    assert train_main([*SMALL, "--steps", "2", "--out", str(tmp_path)]) == 2
    assert "cannot write the checkpoint" in last_line(capsys)
    assert not (tmp_path / "ckpt.pt").exists() and not (tmp_path / "ckpt.pt.tmp").exists()


@pytest.mark.parametrize("edit", ["betas", "weight_decay", "eps", "nan state", "groups"])
def test_a_tampered_optimizer_state_is_refused(tmp_path, capsys, edit):
    """betas edited to (0.5, 0.5) used to resume with exit 0 and train with them; NaN in exp_avg_sq
    became a false divergence that replaced summary.json."""
    assert train_main([*SMALL, "--steps", "4", "--ckpt-every", "2", "--out", str(tmp_path)]) == 0
    (tmp_path / "summary.json").unlink()
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    groups = ckpt["opt"]["param_groups"]
    if edit == "betas":
        groups[0]["betas"] = (0.5, 0.5)
    elif edit == "weight_decay":
        groups[0]["weight_decay"] = 0.7
    elif edit == "eps":
        groups[1]["eps"] = 1.0
    elif edit == "groups":
        groups[0]["params"] += groups[1]["params"]
        del groups[1]
    else:
        state = next(iter(ckpt["opt"]["state"].values()))
        state["exp_avg_sq"].view(-1)[0] = float("nan")
    torch.save(ckpt, tmp_path / "ckpt.pt")
    assert train_main([*SMALL, "--steps", "6", "--out", str(tmp_path), "--resume"]) == 2
    assert "reference.train: error:" in last_line(capsys)
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.parametrize("flag, value", [("--depth", "1000000000"), ("--width", "100000000"),
                                         ("--batch-size", "100000000"), ("--seed", str(2 ** 70)),
                                         ("--seq-len", "100000000"), ("--out", ""), ("--heads", "100000"),
                                         ("--steps", str(10 ** 12)), ("--width", "16384")])
def test_sizes_past_their_bounds_are_refused_at_parse_time(tmp_path, capsys, flag, value):
    start = time.perf_counter()
    assert train_main([*SMALL, flag, value] + ([] if flag == "--out" else ["--out", str(tmp_path / "r")])) == 2
    assert "reference.train: error:" in last_line(capsys) and time.perf_counter() - start < 5
    assert not (tmp_path / "r").exists()


def test_growing_steps_under_the_paper_schedule_is_refused_with_its_reason(tmp_path, capsys):
    assert train_main([*SMALL, "--schedule", "paper", "--steps", "4", "--out", str(tmp_path)]) == 0
    assert train_main([*SMALL, "--schedule", "paper", "--steps", "6", "--out", str(tmp_path), "--resume"]) == 2
    assert "cosine" in last_line(capsys)


def test_a_fifo_as_the_checkpoint_is_refused_not_waited_on(tmp_path, capsys):
    assert train_main([*SMALL, "--steps", "4", "--ckpt-every", "2", "--out", str(tmp_path)]) == 0
    (tmp_path / "summary.json").unlink()
    (tmp_path / "ckpt.pt").unlink()
    os.mkfifo(tmp_path / "ckpt.pt")
    assert train_main([*SMALL, "--steps", "6", "--out", str(tmp_path), "--resume"]) == 2
    assert "not a regular file" in last_line(capsys)


def test_a_full_disk_while_writing_the_plot_leaves_no_half_file(tmp_path, monkeypatch, capsys):
    """Every file of a run is written whole or not at all: curves.png too."""
    import matplotlib.figure

    def full(self, fname, *a, **kw):
        with open(fname, "wb") as h:
            h.write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    assert train_main([*SMALL, "--steps", "2", "--out", str(tmp_path)]) == 2
    assert "No space left" in last_line(capsys)
    assert not (tmp_path / "curves.png").exists() and not (tmp_path / "curves.png.tmp").exists()
    assert not (tmp_path / "summary.json").exists() and (tmp_path / "ckpt.pt").exists()


def test_the_causal_arm_from_the_command_line(tmp_path, capsys):
    """--res-bound norm trains HC with its H_res gains bounded by 1 (composite gain <= 1); other mixers refuse it."""
    args = [a for a in SMALL if a not in ("mhc",)]
    args[args.index("--mixer") + 1:args.index("--mixer") + 1] = ["hc"]
    assert train_main([*args, "--res-bound", "norm", "--steps", "3", "--lr", "0.05", "--out", str(tmp_path / "a")]) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["gain_forward"] <= 1 + 1e-5 and summary["gain_backward"] <= 1 + 1e-5
    assert json.loads((tmp_path / "a" / "config.json").read_text())["res_bound"] == "norm"
    capsys.readouterr()
    assert train_main([*SMALL, "--res-bound", "norm", "--steps", "1", "--out", str(tmp_path / "b")]) == 2
    assert "causal arm" in last_line(capsys)
