"""The studies' statistics: seed aggregation, the "differs only beyond the spread" rule, the 2/3 majority,
and the learning-rate bracket on synthetic stability functions."""

import math

import pytest
from hypothesis import given, strategies as st

from reference.studies.brackets import bracket, round_lr
from reference.studies.seeds import differs, fmt_spread, majority, spread


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
    from reference.data import batch_unigram_loss, make_task
    from reference.runs import Config
    from reference.studies.stability import batch_baselines, classify

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

    main = importlib.import_module(f"reference.studies.{study}").main
    out = tmp_path / "out"
    assert main(["--preset", "tiny" if study == "sweep" else "smoke", "--steps", "0", "--out", str(out),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "steps must be an integer >= 1, got 0" in err and not out.exists()
