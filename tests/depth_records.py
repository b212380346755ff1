"""Synthetic run records for the tests of DEPTH.md's tables, verdicts and figures."""

from reference.lab.studies.evidence import Evidence
from reference.lab.studies.records import RECORD_VERSION, write_records

STEPS, UNIGRAM = 40, 3.3


def fake(mixer, depth, lr, seed, *, outcome="stable", learn_at=10, gain=1.0, res_bound="none", kind="transformer",
         ident=0.0, val=2.9):
    """A record whose per-step loss falls from the unigram loss to ``val`` at step ``learn_at``;
    ``outcome`` "spiked" adds a 2-nat step, "diverged" marks it diverged, "flat" never learns."""
    loss = [UNIGRAM + 0.2 if t < learn_at or outcome == "flat" else val for t in range(STEPS)]
    if outcome == "spiked":
        loss[30] += 2.0
    diverged = outcome == "diverged"
    return {
        "record": RECORD_VERSION, "run": f"{mixer}_{res_bound}_{kind}_L{depth}_lr{lr}_s{seed}",
        "settings": {"mixer": mixer, "depth": depth, "lr": lr, "seed": seed, "res_bound": res_bound, "steps": STEPS,
                     "schedule": "constant", "kind": kind, "width": 16, "batch_size": 8, "seq_len": 32,
                     "mixer_lr_scale": 1.0},
        "diverged": diverged, "divergence": None, "final_loss": loss[-1],
        "val_loss": None if diverged else (UNIGRAM + 0.1 if outcome == "flat" else val), "unigram_loss": UNIGRAM,
        "gain_forward": gain, "gain_backward": gain, "max_gain_forward": gain, "max_gain_backward": gain,
        "ds_residual": 0.0, "h_res_off_identity": 0.01, "stream_spread": 0.3,
        "h_res_ablation": {"identity": ident, "average": ident + 0.01}, "params": 1000,
        "mixing_params_per_layer": 10, "steps_run": STEPS, "stride": 1, "train_seconds": 36.0,
        "series": {"loss": loss, "unigram": [UNIGRAM] * STEPS, "grad_norm_total": [1.0] * STEPS,
                   "gain_forward": [1.0] + [gain] * (STEPS - 1), "gain_backward": [1.0] + [gain] * (STEPS - 1)},
    }


def evidence(tmp_path, **files) -> Evidence:
    for name, records in files.items():
        write_records(tmp_path / f"{name}.jsonl", records)
    return Evidence(tmp_path)


def seeds(mixer, depth, lr, outcomes, **kw):
    return [fake(mixer, depth, lr, s, outcome=o, **kw) for s, o in enumerate(outcomes)]
