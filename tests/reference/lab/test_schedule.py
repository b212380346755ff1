"""The papers' schedule (mHC-lite's nanoGPT get_lr): warmup, cosine to lr/10, AdamW groups, the CLI defaults."""

import json
import math
from dataclasses import replace

import pytest
import torch

from reference.models import Model, ModelConfig
from reference.lab.runs import Config, read_metrics
from reference.lab.schedule import lr_at, make_optimizer
from reference.lab.train import main as train_main, parse, run

SMALL = ["--mixer", "kromhc", "--depth", "2", "--task", "markov", "--width", "8", "--batch-size", "4",
         "--seq-len", "8", "--eval-batches", "1", "--no-progress"]


def test_lr_at_is_nanogpt_get_lr():
    """mHC-lite's train.py: lr (it + 1) / (warmup + 1) while it < warmup, then cosine to min_lr = lr / 10."""
    lr, steps, warmup = 1e-3, 101, 10
    first = [lr_at("paper", t, steps, lr, warmup) for t in range(3)]
    assert first == pytest.approx([lr / 11, 2 * lr / 11, 3 * lr / 11])
    assert lr_at("paper", warmup, steps, lr, warmup) == pytest.approx(lr)                 # the peak
    assert lr_at("paper", 55, steps, lr, warmup) == pytest.approx(0.55 * lr)             # halfway: (lr + lr/10) / 2
    assert lr_at("paper", steps - 1, steps, lr, warmup) == pytest.approx(lr / 10)        # the last step: min_lr
    rates = [lr_at("paper", t, steps, lr, warmup) for t in range(steps)]
    assert all(a <= b for a, b in zip(rates[:warmup + 1], rates[1:warmup + 1]))
    assert all(a >= b for a, b in zip(rates[warmup:], rates[warmup + 1:]))
    assert {lr_at("constant", t, steps, lr, 0) for t in range(steps)} == {lr}
    assert lr_at("paper", 0, 1, lr, 0) == pytest.approx(lr / 10)                       # one step: no span to decay


def test_weight_decay_only_on_matrices():
    model = Model(ModelConfig(vocab=7, width=8, depth=2, mixer="mhc"))
    opt = make_optimizer(model, 1e-3, 0.1, 0.95)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0 and opt.defaults["betas"] == (0.9, 0.95)
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() < 2 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


def test_paper_schedule_defaults_and_records(tmp_path):
    cfg = parse([*SMALL, "--schedule", "paper", "--steps", "100", "--lr", "0.01"])
    assert (cfg.weight_decay, cfg.grad_clip, cfg.beta2, cfg.warmup) == (0.1, 1.0, 0.95, 2)
    assert parse([*SMALL, "--schedule", "paper", "--weight-decay", "0", "--warmup", "7"]).weight_decay == 0.0
    constant = parse(SMALL)
    assert (constant.weight_decay, constant.grad_clip, constant.beta2, constant.warmup) == (0.0, 1.0, 0.999, 0)
    assert train_main([*SMALL, "--schedule", "paper", "--steps", "12", "--warmup", "3", "--lr", "0.01",
                       "--out", str(tmp_path)]) == 0
    lrs = [r["lr"] for r in read_metrics(tmp_path)]
    assert lrs == pytest.approx([lr_at("paper", t, 12, 0.01, 3) for t in range(12)]) and lrs[-1] == pytest.approx(1e-3)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["schedule"] == "paper" and saved["warmup"] == 3 and saved["beta2"] == 0.95


def test_paper_schedule_resume_keeps_the_trajectory_and_refuses_other_steps(tmp_path, capsys):
    base = Config(mixer="kromhc", depth=2, width=8, steps=10, batch_size=4, seq_len=8, task="markov", eval_batches=1,
                  progress=False, schedule="paper", warmup=2, lr=0.01, ckpt_every=4)
    straight = run(replace(base, out=str(tmp_path / "s")))
    calls = []
    real = torch.optim.AdamW.step

    def stop_at_six(self, *a, **kw):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real(self, *a, **kw)

    torch.optim.AdamW.step = stop_at_six
    try:
        with pytest.raises(KeyboardInterrupt):
            run(replace(base, out=str(tmp_path / "r")))
    finally:
        torch.optim.AdamW.step = real
    resumed = run(replace(base, out=str(tmp_path / "r"), resume=True))
    assert resumed["final_loss"] == straight["final_loss"]
    assert [r["lr"] for r in read_metrics(tmp_path / "r")] == [r["lr"] for r in read_metrics(tmp_path / "s")]
    args = [*SMALL, "--schedule", "paper", "--warmup", "2", "--lr", "0.01", "--out", str(tmp_path / "r"), "--resume"]
    assert train_main([*args, "--steps", "20"]) == 2                   # the cosine depends on --steps
    assert "--steps (10 -> 20)" in capsys.readouterr().err and math.isfinite(resumed["final_loss"])


def test_gpu_preset_mirrors_mhc_lite_small_run():
    """github FFTYYY/mhc-lite config/small_model.py + train_fineweb_edu.py: 6 layers x 512, 8 heads, context 1024,
    lr 1e-3 -> 1e-4, 10 000 iterations, 200 warmup, wd 0.1, beta2 0.95, clip 1.0, bf16; 3 seeds, every mixer."""
    from reference.lab.studies.sweep import PRESETS

    gpu = PRESETS["gpu"]
    cfg = gpu["base"]
    assert gpu["depths"] == [6] and gpu["seeds"] == 3
    assert (cfg.width, cfg.heads, cfg.seq_len, cfg.kind) == (512, 8, 1024, "transformer")
    assert (cfg.lr, cfg.steps, cfg.warmup, cfg.schedule) == (1e-3, 10_000, 200, "paper")
    assert (cfg.weight_decay, cfg.beta2, cfg.grad_clip, cfg.dtype) == (0.1, 0.95, 1.0, "bfloat16")
    assert lr_at(cfg.schedule, cfg.steps - 1, cfg.steps, cfg.lr, cfg.warmup) == pytest.approx(1e-4)
    smoke = PRESETS["gpu-smoke"]["base"]
    assert smoke.steps == 40 and smoke.warmup == 1 and smoke.schedule == "paper"     # warmup follows the length
    assert Config(schedule="paper", steps=1000).with_steps(50).warmup == 1
    assert Config(schedule="paper", steps=1000, warmup=7).with_steps(50).warmup == 7


def test_mixer_lr_scale_gives_the_mixers_their_own_groups_and_none_at_one(tmp_path):
    """--mixer-lr-scale k: the mixers' parameters in groups of their own at k times every step's lr; at 1
    the two nanoGPT groups exactly as before (old runs resume unchanged)."""
    from reference.lab.data import make_task
    from reference.lab.train import build
    from reference.mixers import Mixer

    cfg = Config(mixer="kromhc", depth=2, width=8, steps=3, batch_size=4, seq_len=8, task="markov", eval_batches=1,
                 progress=False, lr=0.01)
    model = build(cfg, make_task("markov", 8).vocab, torch.device("cpu"))
    plain = make_optimizer(model, 0.01, 0.0, 0.999)
    assert len(plain.param_groups) == 2 and all("lr_scale" not in g for g in plain.param_groups)
    assert [id(p) for g in plain.param_groups for p in g["params"]] == \
        [id(p) for g in make_optimizer(model, 0.01, 0.0, 0.999, 1.0).param_groups for p in g["params"]]
    scaled = make_optimizer(model, 0.01, 0.0, 0.999, 10.0)
    mixing = {id(p) for m in model.modules() if isinstance(m, Mixer) for p in m.parameters()}
    for g in scaled.param_groups:
        assert all((id(p) in mixing) == ("lr_scale" in g) for p in g["params"])
    run(replace(cfg, mixer_lr_scale=10.0, out=str(tmp_path / "r")))
    assert {r["lr"] for r in read_metrics(tmp_path / "r")} == {0.01}          # the record keeps the schedule's lr
    with pytest.raises(ValueError, match="mixer_lr_scale"):
        Config(mixer_lr_scale=0.0)
