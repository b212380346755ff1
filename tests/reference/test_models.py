"""The models: every mixer in every kind, causality, the norm ablation, and torch.compile."""

from dataclasses import replace

import pytest
import torch

from reference.mixers import MIXERS
from reference.models import KINDS, Model, ModelConfig


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_models_take_any_mixer(kind):
    for name in sorted(MIXERS):
        model = Model(ModelConfig(vocab=11, width=8, depth=2, mixer=name, n_streams=4, kind=kind, heads=2,
                                  max_len=16))
        out = model(torch.randint(0, 11, (2, 9)))
        assert out.shape == (2, 9, 11) and torch.isfinite(out).all()
        assert len(model.mixers()) == (4 if kind == "transformer" else 2)


def test_transformer_is_causal():
    torch.manual_seed(0)
    model = Model(ModelConfig(vocab=11, width=8, depth=2, mixer="mhc", kind="transformer", heads=2, max_len=16))
    idx = torch.randint(0, 11, (1, 9))
    changed = idx.clone()
    changed[0, 6] = (idx[0, 6] + 1) % 11
    assert torch.allclose(model(idx)[0, :6], model(changed)[0, :6], atol=1e-6)


def test_norm_none_drops_every_sublayer_norm():
    """``norm="none"``: no RMSNorm inside any sublayer (the final one before the head stays)."""
    for kind in KINDS:
        cfg = ModelConfig(vocab=5, width=8, depth=2, mixer="kromhc", kind=kind, heads=2, max_len=8)
        pre, none = Model(cfg), Model(replace(cfg, norm="none"))

        def norms(model: Model) -> int:
            return sum(isinstance(m, torch.nn.RMSNorm) for layer in model.layers for sub in layer.sublayers
                       for m in sub.layer.modules())

        assert norms(pre) == 2 * len(pre.layers[0].sublayers) and norms(none) == 0
        assert torch.isfinite(none(torch.zeros(1, 4, dtype=torch.long))).all()
    with pytest.raises(ValueError, match="norm"):
        ModelConfig(vocab=5, width=8, depth=1, mixer="mhc", norm="post")


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.heavy)])
@pytest.mark.parametrize("name", sorted(MIXERS))
def test_torch_compile_trains_every_mixer(name, backend):
    """The forward keeps no hidden state and no data-dependent Python branch, so ``torch.compile(model,
    fullgraph=True)`` captures it in one graph and trains as eager does. ``aot_eager`` runs what is ours
    (Dynamo's trace, AOT autograd's joint graph); the ``inductor`` variant adds torch's code generation, 10-30 s
    a mixer on a cold cache (heavy). Dynamo's caches are reset first: ``Model.forward`` recompiles for each
    mixer class, and past the recompile limit (8) Dynamo runs it eagerly (``fullgraph`` makes that an error)."""
    torch.compiler.reset()
    torch.manual_seed(0)
    cfg = ModelConfig(vocab=11, width=8, depth=1, mixer=name, n_streams=4, kind="mlp")
    eager, compiled = Model(cfg), Model(cfg)
    compiled.load_state_dict(eager.state_dict())
    idx = torch.randint(0, 11, (2, 9))
    losses = []
    for model, fn in ((eager, eager), (compiled, torch.compile(compiled, backend=backend, fullgraph=True))):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(2):
            loss = torch.nn.functional.cross_entropy(fn(idx).flatten(0, 1), idx.flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses.append(loss.item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    assert not any(hasattr(m, "last_h_res") for m in eager.mixers())
