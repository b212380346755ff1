"""The studies: their statistics (seed aggregation, the "differs only beyond the spread" rule, the 2/3
majority, the learning-rate bracket on synthetic stability functions) and the sweep and the stability
study end to end."""

import json
import math

import pytest
from hypothesis import given, strategies as st

from reference.lab.studies.brackets import bracket, round_lr
from reference.lab.studies.seeds import differs, fmt_spread, majority, spread
from reference.lab.studies.sweep import PRESETS, main as sweep_main


def test_spread_and_format():
    s = spread([2.70, 2.68, None, 2.74, float("nan")])
    assert (s.n, s.lo, s.hi) == (3, 2.68, 2.74)
    assert s.mean == pytest.approx(2.7066666) and s.half_range == pytest.approx(0.03)
    assert fmt_spread(s) == "2.707 +- 0.030 (3)" and fmt_spread(spread([1.5])) == "1.500" and fmt_spread(None) == "-"
    assert spread([None, float("inf")]) is None


def test_differs_only_beyond_the_seed_spread():
    mhc, kromhc = spread([2.694, 2.710, 2.701]), spread([2.696, 2.689, 2.705])
    assert not differs(mhc, kromhc) and not differs(kromhc, mhc)                 # overlapping ranges: a tie
    assert differs(spread([2.60, 2.62]), spread([2.63, 2.70]))                   # disjoint: a difference
    assert not differs(spread([2.60, 2.63]), spread([2.63, 2.70]))               # touching: not beyond the spread
    assert not differs(None, mhc)
    assert not differs(spread([2.0]), spread([3.0, 3.1])) and not differs(spread([2.0]), spread([3.0]))  # one seed


def test_majority_is_two_thirds():
    assert majority([True, True, False]) and not majority([True, False, False])
    assert majority([True]) and not majority([]) and not majority([True, False])
    assert majority([True, True, True, False]) and not majority([True, True, False, False])


@given(boundary=st.floats(2e-3, 0.9), start=st.sampled_from([0.01, 0.03, 0.1]))
def test_bracket_finds_a_threshold_to_within_the_ratio(boundary, start):
    calls = []

    def stable(lr):
        calls.append(lr)
        return lr <= boundary

    b = bracket(stable, start, low=1e-3, high=1.0)
    assert b.lo is not None and b.hi is not None and b.lo <= boundary < b.hi and b.hi / b.lo <= 1.5
    assert len(calls) == len(set(calls)) and len(calls) <= 8                     # each lr asked once; a few runs
    assert all(b.tried[lr] == (lr <= boundary) for lr in b.tried) and all(lr == round_lr(lr) for lr in b.tried)


def test_bracket_open_ends_and_a_noisy_setting():
    assert str(bracket(lambda lr: True, 0.03, high=1.0)) == ">= 1"                # stable up to the highest
    never = bracket(lambda lr: False, 0.03, low=1e-3)
    assert never.lo is None and str(never) == "< 0.001" and min(never.tried) == 1e-3
    # a setting stable on a band below the boundary only: the walk and bisection still return a valid pair
    b = bracket(lambda lr: 0.005 <= lr <= 0.05, 0.03, low=1e-3, high=1.0)
    assert b.tried[b.lo] and not b.tried[b.hi] and b.hi / b.lo <= 1.5 and math.isclose(b.hi / b.lo, b.hi / b.lo)


def test_a_hard_batch_is_not_a_loss_spike():
    """A batch that is hard for every model (its unigram cross-entropy is high too) raises the raw loss, not
    the excess loss: the verdict does not flip on data (the stability study's rule)."""
    from reference.lab.data import batch_unigram_loss, make_task
    from reference.lab.runs import Config
    from reference.lab.studies.stability import batch_baselines, classify

    calm = {"diverged": False, "val_loss": 2.0, "unigram_loss": 3.0}
    records = [{"loss": 2.0, "grad_norm_total": 1.0}] * 12 + [{"loss": 2.8, "grad_norm_total": 1.0}]
    baselines = [3.0] * 12 + [3.9]                       # the same batch is 0.9 nats harder for the unigram model
    assert not classify(calm, records, 0.5)["stable"] and classify(calm, records, 0.5, baselines)["stable"]
    rising = [{"loss": 2.0, "grad_norm_total": 1.0}] * 12 + [{"loss": 2.8, "grad_norm_total": 1.0}]
    assert not classify(calm, rising, 0.5, [3.0] * 13)["stable"]     # a real rise on an ordinary batch
    task = make_task("charlm", 32)
    y = task.batch(0, 5, 8)[1]
    p = task.unigram_probs()
    expected = -sum(math.log(p[t]) for t in y.flatten().tolist()) / y.numel()
    assert batch_unigram_loss(task, y) == pytest.approx(expected)
    cfg = Config(task="charlm", seq_len=32, batch_size=8, seed=0)
    assert batch_baselines(cfg, 6)[5] == batch_unigram_loss(task, y)


@pytest.mark.parametrize("study", ["sweep", "stability"])
def test_a_bad_value_for_the_runs_is_one_line_and_exit_2(study, tmp_path, capsys):
    """The studies build their runs' Config before the first run: a value it refuses is one line on stderr
    and exit 2, no traceback, no folder."""
    import importlib

    main = importlib.import_module(f"reference.lab.studies.{study}").main
    out = tmp_path / "out"
    assert main(["--preset", "tiny" if study == "sweep" else "smoke", "--steps", "0", "--out", str(out),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "steps must be an integer in [1, 100000000], got 0" in err and not out.exists()


def test_sweep_usage_sentence():
    """The report's verdict: losses that differ while H_res is unused are not told apart by mixing; with H_res
    used, mixers differ only where their seed ranges do not overlap, and one seed gives no verdict."""
    from reference.lab.studies.sweep import _usage

    def row(mixer, depth, val, ident, avg, seed=0):
        return {"mixer": mixer, "depth": depth, "val_loss": val, "seed": seed,
                "h_res_ablation": {"identity": ident, "average": avg}}

    unused = [row("mhc", 16, 3.0, 1e-5, 1e-4), row("kromhc", 16, 3.0, 1e-5, 1e-4),
              row("mhc", 1000, 3.2, 1e-5, 1e-4), row("kromhc", 1000, 3.1, 1e-5, 1e-4)]
    text = _usage(unused)
    assert "cannot be told apart" in text and "1.0e-01 at L = 1000" in text and "0.0e+00 at L = 16" in text
    one_seed = [row("mhc", 8, 2.70, 2e-3, 0.3), row("kromhc", 8, 2.94, 1e-2, 0.04)]
    assert "one seed per point" in _usage(one_seed)
    apart = [row(m, 8, v + 0.01 * s, 2e-3, 0.3, s) for m, v in (("mhc", 2.70), ("kromhc", 2.94)) for s in range(3)]
    assert "can be told apart: kromhc vs mhc at L = 8" in _usage(apart)
    overlapping = [row(m, 8, v + 0.05 * s, 2e-3, 0.3, s)
                   for m, v in (("mhc", 2.70), ("kromhc", 2.72)) for s in range(3)]
    assert "within the seed spread" in _usage(overlapping) and "cannot be told apart" in _usage(overlapping)


@pytest.mark.slow
def test_tiny_sweep_end_to_end(tmp_path, monkeypatch):
    """One mixer without ``H_res``, one approximately and one exactly DS (every mixer trains elsewhere in this file)."""
    grid = ["--preset", "tiny", "--out", str(tmp_path), "--no-progress", "--mixers", "residual", "mhc", "kromhc"]
    assert sweep_main([*grid, "--seeds", "2"]) == 0
    results = [json.loads(l) for l in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(results) == len(PRESETS["tiny"]["depths"]) * 3 * 2 and {r["seed"] for r in results} == {0, 1}
    assert (tmp_path / "runs" / "kromhc_L4_s1" / "summary.json").exists()
    for png in ("loss_vs_depth.png", "gain_vs_depth.png", "loss_curves.png"):
        assert (tmp_path / png).stat().st_size > 1000
    report = (tmp_path / "report.md").read_text()
    assert "| mhc |" in report and "| residual |" in report and "certified gain fwd" in report and "(2) |" in report
    # a second sweep reads finished grid points back (no training); more steps continue each run
    import reference.lab.train as train_module

    def no_training(cfg):
        raise AssertionError(f"retrained {cfg.out}")

    monkeypatch.setattr(train_module, "run", no_training)
    assert sweep_main([*grid, "--seeds", "2"]) == 0
    again = [json.loads(l) for l in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert again == results
    with pytest.raises(AssertionError, match="retrained"):
        sweep_main([*grid, "--steps", "7"])
    monkeypatch.undo()
    # other settings in a grid point's folder stop the sweep (exit 2) unless --overwrite
    assert sweep_main(["--preset", "tiny", "--out", str(tmp_path), "--no-progress", "--task", "charlm",
                       "--mixers", "mhc", "--depths", "2"]) == 2
    assert sweep_main(["--preset", "tiny", "--out", str(tmp_path), "--no-progress", "--task", "charlm",
                       "--mixers", "mhc", "--depths", "2", "--overwrite"]) == 0
    assert json.loads((tmp_path / "runs" / "mhc_L2_s0" / "config.json").read_text())["task"] == "charlm"


@pytest.mark.slow
def test_stability_study_end_to_end(tmp_path):
    """The smoke preset: 2 seeds, the searched main grid brackets lr between 0.03 (stable) and 0.95 (not);
    the fixed bf16 / no-norm points; the report, brackets.json and three plots are written."""
    from reference.lab.studies.stability import classify, main as stability_main, spikes

    assert stability_main(["--preset", "smoke", "--out", str(tmp_path), "--no-progress"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    brackets = {(b["grid"], b["mixer"]): b for b in json.loads((tmp_path / "brackets.json").read_text())}
    for mixer in ("residual", "kromhc"):
        b = brackets["main", mixer]["0.5"]
        assert (b["lo"], b["hi"]) == (0.03, 0.9487) and [lr for lr, _ in b["tried"]] == [0.03, 0.9487, 30.0]
    assert {r["grid"] for r in rows} == {"main", "bf16", "no-norm"} and {r["seed"] for r in rows} == {0, 1}
    assert len([r for r in rows if r["grid"] == "main"]) == 2 * 3 * 2                 # mixers x lrs tried x seeds
    assert (tmp_path / "runs" / "kromhc_L2_lr0.01_bfloat16_s0" / "summary.json").exists()
    for png in ("loss_vs_lr.png", "max_stable_lr.png", "gain_over_training.png"):
        assert (tmp_path / png).stat().st_size > 1000
    text = (tmp_path / "report.md").read_text()
    assert "Largest stable learning rate" in text and "[0.03, 0.949)" in text and "ranges do not overlap" in text
    assert "| main | kromhc | 2 | fp32 | 0.03 |" in text and "2/2" in text
    assert "## What sets the upper end of each bracket" in text and "| kromhc | 2 | [0.03, 0.949) |" in text
    assert "## Validation loss at the learning rates every mixer ran" in text and "- main, L = 2 fp32, lr 0.03:" in text
    assert spikes([1.0] * 10 + [1.6, 1.0], lambda v, m: v > m + 0.5) == 1           # one loss spike
    assert spikes([1.0] * 10 + [1.4], lambda v, m: v > m + 0.5) == 0
    calm = {"diverged": False, "val_loss": 1.0, "unigram_loss": 2.0}
    assert classify(calm, [{"loss": 1.0, "grad_norm_total": 1.0}] * 12, 0.5)["stable"]
    spiky = [{"loss": 1.0, "grad_norm_total": 1.0}] * 10 + [{"loss": 1.8, "grad_norm_total": 50.0}]
    assert classify(calm, spiky, 0.5) == {"diverged": False, "loss_spikes": 1, "grad_spikes": 1, "stable": False}
    assert classify(calm, spiky, 1.0)["stable"]                                       # the second threshold


def test_the_stability_study_runs_hcs_causal_arm(tmp_path):
    """--res-bound norm with --mixers hc: a setting only HC takes is checked against the grid's mixers, not
    the base config's default mixer (it used to be refused as 'mixer mhc takes none')."""
    import json

    from reference.lab.studies.stability import main

    out = tmp_path / "arm"
    assert main(["--preset", "smoke", "--grids", "main", "--mixers", "hc", "--res-bound", "norm", "--depths", "2",
                 "--lrs", "0.01", "--seeds", "1", "--steps", "3", "--out", str(out), "--no-progress"]) == 0
    (config,) = [json.loads(p.read_text()) for p in (out / "runs").glob("*/config.json")]
    assert config["mixer"] == "hc" and config["res_bound"] == "norm"
    assert main(["--preset", "smoke", "--res-bound", "norm", "--out", str(tmp_path / "all"), "--no-progress"]) == 2


def test_the_stability_study_runs_the_papers_protocol(tmp_path):
    """--schedule paper brings the schedule's optimiser settings (clip 1.0, weight decay 0.1, beta2 0.95,
    warmup), not the stability grids' constant lr without clipping."""
    import json

    from reference.lab.studies.stability import main

    out = tmp_path / "paper"
    assert main(["--preset", "smoke", "--grids", "main", "--mixers", "kromhc", "--schedule", "paper", "--depths", "2",
                 "--lrs", "0.01", "--seeds", "1", "--steps", "3", "--out", str(out), "--no-progress"]) == 0
    (config,) = [json.loads(p.read_text()) for p in (out / "runs").glob("*/config.json")]
    assert (config["schedule"], config["grad_clip"], config["weight_decay"], config["beta2"], config["warmup"]) == \
        ("paper", 1.0, 0.1, 0.95, 1)


def test_the_stability_study_adds_seeds_from_first_seed(tmp_path):
    """--first-seed 2 --seeds 2 trains seeds 2 and 3 only (seeds added to a point whose first ones ran in
    another folder), and the report names the seeds it holds."""
    import json

    from reference.lab.studies.stability import main

    out = tmp_path / "more"
    assert main(["--preset", "smoke", "--grids", "main", "--mixers", "kromhc", "--depths", "2", "--lrs", "0.01",
                 "--seeds", "2", "--first-seed", "2", "--steps", "3", "--out", str(out), "--no-progress"]) == 0
    seeds = sorted(json.loads(p.read_text())["seed"] for p in (out / "runs").glob("*/config.json"))
    assert seeds == [2, 3] and sorted(p.name for p in (out / "runs").iterdir()) == \
        ["kromhc_L2_lr0.01_s2", "kromhc_L2_lr0.01_s3"]
    assert "seeds 2..3" in (out / "report.md").read_text()
    with pytest.raises(SystemExit) as bad:
        main(["--preset", "smoke", "--first-seed", "-1", "--out", str(out), "--no-progress"])
    assert bad.value.code == 2
