"""The drop-in module on a user's own model (not the project's Model), and the health monitor."""

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from reference.hyper import HyperConnected, expand_streams, load_plain_state_dict, monitor, stream_functions
from reference.mixers import Mixer, stream_mixers
from reference.tap import HResProbe

C, N = 16, 4


class Attention(nn.Module):
    """A user's own attention block: takes a mask and returns (output, attention weights)."""

    def __init__(self, C: int, heads: int = 2) -> None:
        super().__init__()
        self.heads, self.norm, self.qkv, self.out = heads, nn.LayerNorm(C), nn.Linear(C, 3 * C), nn.Linear(C, C)

    def forward(self, x, mask=None, scale: float = 1.0):
        B, T, _ = x.shape
        q, k, v = (t.view(B, T, self.heads, -1).transpose(1, 2) for t in self.qkv(self.norm(x)).chunk(3, dim=-1))
        att = (q @ k.transpose(-1, -2)) * scale / (q.shape[-1] ** 0.5)
        if mask is not None:
            att = att.masked_fill(~mask, float("-inf"))
        w = att.softmax(-1)
        return self.out((w @ v).transpose(1, 2).reshape(B, T, -1)), w


class MLP(nn.Module):
    def __init__(self, C: int) -> None:
        super().__init__()
        self.norm, self.up, self.down = nn.LayerNorm(C), nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x):
        return self.down(F.gelu(self.up(self.norm(x))))


class UserGPT(nn.Module):
    """A small GPT written the way a user writes one; ``hyper`` wraps its sublayers."""

    def __init__(self, vocab: int = 32, depth: int = 3, mixer: str | None = None, disable: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, C)
        self.attn = nn.ModuleList(Attention(C) for _ in range(depth))
        self.mlp = nn.ModuleList(MLP(C) for _ in range(depth))
        self.head = nn.Linear(C, vocab)
        self.mixer = mixer
        if mixer is not None:
            init, self.expand, self.reduce = stream_functions(mixer, N, C, disable=disable)
            self.attn = nn.ModuleList(init(branch=b, layer_index=2 * i, dim=C) for i, b in enumerate(self.attn))
            self.mlp = nn.ModuleList(init(b, 2 * i + 1) for i, b in enumerate(self.mlp))

    def forward(self, idx):
        T = idx.shape[-1]
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        h = self.embed(idx)
        if self.mixer is None:
            for attn, mlp in zip(self.attn, self.mlp):
                h = h + attn(h, mask, scale=1.0)[0]
                h = h + mlp(h)
            return self.head(h)
        x = self.expand(h)
        for attn, mlp in zip(self.attn, self.mlp):
            x, _weights = attn(x, mask, scale=1.0)          # extra arguments in, a tuple out
            x = mlp(x)
        return self.head(self.reduce(x))


def train(model: nn.Module, steps: int = 5) -> list[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, 32, (4, 12), generator=g)
        loss = F.cross_entropy(model(idx[:, :-1]).flatten(0, 1), idx[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("mixer", ["mhc", "kromhc", "behc", "hc"])
def test_a_users_model_wraps_trains_and_is_monitored(mixer):
    torch.manual_seed(0)
    model = UserGPT(mixer=mixer)
    losses = train(model)
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    health = monitor(model, torch.randint(0, 32, (2, 10)))
    assert len(health.layers) == 6 and all(h.h_res_applied for h in health.layers)
    assert health.layers[-1].certified_forward is not None and health.certificate["depth"] == 6
    assert "H_res not applied" not in " ".join(health.flags) and model.training        # mode restored


def test_disable_is_the_plain_model_to_the_bit_and_loads_its_checkpoint():
    torch.manual_seed(0)
    plain = UserGPT()
    torch.manual_seed(1)
    disabled = UserGPT(mixer="mhc", disable=True)
    assert list(disabled.state_dict()) == list(plain.state_dict())        # the plain names, no "layer."
    disabled.load_state_dict(plain.state_dict())
    idx = torch.randint(0, 32, (3, 9))
    assert torch.equal(disabled(idx), plain(idx))
    torch.manual_seed(0)                                                  # and it trains like the plain one
    a, b = UserGPT(), UserGPT(mixer="kromhc", disable=True)
    b.load_state_dict(a.state_dict())
    assert train(a, 3) == train(b, 3)


def test_a_hyper_connected_model_starts_from_a_plain_checkpoint():
    plain = UserGPT()
    wrapped = UserGPT(mixer="kromhc")
    at_init = {k: v.clone() for k, v in wrapped.state_dict().items() if ".mixer." in k}
    left = load_plain_state_dict(wrapped, plain.state_dict())
    assert sorted(left) == sorted(at_init)
    for key, value in plain.state_dict().items():          # attn.0.norm.weight -> attn.0.layer.norm.weight
        parts = key.split(".")
        wrapped_key = key if parts[0] in ("embed", "head") else ".".join(parts[:2] + ["layer"] + parts[2:])
        assert torch.equal(wrapped.state_dict()[wrapped_key], value)
    assert all(torch.equal(wrapped.state_dict()[k], v) for k, v in at_init.items())
    with pytest.raises(ValueError, match="does not fit"):
        load_plain_state_dict(wrapped, {**plain.state_dict(), "extra.weight": torch.ones(1)})


def test_shapes_are_checked_with_the_expected_shape_named():
    wrapped = HyperConnected(MLP(C), "mhc", N, C)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4, 16\).*expand_streams"):
        wrapped(torch.randn(2, 5, C))                                     # forgot to expand
    with pytest.raises(ValueError, match=r"\(\.\.\., 4, 16\), got \(2, 4, 8\)"):
        wrapped(torch.randn(2, N, 8))                                     # the wrong width
    with pytest.raises(ValueError, match="width"):
        HyperConnected(MLP(C), "mhc", N)
    init, _, _ = stream_functions("mhc", N, C)
    with pytest.raises(TypeError, match="once"):
        init(MLP(C), branch=MLP(C))


def test_monitor_reports_a_model_without_active_mixers():
    """No ValueError: a loop that toggles ``disable`` keeps running, and the report says why it is empty."""
    plain = monitor(nn.Linear(4, 4), torch.randn(2, 4))
    assert plain.ok and plain.layers == [] and plain.notes == ["no hyper-connected layer: nothing to check"]
    off = nn.Sequential(HyperConnected(nn.Linear(16, 16), "mhc", 4, 16, disable=True))
    report = monitor(off, torch.randn(2, 16))
    assert report.ok and "all disabled" in report.notes[0] and "all disabled" in str(report)
    assert report.to_dict()["notes"] == report.notes


@pytest.mark.parametrize("mixer", ["hc", "mhc", "mhc_lite", "kromhc", "behc"])
def test_monitor_raises_no_flag_on_a_fresh_model(mixer):
    C, n = 16, 4
    stack = nn.Sequential(*(HyperConnected(nn.Sequential(nn.LayerNorm(C), nn.Linear(C, C)), mixer, n, C, layer_index=i)
                            for i in range(4)))
    health = monitor(stack, expand_streams(torch.randn(2, 5, C), n))
    assert health.ok, health.flags


def test_monitor_flags_h_res_not_applied_and_stuck_at_identity(monkeypatch):
    model = UserGPT(mixer="mhc")
    fresh = monitor(model, torch.randint(0, 32, (2, 10)))
    assert fresh.ok and any(n.startswith("at init") for n in fresh.notes)      # the reference init: H_res ~ I
    assert all(layer.at_init for layer in fresh.layers)
    with torch.no_grad():                                                       # moved parameters, H_res still ~ I
        next(m for m in model.modules() if hasattr(m, "b_res")).b_pre.add_(0.1)
    moved = monitor(model, torch.randint(0, 32, (2, 10)))
    assert any("stuck at the identity" in f for f in moved.flags) and not moved.notes
    train(model, 30)
    with torch.no_grad():                                                       # a trained, mixing H_res
        for m in model.modules():
            if hasattr(m, "b_res"):
                m.b_res.zero_()
    assert not any("stuck" in f for f in monitor(model, torch.randint(0, 32, (2, 10))).flags)

    def ignores_h_res(self, x, block, tap=None):                              # the peers' bug, injected
        H_pre, H_post, H_res = self.coefficients(x)
        if tap is not None:
            H_res = tap.h_res(self, H_res)
        out = self.ops.hc_post_res(x, block(self.ops.hc_pre(x, H_pre)), torch.eye(x.shape[-2]).expand_as(H_res),
                                   H_post)
        if tap is not None:
            tap.streams(self, out)
        return out

    monkeypatch.setattr(Mixer, "forward", ignores_h_res)
    health = monitor(model, torch.randint(0, 32, (2, 10)))
    assert not health.ok and any("H_res not applied" in f for f in health.flags)
    assert all(h.h_res_applied is False for h in health.layers)
    from reference import Monitor

    idx = torch.randint(0, 32, (2, 11))                 # the training hook reads it from the backward pass
    with Monitor(model).observe(0) as seen:
        F.cross_entropy(model(idx[:, :-1]).flatten(0, 1), idx[:, 1:].flatten()).backward()
    assert any("H_res not applied" in f for f in seen.health.flags)
    assert all(h.h_res_applied is False for h in seen.health.layers)
    with Monitor(model).observe(0) as forward_only:     # no backward pass: unknown, not flagged
        model(idx[:, :-1])
    assert all(h.h_res_applied is None for h in forward_only.health.layers)
    assert not any("H_res not applied" in f for f in forward_only.health.flags)


def test_monitor_flags_gain_growth_and_non_finite_values():
    model = UserGPT(mixer="hc", depth=6)
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "A_r"):
                m.A_r.mul_(1.6)                                                  # unconstrained H_res, growing
    health = monitor(model, torch.randint(0, 32, (2, 10)))
    assert any("composite forward gain" in f for f in health.flags)
    assert any("activation growth" in f for f in health.flags)
    with torch.no_grad():
        model.attn[2].layer.out.bias.fill_(float("inf"))
    assert any("non-finite" in f for f in monitor(model, torch.randint(0, 32, (2, 10))).flags)
    assert "FLAGS" in str(health) and health.to_dict()["ok"] is False


@pytest.mark.parametrize("mixer", ["mhc", "mhc_lite", "kromhc", "behc"])
def test_sinkhorn_and_mixtures_run_in_fp32_inside_bf16_autocast(mixer):
    from reference.mixers import make_mixer

    m = make_mixer(mixer, N, C)
    with torch.no_grad():
        m.phi.normal_(generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, N, C)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, _, H = m.coefficients(x)
    exact_axis = -2 if mixer == "mhc" else None                   # SK_20 ends on rows; its columns converge
    assert H.dtype == torch.float32
    assert (H.sum(-1) - 1).abs().max() < 1e-6
    if exact_axis is None:
        assert (H.sum(-2) - 1).abs().max() < 1e-6


def test_a_users_gpu_py_does_not_shadow_the_package(tmp_path):
    (tmp_path / "gpu.py").write_text("VALUE = 42\n")
    (tmp_path / "use.py").write_text(textwrap.dedent("""
        import torch
        from reference.hyper import HyperConnected, expand_streams
        layer = HyperConnected(torch.nn.Linear(8, 8), "kromhc", 4, 8)
        print(tuple(layer(expand_streams(torch.randn(2, 8), 4)).shape))
        import gpu
        print(gpu.VALUE)
    """))
    out = subprocess.run([sys.executable, "use.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["(2,", "4,", "8)", "42"]


def test_a_kernel_limit_is_refused_when_the_model_is_built():
    """The Triton kernels handle at most 16 streams: asking for more fails at construction, with the
    limit in the message, not at the first forward pass; the torch backend has no such limit."""
    from reference.mixers import make_mixer
    from reference.models import Model, ModelConfig

    with pytest.raises(ValueError, match="at most 16 streams, got n_streams = 17"):
        Model(ModelConfig(vocab=10, width=8, depth=1, mixer="mhc", n_streams=17, backend="triton"))
    assert make_mixer("mhc", 17, 8) is not None
    assert make_mixer("residual", 17, 8, backend="triton") is not None          # runs on one stream


def test_the_drop_in_checks_its_mixer_settings_where_a_config_does():
    """``HyperConnected``, ``make_mixer`` and a configuration run the one check, ``MixerSpec``'s: a bad
    stream count or option is the same ``ValueError`` whichever way in."""
    from reference import ModelConfig, make_mixer

    for bad, message in ((dict(n_streams=0), "n_streams must be an integer >= 1, got 0"),
                         (dict(n_streams=2.5), "n_streams must be an integer"),
                         (dict(init="zeros"), "unknown init"), (dict(mixer="nope"), "unknown mixer 'nope'"),
                         (dict(mixer_norm="layer"), "unknown mixer_norm")):
        with pytest.raises(ValueError, match=message):
            HyperConnected(nn.Linear(8, 8), **{"mixer": "mhc", "n_streams": 4, **bad}, C=8)
        with pytest.raises(ValueError, match=message):
            ModelConfig(vocab=8, **bad)
        with pytest.raises(ValueError, match=message):
            make_mixer(**{"name": "mhc", "n_streams": 4, **{"name" if k == "mixer" else k: v for k, v in bad.items()}},
                       C=8)


def test_the_stream_count_is_checked_once_from_the_command_line_to_the_mixers(monkeypatch):
    """``--streams`` is ``n_streams`` from the parser down: the run's ``Config``, a ``MixerSpec``, checks it
    (with every other mixer setting and the kernel limit) once, when it is made; the model's config, the
    model, its ``HyperConnected`` wrappers and their mixers take it as checked."""
    from reference.lab.train import parse
    from reference.mixers import MixerSpec
    from reference.models import Model, ModelConfig

    made = []
    check = MixerSpec.__post_init__
    monkeypatch.setattr(MixerSpec, "__post_init__", lambda self: (made.append(self), check(self))[1])
    cfg = parse(["--mixer", "kromhc", "--streams", "8", "--depth", "3", "--width", "8", "--model", "transformer"])
    model_config = cfg.model_config(vocab=11)
    model = Model(model_config)
    ours = [spec for spec in made if spec.mixer == "kromhc"]      # the others: the parser's defaults
    assert len(ours) == 1 and ours[0] is cfg and cfg.n_streams == 8
    assert model_config == ModelConfig(vocab=11, max_len=cfg.seq_len, **cfg.architecture())    # the same value
    assert len(model.mixers()) == 6 and {m.n_streams for m in model.mixers()} == {8}
    with pytest.raises(ValueError, match="vocab must be an integer >= 1"):
        cfg.model_config(vocab=0)


def test_the_kernel_limit_is_a_setting_checked_when_the_config_is_made():
    from reference.lab.runs import Config

    with pytest.raises(ValueError, match="backend 'triton' handles at most 16 streams, got n_streams = 17"):
        Config(mixer="mhc", n_streams=17, backend="triton")
    assert Config(mixer="rezero", n_streams=17, backend="triton").streams == 1


def test_a_spec_is_passed_once():
    """``HyperConnected(layer, spec, ...)`` takes the spec's settings; giving one of them again, differently,
    is a ``TypeError`` (the same value is accepted)."""
    from reference.mixers import MixerSpec

    spec = MixerSpec(mixer="behc", n_streams=3)
    hc = HyperConnected(nn.Linear(8, 8), spec, C=8, layer_index=2)
    assert (hc.n_streams, hc.mixer.name) == (3, "behc")
    assert HyperConnected(nn.Linear(8, 8), spec, 3, C=8).n_streams == 3
    with pytest.raises(TypeError, match="pass the mixer's settings once.*n_streams"):
        HyperConnected(nn.Linear(8, 8), spec, 5, C=8)
    with pytest.raises(TypeError, match="init"):
        HyperConnected(nn.Linear(8, 8), spec, C=8, init="symmetric")


def test_every_default_of_a_mixer_option_is_the_first_option():
    """One place per value: the option tuples' first entries are the defaults of every signature that
    offers one (the drop-in, the factory, the check, the configurations)."""
    import inspect
    from dataclasses import fields

    from reference import Architecture, make_mixer, stream_functions
    from reference._gpu import BACKENDS
    from reference.mixers import FAVOURED, INITS, MIXER_NORMS, SK_ORDERS, mixing_params
    from reference.models import KINDS
    from reference.norms import NORMS

    first = {"init": INITS[0], "sk_order": SK_ORDERS[0], "favoured": FAVOURED[0], "mixer_norm": MIXER_NORMS[0],
             "backend": BACKENDS[0], "norm": NORMS[0], "kind": KINDS[0]}
    seen = 0
    for f in (HyperConnected.__init__, make_mixer, stream_functions, mixing_params):
        for name, p in inspect.signature(f).parameters.items():
            if name in first and p.default is not inspect.Parameter.empty:
                assert p.default == first[name], (f.__qualname__, name)
                seen += 1
    for f in fields(Architecture):          # the MixerSpec fields included
        if f.name in first:
            assert f.default == first[f.name], f.name
            seen += 1
    assert seen >= 20


@pytest.mark.parametrize("name", stream_mixers())
def test_drop_in_module_wraps_any_layer(name):
    """HyperConnected(layer, mixer, n, C) around a plain nn.Module equals the mixer applied to it."""
    from reference.hyper import HyperConnected, expand_streams, reduce_streams, stream_functions

    torch.manual_seed(0)
    layer = torch.nn.Sequential(torch.nn.LayerNorm(8), torch.nn.Linear(8, 8))
    wrapped = HyperConnected(layer, name, 4, 8, layer_index=3)
    x = expand_streams(torch.randn(2, 5, 8), 4)
    assert x.shape == (2, 5, 4, 8) and torch.equal(reduce_streams(x), 4 * x[..., 0, :])
    probe = HResProbe()
    y = wrapped(x, tap=probe)
    H_pre, H_post, H_res = wrapped.mixer.coefficients(x)
    expected = torch.einsum("...ij,...jc->...ic", H_res, x) + H_post[..., None] * layer(
        torch.einsum("...n,...nc->...c", H_pre, x))[..., None, :]
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(probe.chain[0], H_res.reshape(-1, 4, 4)[:8].double())
    init, expand, reduce = stream_functions(name, 4, 8)
    same = init(layer, 3)
    same.load_state_dict(wrapped.state_dict())
    h = torch.randn(2, 5, 8)
    torch.testing.assert_close(same(expand(h)), wrapped(expand_streams(h, 4)))
    assert reduce(same(expand(h))).shape == (2, 5, 8)


def test_a_single_stream_mixer_in_a_stream_model_says_what_to_do():
    C = 16
    x = expand_streams(torch.randn(2, 3, C), 4)
    for mixer in ("residual", "rezero"):
        with pytest.raises(ValueError, match=f"'{mixer}' is a single-stream mixer and this input has 4 streams; "
                                             "use a stream mixer"):
            HyperConnected(nn.Linear(C, C), mixer, 4, C)(x)


def test_a_layer_that_changes_the_width_is_named_with_the_shapes():
    C = 16
    with pytest.raises(ValueError, match=r"wrapped layer Linear must return its input's shape \(2, 3, 16\) "
                                         r"\(width C = 16\), got \(2, 3, 8\)"):
        HyperConnected(nn.Linear(C, 8), "mhc", 4, C)(expand_streams(torch.randn(2, 3, C), 4))


def test_monitor_hook_logs_every_k_steps(tmp_path):
    """``Monitor(model, out, every=k)``: a health report on every k-th step, None between; the scalars in
    ``health.csv`` and in TensorBoard events."""
    from reference import Monitor

    C, n = 16, 4
    model = nn.Sequential(*(HyperConnected(nn.Sequential(nn.LayerNorm(C), nn.Linear(C, C)), "mhc", n, C, layer_index=i)
                            for i in range(3)))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    hook = Monitor(model, tmp_path, every=2)
    reports = []
    for step in range(5):
        x = expand_streams(torch.randn(2, 5, C), n)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        reports.append(hook(step, x))
    hook.close()
    assert [r is not None for r in reports] == [True, False, True, False, True]
    rows = (tmp_path / "health.csv").read_text().splitlines()
    assert rows[0].startswith("step,gain_forward,gain_backward,certified_gain_forward") and len(rows) == 4
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "2", "4"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard" / "health"))
    events.Reload()
    assert {"health/gain_forward", "health/certified_sigma2", "health/flags"} <= set(events.Tags()["scalars"])
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        Monitor(model, every=0)


def test_monitor_observe_reads_the_training_pass(tmp_path):
    """``Monitor.observe(step)`` around a training step's forward and backward: the report of :func:`monitor` on
    that pass without a forward pass of its own (the model runs once per step), the layers found applying
    ``H_res`` from the gradients, rows on the due steps only, nothing between."""
    from reference import Monitor

    C, n = 16, 4
    model = nn.Sequential(*(HyperConnected(nn.Sequential(nn.LayerNorm(C), nn.Linear(C, C)), "mhc", n, C, layer_index=i)
                            for i in range(3)))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    hook, passes, seen = Monitor(model, tmp_path, every=2), [], []
    model.register_forward_pre_hook(lambda *_: passes.append(1))
    for step in range(4):
        x = expand_streams(torch.randn(2, 5, C), n)
        alone = monitor(model, x)
        count = len(passes)
        with hook.observe(step) as observed:
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
        assert len(passes) == count + 1                              # the step's own pass, no other
        opt.step()
        seen.append(observed.health)
        if observed.health is not None:
            got, want = observed.health.layers, alone.layers
            assert [h.gain_forward for h in got] == pytest.approx([h.gain_forward for h in want], rel=1e-12)
            assert [h.off_identity for h in got] == pytest.approx([h.off_identity for h in want], rel=1e-9)
            assert observed.health.certificate["gain_forward"] == pytest.approx(alone.certificate["gain_forward"])
            assert all(h.h_res_applied for h in got) and observed.health.flags == alone.flags
    hook.close()
    assert [h is not None for h in seen] == [True, False, True, False]
    assert [r.split(",")[0] for r in (tmp_path / "health.csv").read_text().splitlines()[1:]] == ["0", "2"]
