"""INT8 quantization (reference.lab.quantization), the recall task, and the BE-HC study CLI end to end."""

import json
import runpy
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch

from reference.lab.data import IGNORE, Recall
from reference.models import Model, ModelConfig
from reference.lab.quantization import MixingRounding, exact_composite_gains, int8_symmetric, quantized
from reference.tap import HResProbe, Tap


def test_recall_task():
    task = Recall(64)
    x, y = task.batch(0, 3, 32)
    assert x.shape == y.shape == (32, 64)
    is_class = x < task.classes
    assert (is_class.sum(1) == 1).all()                                    # one class symbol
    pos = is_class.int().argmax(1)
    assert (pos < 32).all()                                                # in the first half
    assert (y[:, :-1] == IGNORE).all()
    assert (y[:, -1] == x[torch.arange(32), pos]).all()
    assert torch.equal(task.batch(0, 3, 32)[0], x) and not torch.equal(task.batch(0, 4, 32)[0], x)
    with pytest.raises(ValueError):
        Recall(1)


def test_int8_symmetric():
    W = torch.randn(5, 33, dtype=torch.float64)
    Wq = int8_symmetric(W)
    s = W.abs().amax(-1, keepdim=True) / 127
    assert ((Wq - W).abs() <= s / 2 + 1e-15).all()
    assert torch.allclose(Wq / s, torch.round(Wq / s), atol=1e-9)          # integers times s
    assert (int8_symmetric(torch.zeros(2, 3)) == 0).all()
    T = int8_symmetric(W, per_tensor=True)
    assert ((T - W).abs() <= W.abs().max() / 254 + 1e-15).all()
    assert len(torch.unique(torch.round(T / (W.abs().max() / 127)))) <= 255


def _stream_model():
    torch.manual_seed(0)
    return Model(ModelConfig(vocab=10, width=8, depth=6, mixer="behc", kind="tokenmix", max_len=16)).double()


def test_quantized_restores_and_rounds_mixing_exactly():
    model = _stream_model()
    idx = torch.randint(0, 10, (2, 16))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ref = model(idx)
    rounding = MixingRounding(stream_mixing="ds", token_mixing="ds")

    class Seen(Tap):                                  # what the mixers and blocks actually use
        def __init__(self):
            self.h, self.w = HResProbe(tokens=10 ** 6), []

        def h_res(self, mixer, H):
            return self.h.h_res(mixer, rounding.h_res(mixer, H))

        def token_weights(self, block, w):
            self.w.append(rounding.token_weights(block, w))
            return self.w[-1]

    seen = Seen()
    with quantized(model, weights=True, activations=True):
        out = model(idx, tap=seen)
    assert len(seen.w) == 6
    for w in seen.w:
        w = w.double() * 127
        assert torch.equal(w, torch.round(w)) and (w.sum(0) == 127).all()   # exact margins
    H = seen.h.chain * 127
    assert H.shape[0] == 12 and torch.allclose(H, torch.round(H), atol=1e-9)
    Q = torch.round(H).long()
    assert (Q.sum(-1) == 127).all() and (Q.sum(-2) == 127).all()
    assert len(rounding.probe) == 12 and rounding.seen == 12 * 2 * 16
    assert not torch.equal(out, ref)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    torch.testing.assert_close(model(idx), ref)                         # weights restored, hooks removed


def test_ds_rounding_keeps_exact_gain_naive_does_not():
    H = torch.tensor([[0.99, 0.01 / 3, 0.01 / 3, 0.01 / 3]])
    H = torch.stack([H.roll(k, dims=1)[0] for k in range(4)])             # circulant, DS
    ds, naive = MixingRounding(stream_mixing="ds"), MixingRounding(stream_mixing="naive")
    ds.h_res(None, H[None])
    naive.h_res(None, H[None])
    assert exact_composite_gains([ds.probe[0]] * 1000) == (1.0, 1.0)
    assert (naive.probe[0] == np.diag([126] * 4)).all()                 # 0.42 rounds to 0
    fwd, bwd = exact_composite_gains([naive.probe[0]] * 1000)
    assert fwd == bwd == float(Fraction(126, 127) ** 1000)
    off = MixingRounding(stream_mixing="ds")                # SK_20-like: rows off by 1e-3
    Q = off.h_res(None, torch.tensor([[[0.7, 0.301], [0.3, 0.699]]], dtype=torch.float64))[0] * 127
    assert torch.equal(Q.round().sum(0), torch.full((2,), 127.0)) and torch.equal(Q.round().sum(1), Q.round().sum(0))
    assert off.rebalanced == off.seen == 1 and ds.rebalanced == 0 and off.max_residual == pytest.approx(1e-3)
    with pytest.raises(ValueError):
        MixingRounding(stream_mixing="int4")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")    # runpy, the module already imported
def test_study_cli_end_to_end(tmp_path, capsys, monkeypatch):
    """The study's command line, in process (the last call runs its ``__main__`` as ``python -m`` would)."""
    from reference.lab.studies.behc import main as behc_main
    from reference.lab.studies.sweep import main as sweep_main

    out = tmp_path / "study"
    assert behc_main(["tokens", "--tasks", "recall", "--lengths", "16", "--steps", "2", "--width", "8", "--depth", "2",
                      "--batch-size", "4", "--eval-batches", "1", "--out", str(out), "--no-progress"]) == 0
    rows = [json.loads(ln) for ln in (out / "tokens.jsonl").read_text().splitlines()]
    assert {(row["model"], row["mode"]) for row in rows} == {
        ("tokenmix", m) for m in ("float", "W8", "W8A8", "W8A8 per-tensor", "W8 + DS mix", "W8 + naive mix",
                                  "W8A8 + DS mix", "W8A8 per-tensor + DS mix")
    } | {("transformer", m) for m in ("float", "W8", "W8A8", "W8A8 per-tensor")}
    for name in ("tokens.md", "quality_vs_N.png", "retention_tokens.png"):
        assert (out / name).stat().st_size > 0
    sweep = tmp_path / "sweep"
    assert sweep_main(["--preset", "tiny", "--mixers", "hc", "kromhc", "--out", str(sweep), "--no-progress"]) == 0
    assert behc_main(["streams", "--runs", str(sweep / "runs"), "--mixers", "hc", "kromhc", "--eval-batches", "1",
                      "--out", str(out)]) == 0
    rows = [json.loads(ln) for ln in (out / "streams.jsonl").read_text().splitlines()]
    ds = [row for row in rows if "DS" in row["mode"]]
    assert {row["mixer"] for row in ds} == {"kromhc"}                       # HC is not DS
    assert all(row["gain_forward"] == row["gain_backward"] == 1.0 for row in ds)
    assert (out / "retention_streams.png").stat().st_size > 0
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["behc", "streams", "--runs", str(tmp_path), "--mixers", "mhc", "--out", str(out)])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("reference.lab.studies.behc", run_name="__main__", alter_sys=True)
    assert exit_.value.code == 2 and "error" in capsys.readouterr().err
