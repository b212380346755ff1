"""Compact run records (the raw evidence committed under docs/depth/): what they keep, byte-stable."""

import json
from dataclasses import replace

import pytest

from reference.lab.runs import read_metrics
from reference.lab.studies import records as R
from reference.lab.train import Config, run

TINY = Config(mixer="mhc", depth=2, width=8, n_streams=4, steps=6, batch_size=4, seq_len=8, task="markov",
              eval_batches=1, progress=False,
              plots=False)     # curves.png: the CLI tests draw it


def test_records_keep_settings_outcome_and_series_and_are_byte_stable(tmp_path):
    for seed in (0, 1):
        run(replace(TINY, seed=seed, out=str(tmp_path / "runs" / f"mhc_s{seed}")))
    run(replace(TINY, seed=2, lr=1e30, steps=1, out=str(tmp_path / "runs" / "blown")))   # a divergence
    (tmp_path / "runs" / "unfinished").mkdir()
    (tmp_path / "runs" / "unfinished" / "metrics.jsonl").write_text("")
    out = tmp_path / "records.jsonl"
    assert R.main([str(tmp_path / "runs"), "--out", str(out)]) == 0
    first = out.read_bytes()
    assert R.main([str(tmp_path / "runs"), "--out", str(out)]) == 0 and out.read_bytes() == first
    recs = {r["run"]: r for r in R.read_records(out)}
    assert sorted(recs) == ["blown", "mhc_s0", "mhc_s1"]                # the unfinished folder has no record
    r = recs["mhc_s1"]
    assert r["settings"]["seed"] == 1 and r["settings"]["mixer"] == "mhc" and "out" not in r["settings"]
    assert not r["diverged"] and r["steps_run"] == 6 and r["stride"] == 1
    losses = [m["loss"] for m in read_metrics(tmp_path / "runs" / "mhc_s1")]
    assert r["series"]["loss"] == [float(f"{x:.6g}") for x in losses]
    seconds = sum(TINY.batch_size * TINY.seq_len / m["tokens_per_s"] for m in read_metrics(tmp_path / "runs" / "mhc_s1"))
    assert r["train_seconds"] == float(f"{seconds:.3g}") and r["train_seconds"] > 0     # the page's CPU time
    from reference.lab.runs import read_config
    from reference.lab.studies.stability import batch_baselines

    unigram = batch_baselines(read_config(tmp_path / "runs" / "mhc_s1"), 6)
    assert r["series"]["unigram"] == [float(f"{x:.6g}") for x in unigram]      # the excess loss's inputs
    assert set(r["h_res_ablation"]) == {"identity", "average"} and r["val_loss"] is not None
    assert recs["blown"]["diverged"] and recs["blown"]["divergence"]["step"] in (0, 1)
    for line in first.decode().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))


def test_long_series_are_strided_and_bad_files_refused(tmp_path):
    run(replace(TINY, steps=12, out=str(tmp_path / "r")))
    R.MAX_POINTS, saved = 5, R.MAX_POINTS
    try:
        rec = R.compact(tmp_path / "r")
    finally:
        R.MAX_POINTS = saved
    assert rec["stride"] == 3 and len(rec["series"]["loss"]) == 4
    with pytest.raises(ValueError, match="share a run name"):
        R.write_records(tmp_path / "x.jsonl", [rec, rec])
    (tmp_path / "old.jsonl").write_text(json.dumps({**rec, "record": 0}) + "\n")
    with pytest.raises(ValueError, match="another version"):
        R.read_records(tmp_path / "old.jsonl")


def test_seeds_added_to_a_committed_records_file(tmp_path, capsys):
    for seed in (0, 1):
        run(replace(TINY, seed=seed, out=str(tmp_path / "first" / f"mhc_s{seed}")))
    run(replace(TINY, seed=2, out=str(tmp_path / "more" / "mhc_s2")))
    committed, merged = tmp_path / "committed.jsonl", tmp_path / "merged.jsonl"
    assert R.main([str(tmp_path / "first"), "--out", str(committed)]) == 0
    assert R.main([str(committed), str(tmp_path / "more"), "--out", str(merged)]) == 0
    assert R.main([str(tmp_path / "first"), str(tmp_path / "more"), "--out", str(tmp_path / "all.jsonl")]) == 0
    assert merged.read_bytes() == (tmp_path / "all.jsonl").read_bytes()      # the committed records kept as they are
    assert [r["run"] for r in R.read_records(merged)] == ["mhc_s0", "mhc_s1", "mhc_s2"]
    capsys.readouterr()
    assert R.main([str(committed), str(tmp_path / "first"), "--out", str(tmp_path / "twice.jsonl")]) == 2
    assert "share a run name" in capsys.readouterr().err and not (tmp_path / "twice.jsonl").exists()
    assert R.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "none.jsonl")]) == 2
    assert "no such runs folder" in capsys.readouterr().err
