"""The trainer never reports a wrong result or loses a record: divergence in the update itself,
run folders that hold one run, resume that refuses changed settings, append-only records,
validated checkpoints, the folder lock (reliability issue, items 1-7)."""

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import reference.lab.train as train_module
from reference.checkpoint import load_checkpoint, save_checkpoint
from reference.lab.runs import RunLock, read_metrics
from reference.lab.train import Config, final_loss, main as train_main, run

TINY = Config(mixer="mhc", depth=2, width=8, n_streams=4, steps=6, batch_size=4, seq_len=8, task="markov",
              eval_batches=1, progress=False,
              plots=False)     # curves.png: the CLI tests draw it
SMALL = ["--mixer", "mhc", "--depth", "2", "--task", "markov", "--width", "8", "--batch-size", "4",
         "--seq-len", "8", "--eval-batches", "1", "--no-progress"]


def strict(path: Path):
    """Parse a JSON (or JSONL) file, failing on NaN / Infinity."""
    def no_constant(c):
        pytest.fail(f"{path}: non-standard JSON constant {c}")
    text = path.read_text()
    if path.suffix == ".jsonl":
        return [json.loads(line, parse_constant=no_constant) for line in text.splitlines()]
    return json.loads(text, parse_constant=no_constant)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (the TensorBoard events included), by relative path, but the lock."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("reference.train: error:") and len(err.splitlines()) == 1, err
    return err


# ----------------------------------------------------------------------------- 1. the update itself

def test_blowup_in_the_last_update_is_a_divergence(tmp_path, capsys):
    """--steps 1 --lr 1e30: the loss before the update is finite, the model after it is not."""
    code = train_main([*SMALL, "--steps", "1", "--lr", "1e30", "--out", str(tmp_path)])
    summary = strict(tmp_path / "summary.json")
    assert code == 3 and summary["diverged"] and summary["divergence"]["step"] in (0, 1)
    err = capsys.readouterr().err                       # one line: the step and what went non-finite
    assert err.startswith("reference.train: diverged at step") and "non-finite:" in err and err.count("\n") == 1
    assert summary["val_loss"] is None and not (tmp_path / "ckpt.pt").exists()
    strict(tmp_path / "metrics.jsonl")


def test_non_finite_parameters_after_a_step_end_the_run(tmp_path, monkeypatch):
    """An optimizer step that leaves a NaN weight (and a finite loss before it) is caught at that step."""
    original = torch.optim.AdamW.step
    calls = []

    def poisoned(self, *a, **kw):
        out = original(self, *a, **kw)
        calls.append(1)
        if len(calls) == 4:
            next(iter(self.param_groups[0]["params"])).data.view(-1)[0] = math.nan
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", poisoned)
    s = run(replace(TINY, steps=10, ckpt_every=2, out=str(tmp_path)))
    assert s["diverged"] and s["divergence"]["cause"] == "parameters" and s["divergence"]["step"] == 3
    records = strict(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2, 3] and records[-1]["diverged"]
    assert load_checkpoint(tmp_path / "ckpt.pt")["step"] == 2        # the last finite state, never a NaN one
    strict(tmp_path / "summary.json")


def test_non_finite_optimizer_state_is_a_divergence(tmp_path, monkeypatch):
    original = torch.optim.AdamW.step

    def poisoned(self, *a, **kw):
        out = original(self, *a, **kw)
        state = next(iter(self.state.values()))
        state["exp_avg_sq"].view(-1)[0] = math.inf
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", poisoned)
    s = run(replace(TINY, out=str(tmp_path)))
    assert s["diverged"] and s["divergence"] == {**s["divergence"], "step": 0, "cause": "parameters"}


def test_finite_state_check_is_exact_for_huge_finite_values():
    """A norm that overflows (entries 1e30) is not mistaken for a non-finite entry."""
    model = torch.nn.Linear(4, 4)
    with torch.no_grad():
        model.weight.fill_(1e30)
    opt = torch.optim.AdamW(model.parameters())
    assert train_module._finite_state(model, opt)
    with torch.no_grad():
        model.bias[2] = -math.inf
    assert not train_module._finite_state(model, opt)


def test_summary_numbers_are_strict_json(tmp_path):
    from reference.lab.runs import json_safe, write_json
    write_json(tmp_path / "x.json", {"a": math.nan, "b": [math.inf, 1.0], "c": {"d": -math.inf}})
    assert strict(tmp_path / "x.json") == {"a": None, "b": [None, 1.0], "c": {"d": None}}
    assert json_safe((1.0, math.nan)) == [1.0, None]


# ----------------------------------------------------------------------------- 2. one run per folder

CHANGES = [("--lr", "0.3"), ("--weight-decay", "0.5"), ("--seed", "5"), ("--batch-size", "8"),
           ("--dtype", "float64"), ("--task", "charlm"), ("--seq-len", "16"), ("--grad-clip", "0"),
           ("--width", "16"), ("--init", "symmetric"), ("--eval-batches", "2"), ("--mixer", "kromhc")]


@pytest.mark.parametrize("flag, value", CHANGES)
def test_resume_refuses_a_changed_setting(tmp_path, capsys, flag, value):
    """Each setting that changes the result: exit 2, a line naming it, the folder untouched; also on a
    finished run (which used to print the old summary and exit 0)."""
    args = [*SMALL, "--steps", "4", "--ckpt-every", "2", "--out", str(tmp_path)]
    assert train_main(args) == 0
    before = snapshot(tmp_path)
    capsys.readouterr()
    changed = [a for a in args]
    if flag in changed:
        changed[changed.index(flag) + 1] = value
    else:
        changed += [flag, value]
    assert train_main([*changed, "--resume"]) == 2
    assert flag.lstrip("-").replace("-", "_") in one_line_error(capsys)
    assert snapshot(tmp_path) == before
    assert train_main([*changed, "--steps", "6", "--resume"]) == 2        # unfinished-to-be: refused too
    assert snapshot(tmp_path) == before


def test_an_existing_run_is_refused_without_resume_or_overwrite(tmp_path, capsys):
    kromhc = ["--mixer", "kromhc", *SMALL[2:], "--out", str(tmp_path)]
    assert train_main([*kromhc, "--steps", "8"]) == 0
    before = snapshot(tmp_path)
    assert train_main([*SMALL, "--steps", "3", "--out", str(tmp_path)]) == 2
    assert "--resume" in one_line_error(capsys) and snapshot(tmp_path) == before
    assert train_main([*SMALL, "--steps", "3", "--out", str(tmp_path), "--overwrite"]) == 0
    assert strict(tmp_path / "config.json")["mixer"] == "mhc" and len(read_metrics(tmp_path)) == 3
    assert train_main([*SMALL, "--steps", "3", "--out", str(tmp_path), "--overwrite", "--resume"]) == 2


def test_resume_without_a_checkpoint_is_an_error(tmp_path, capsys):
    assert train_main([*SMALL, "--steps", "2", "--out", str(tmp_path / "new"), "--resume"]) == 2
    assert "no run to continue" in one_line_error(capsys) and not (tmp_path / "new").exists()
    assert train_main([*SMALL, "--steps", "2", "--out", str(tmp_path)]) == 0
    (tmp_path / "ckpt.pt").unlink()
    assert train_main([*SMALL, "--steps", "4", "--out", str(tmp_path), "--resume"]) == 2
    assert "no checkpoint" in one_line_error(capsys)


def test_a_folder_of_other_files_is_not_a_run(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert train_main([*SMALL, "--steps", "2", "--out", str(tmp_path)]) == 2
    assert "holds no run" in one_line_error(capsys)
    assert train_main([*SMALL, "--steps", "2", "--out", str(tmp_path), "--overwrite"]) == 0
    assert (tmp_path / "notes.txt").read_text() == "mine"            # --overwrite replaces only run files


def test_default_out_is_a_new_folder_per_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = run(replace(TINY, steps=1, out=None)), run(replace(TINY, steps=1, out=None))
    assert a["out"] != b["out"] and Path(a["out"]).parent == Path(b["out"]).parent == Path("runs/train")
    assert all((Path(s["out"]) / "summary.json").exists() for s in (a, b))


def test_a_second_trainer_on_the_same_folder_is_locked_out(tmp_path, capsys):
    assert train_main([*SMALL, "--steps", "2", "--out", str(tmp_path)]) == 0
    before = snapshot(tmp_path)
    with RunLock(tmp_path):
        assert train_main([*SMALL, "--steps", "4", "--out", str(tmp_path), "--resume"]) == 2
        assert "in use by another trainer" in one_line_error(capsys)
        assert train_main([*SMALL, "--steps", "4", "--out", str(tmp_path), "--overwrite"]) == 2
    assert snapshot(tmp_path) == before
    assert train_main([*SMALL, "--steps", "4", "--out", str(tmp_path), "--resume"]) == 0   # released


def test_resume_may_extend_steps_and_finished_runs_stay(tmp_path):
    args = [*SMALL, "--out", str(tmp_path)]
    assert train_main([*args, "--steps", "3"]) == 0
    before = snapshot(tmp_path)
    assert train_main([*args, "--steps", "3", "--resume"]) == 0           # finished: nothing changes
    assert snapshot(tmp_path) == before
    assert train_main([*args, "--steps", "5", "--resume"]) == 0
    assert strict(tmp_path / "config.json")["steps"] == 5 and strict(tmp_path / "summary.json")["steps"] == 5
    assert [r["step"] for r in read_metrics(tmp_path)] == list(range(5))


# ----------------------------------------------------------------------------- 3. the whole run's records

def _comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in records]


def _summary(s: dict) -> dict:
    return {k: v for k, v in s.items() if k not in ("out", "resumed_from")}


def test_final_loss_counts_every_step_across_resumes(tmp_path):
    straight = run(replace(TINY, steps=35, out=str(tmp_path / "s")))
    part = replace(TINY, steps=30, out=str(tmp_path / "r"))
    run(part)
    resumed = run(replace(part, steps=35, resume=True))
    assert resumed["final_loss"] == straight["final_loss"] == final_loss(read_metrics(tmp_path / "s"))
    assert _summary(resumed) == _summary(straight)
    assert _comparable(read_metrics(tmp_path / "r")) == _comparable(read_metrics(tmp_path / "s"))


def test_a_crash_before_the_summary_loses_nothing(tmp_path):
    """Killed after the final checkpoint, before summary.json: resume writes the same summary."""
    cfg = replace(TINY, out=str(tmp_path))
    first = run(cfg)
    (tmp_path / "summary.json").unlink()
    again = run(replace(cfg, resume=True))
    assert again["final_loss"] is not None and _summary(again) == _summary(first)


def test_records_are_never_rewritten_in_place(tmp_path, monkeypatch):
    """A resume whose record writes fail (a full disk) loses none of the records before the checkpoint."""
    cfg = replace(TINY, steps=8, ckpt_every=2, out=str(tmp_path))
    run(replace(cfg, steps=4))
    kept = (tmp_path / "metrics.jsonl").read_bytes()
    calls = []

    def full_disk(run_dir, record, **kw):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real(run_dir, record, **kw)

    real = train_module.append_record
    monkeypatch.setattr(train_module, "append_record", full_disk)
    with pytest.raises(OSError):
        run(replace(cfg, resume=True))
    assert (tmp_path / "metrics.jsonl").read_bytes().startswith(kept)
    monkeypatch.undo()
    run(replace(cfg, resume=True))
    straight = run(replace(cfg, out=str(tmp_path / "s")))
    assert _comparable(read_metrics(tmp_path)) == _comparable(read_metrics(tmp_path / "s"))
    assert json.loads((tmp_path / "summary.json").read_text())["final_loss"] == straight["final_loss"]


def test_lost_records_are_refused_not_stitched(tmp_path, capsys):
    assert train_main([*SMALL, "--steps", "4", "--out", str(tmp_path)]) == 0
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "metrics.jsonl").write_text("".join(lines[:2]))
    before = snapshot(tmp_path)
    assert train_main([*SMALL, "--steps", "6", "--out", str(tmp_path), "--resume"]) == 2
    assert "records are lost" in one_line_error(capsys) and snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- 4, 7. checkpoints

def _corrupt(ckpt: dict, how: str) -> dict:
    bad = dict(ckpt)
    if how == "model_config list":
        bad["model_config"] = list(ckpt["model_config"].items())
    elif how == "model_config unknown field":
        bad["model_config"] = {**ckpt["model_config"], "wings": 2}
    elif how == "opt empty":
        bad["opt"] = {}
    elif how == "opt wrong shapes":
        state = {k: {n: (t[:1] if t.ndim else t) for n, t in s.items()} for k, s in ckpt["opt"]["state"].items()}
        bad["opt"] = {**ckpt["opt"], "state": state}
    elif how == "model empty":
        bad["model"] = {}
    elif how == "model missing a weight":
        bad["model"] = dict(list(ckpt["model"].items())[1:])
    elif how == "model non-finite":
        bad["model"] = {k: torch.full_like(v, math.nan) if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    elif how == "train_config other lr":
        bad["train_config"] = {**ckpt["train_config"], "lr": 0.3}
    else:
        bad["step"] = {"step 5.5": 5.5, "step tensor": torch.tensor(2), "step -5": -5, "step True": True,
                       "step past the run": 99}[how]
    return bad


@pytest.mark.parametrize("how", ["model_config list", "model_config unknown field", "opt empty", "opt wrong shapes",
                                 "model empty", "model missing a weight", "model non-finite", "train_config other lr",
                                 "step 5.5", "step tensor", "step -5", "step True", "step past the run"])
def test_a_malformed_checkpoint_is_refused_before_anything_is_touched(tmp_path, capsys, how):
    assert train_main([*SMALL, "--steps", "4", "--ckpt-every", "2", "--out", str(tmp_path)]) == 0
    (tmp_path / "summary.json").unlink()
    torch.save(_corrupt(torch.load(tmp_path / "ckpt.pt", weights_only=True), how), tmp_path / "ckpt.pt")
    before = snapshot(tmp_path)
    assert train_main([*SMALL, "--steps", "6", "--out", str(tmp_path), "--resume"]) == 2
    one_line_error(capsys)
    assert snapshot(tmp_path) == before


def test_out_is_a_file_or_under_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    for out in (tmp_path / "f", tmp_path / "f" / "sub"):
        assert train_main([*SMALL, "--steps", "1", "--out", str(out)]) == 2
        one_line_error(capsys)
    assert (tmp_path / "f").read_text() == "x"


def test_a_full_disk_during_a_checkpoint_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    def half_then_full(obj, f, *a, **kw):
        Path(f).write_bytes(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    assert train_main([*SMALL, "--steps", "4", "--ckpt-every", "2", "--out", str(tmp_path)]) == 0
    monkeypatch.setattr(torch, "save", half_then_full)
    assert train_main([*SMALL, "--steps", "8", "--ckpt-every", "2", "--out", str(tmp_path), "--resume"]) == 2
    assert "No space left" in one_line_error(capsys)
    assert not (tmp_path / "ckpt.pt.tmp").exists() and load_checkpoint(tmp_path / "ckpt.pt")["step"] == 4
    monkeypatch.undo()
    assert train_main([*SMALL, "--steps", "8", "--ckpt-every", "2", "--out", str(tmp_path), "--resume"]) == 0


def test_a_stale_partial_checkpoint_does_not_block_resume(tmp_path):
    cfg = replace(TINY, steps=6, ckpt_every=2, out=str(tmp_path))
    run(replace(cfg, steps=4))
    (tmp_path / "ckpt.pt.tmp").write_bytes(b"half a checkpoint")
    assert run(replace(cfg, resume=True))["steps"] == 6 and not (tmp_path / "ckpt.pt.tmp").exists()


def test_save_checkpoint_is_atomic_on_failure(tmp_path):
    save_checkpoint(tmp_path / "c.pt", model_config={}, train_config={}, model={"w": torch.ones(1)},
                    opt={"state": {}, "param_groups": []}, step=1)
    with pytest.raises(AttributeError, match="pickle"):
        save_checkpoint(tmp_path / "c.pt", model_config={}, train_config={}, model={"w": torch.ones(1)},
                        opt={"state": {}, "param_groups": []}, step=lambda: 0)   # not picklable
    assert not (tmp_path / "c.pt.tmp").exists() and torch.load(tmp_path / "c.pt", weights_only=True)["step"] == 1


# ----------------------------------------------------------------------------- what a run leaves to read

def test_no_plots_leaves_out_the_plot_only(tmp_path):
    """``--no-plots``: no curves.png, every other file; a bookkeeping setting (a resume may change it)."""
    assert train_main([*SMALL, "--steps", "2", "--out", str(tmp_path), "--no-plots"]) == 0
    assert not (tmp_path / "curves.png").exists()
    assert {"summary.json", "metrics.csv", "metrics.jsonl", "ckpt.pt", "tensorboard"} <= {p.name for p in tmp_path.iterdir()}
    assert train_main([*SMALL, "--steps", "3", "--out", str(tmp_path), "--resume"]) == 0
    assert (tmp_path / "curves.png").exists()


def test_a_run_writes_csv_a_plot_and_health(tmp_path, capsys):
    import csv

    from reference.models import Model

    assert train_main([*SMALL, "--steps", "6", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    records = read_metrics(tmp_path)
    assert [int(r["step"]) for r in rows] == list(range(6)) and float(rows[3]["loss"]) == records[3]["loss"]
    assert rows[0]["lr"] == repr(records[0]["lr"]) and rows[0]["diverged"] == "0"
    assert (tmp_path / "curves.png").stat().st_size > 5000
    summary = strict(tmp_path / "summary.json")
    assert summary["health"]["ok"] in (True, False) and isinstance(summary["health"]["flags"], list)
    assert summary["stream_spread"] > 0 and summary["certificate"]["depth"] == 2            # 2 MLP layers
    assert not Model.from_checkpoint(tmp_path / "ckpt.pt").training                        # ready to evaluate
    with pytest.raises(SystemExit):
        train_main(["--help"])
    help_text = capsys.readouterr().out
    assert "(default: 0.003)" in help_text and "(default: mhc)" in help_text


def test_runs_and_checkpoints_older_than_a_setting_read_back_with_its_old_value(tmp_path):
    """A setting added after a run was made takes the value every earlier run had (``LEGACY_DEFAULTS``),
    not today's default, so an old run reads back, and resumes, as it was trained."""
    from reference.checkpoint import LEGACY_DEFAULTS
    from reference.lab.runs import config_from_dict

    old = config_from_dict({"mixer": "mhc", "depth": 2}, tmp_path)
    assert (old.init, old.sk_order, old.norm, old.favoured, old.mixer_norm) == (
        "symmetric", "rows_cols", "pre", "layer", "plain")
    assert (old.schedule, old.warmup, old.beta2) == ("constant", 0, 0.999)
    assert config_from_dict({"mixer": "mhc", "init": "reference"}, tmp_path).init == "reference"   # saved wins
    assert config_from_dict({"mixer": "mhc", "streams": 8}, tmp_path).n_streams == 8        # the field's old name
    out = tmp_path / "run"
    train_main([*SMALL, "--steps", "2", "--ckpt-every", "1", "--out", str(out)])
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    for name in LEGACY_DEFAULTS:
        del ckpt["model_config"][name]
    torch.save(ckpt, out / "old.pt")
    assert {k: load_checkpoint(out / "old.pt")["model_config"][k] for k in LEGACY_DEFAULTS} == LEGACY_DEFAULTS


def test_an_unknown_mixer_is_refused_once_before_any_folder_is_made(tmp_path):
    """The mixer name is checked where the configuration is made (``Architecture``, which ``Config`` and
    ``ModelConfig`` both are), before the run folder exists; the CLI's choices say the same earlier."""
    with pytest.raises(ValueError, match="unknown mixer 'nope'"):
        run(replace(TINY, mixer="nope", out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


def test_the_architecture_is_defaulted_and_checked_in_one_place(tmp_path):
    """``Config`` and ``ModelConfig`` are both an ``Architecture``: one field list, one set of defaults, one
    check, made when the config is (and on every ``replace``); a run's model is its Config's architecture
    with the task's vocabulary and ``seq_len`` positions."""
    from dataclasses import fields

    from reference.models import Architecture, ModelConfig
    from reference.lab.runs import config_from_dict

    arch = {f.name: f.default for f in fields(Architecture)}
    for cls in (Config, ModelConfig):
        assert issubclass(cls, Architecture) and {f.name: f.default for f in fields(cls) if f.name in arch} == arch
    assert "model" not in {f.name for f in fields(Config)}                      # the kind has one name
    cfg = Config(mixer="kromhc", n_streams=8, kind="transformer", heads=2, width=8, seq_len=12)
    model = cfg.model_config(vocab=20)
    assert model.architecture() == cfg.architecture() and (model.vocab, model.max_len) == (20, 12)
    for bad, message in ((dict(n_streams=0), "n_streams must be an integer >= 1"),
                         (dict(kind="cnn"), "unknown kind"), (dict(lr=math.nan), "lr must be"),
                         (dict(lr=-1.0), "lr must be a finite number > 0"), (dict(grad_clip=-1.0), "grad_clip must be"),
                         (dict(beta2=1.0), r"beta2 must be a number in \[0, 1\)"),
                         (dict(steps=0), r"steps must be an integer in \[1, "), (dict(warmup=-1), "warmup must be"),
                         (dict(schedule="cosine"), "unknown schedule"), (dict(task="x"), "unknown task"),
                         (dict(dtype="int8"), "unknown dtype"),
                         (dict(resume=True, overwrite=True), "pass one of them")):
        with pytest.raises(ValueError, match=message):
            Config(**bad)
        with pytest.raises(ValueError, match=message):
            replace(TINY, **bad)
    with pytest.raises(ValueError, match="vocab must be an integer >= 1"):
        ModelConfig(vocab=0)
    assert config_from_dict({"mixer": "mhc", "model": "transformer"}, tmp_path).kind == "transformer"  # old name
    with pytest.raises(ValueError, match="the stored configuration is not valid"):
        config_from_dict({"mixer": "mhc", "depth": -1}, tmp_path)
