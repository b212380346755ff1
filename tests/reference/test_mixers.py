"""The mixers: shapes and gradients, exact and Sinkhorn double stochasticity, the initialisations
the papers' code uses, parameter counts against their closed forms, and the one registry."""

import math

import pytest
import torch

from birkhoff import all_permutations, cyclic_permutations, from_permutations
from gpu import eager
from reference.mixers import MIXERS, make_mixer, mixing_params, stream_count
from reference.models import MLPBlock, Model, ModelConfig
from reference.tap import HResProbe


EXACT_DS = ["mhc_lite", "kromhc", "behc"]


def randomize(module, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_mixer_shapes_and_gradients(name):
    torch.manual_seed(0)
    mixer = make_mixer(name, 4, 8)
    block = MLPBlock(8)
    n = stream_count(name, 4)
    x = torch.randn(2, 5, n, 8, requires_grad=True)
    y = mixer(x, block)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for p in list(mixer.parameters()) + list(block.parameters()):
        assert p.grad is not None, name


@pytest.mark.parametrize("name", EXACT_DS)
@pytest.mark.parametrize("n", [2, 4, 8])
def test_exactly_ds_mixers_stay_ds_away_from_init(name, n):
    torch.manual_seed(n)
    mixer = make_mixer(name, n, 4)
    randomize(mixer, scale=3.0)                     # far from init
    probe = HResProbe()
    mixer(torch.randn(3, 7, n, 4), MLPBlock(4), probe)
    H = probe.chain[0]
    assert (H >= 0).all()
    assert (H.sum(-1) - 1).abs().max() <= 1e-6 and (H.sum(-2) - 1).abs().max() <= 1e-6


@pytest.mark.parametrize("sk_order, exact_axis", [("cols_rows", -1), ("rows_cols", -2)])
def test_mhc_is_sk20_and_not_exactly_ds(sk_order, exact_axis):
    """The sweep order decides which margins are exact: the last-normalised ones."""
    torch.manual_seed(0)
    mixer = make_mixer("mhc", 4, 8, sk_order=sk_order)
    randomize(mixer, scale=3.0)
    probe = HResProbe()
    x = torch.randn(2, 6, 4, 8)
    mixer(x, MLPBlock(8), probe)
    H = probe.chain[0]
    other = -3 - exact_axis                              # -1 <-> -2
    assert (H.sum(exact_axis) - 1).abs().max() <= 1e-5   # normalised last
    assert (H.sum(other) - 1).abs().max() > 1e-4         # not, after 20 sweeps
    L = torch.randn(3, 4, 4, dtype=torch.float64) * 5
    transposed = make_mixer("mhc", 4, 8, sk_order="cols_rows").double().h_res(L.flatten(-2))
    torch.testing.assert_close(transposed, eager.sinkhorn(L.mT).mT)
    from birkhoff import sinkhorn_logits
    assert torch.allclose(eager.sinkhorn(L), torch.from_numpy(sinkhorn_logits(L.numpy(), 20)))


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_symmetric_init_is_a_plain_residual(name):
    """init="symmetric": equal streams in, equal streams out, each ~x + F(x)."""
    torch.manual_seed(1)
    mixer = make_mixer(name, 4, 8, init="symmetric")
    block = MLPBlock(8)
    n = stream_count(name, 4)
    h = torch.randn(2, 3, 8)
    x = h.unsqueeze(-2).expand(2, 3, n, 8)
    probe = HResProbe()
    y = mixer(x, block, probe)
    expected = h if name == "rezero" else h + block(h)
    assert torch.allclose(y, expected.unsqueeze(-2).expand_as(y), atol=0.05)
    H = probe.chain[0]
    assert (H.diagonal(dim1=-2, dim2=-1) >= 0.97).all()


@pytest.mark.parametrize("name", sorted(MIXERS))
@pytest.mark.parametrize("n, C", [(2, 8), (4, 8), (4, 32), (8, 4)])
def test_parameter_counts_match_closed_forms(name, n, C):
    mixer = make_mixer(name, n, C)
    assert sum(p.numel() for p in mixer.parameters()) == mixing_params(name, n, C)


def test_parameter_count_growth_classes():
    C = 64
    assert mixing_params("mhc", 8, C) > 8 ** 3 * C                      # O(n^3 C)
    assert mixing_params("mhc_lite", 8, C) > 8 * C * math.factorial(8)  # O(nC n!)
    assert mixing_params("kromhc", 8, C) < 3 * 8 ** 2 * C               # O(n^2 C)
    assert mixing_params("kromhc", 16, C) < mixing_params("mhc", 16, C) / 5


def test_one_registry_adding_a_mixer_is_one_class(tmp_path):
    """A new mixer is one class plus its @register line; Model, configs and parameter counts pick it up."""
    from reference.mixers import Mixer, register

    try:
        @register("averaging")
        class Averaging(Mixer):                       # H_res = J/n, H_pre = 1/n, H_post = 1
            def coefficients(self, x):
                n = self.n_streams
                one = x.new_ones(x.shape[:-1])
                return one / n, one, x.new_full((*x.shape[:-1], n), 1.0 / n)

            @staticmethod
            def closed_form(n, C, mixer_norm="source"):
                return 0

        model = Model(ModelConfig(vocab=11, width=8, depth=2, mixer="averaging"))
        assert model(torch.randint(0, 11, (2, 5))).shape == (2, 5, 11)
        assert mixing_params("averaging", 4, 8) == 0 and "averaging" in MIXERS
        with pytest.raises(ValueError, match="already registered"):
            register("averaging")(Averaging)
    finally:
        MIXERS.pop("averaging", None)


SIG1 = 1 / (1 + math.exp(-1))                    # sigmoid(+1) = 0.731
OFF = math.exp(-8)


@pytest.mark.parametrize("name", ["mhc", "mhc_lite", "kromhc", "behc"])
@pytest.mark.parametrize("layer", [0, 1, 6])
def test_reference_init_matches_the_papers_code(name, layer):
    """KromHC / mHC-lite code: H_pre, H_post from logits +1 on stream layer mod 4 and -1 elsewhere;
    residual logits 0 (identity) and -8 (other permutations); phi = 0; gates 0.01."""
    n = 4
    mixer = make_mixer(name, n, 8, layer=layer, favoured="layer")
    x = torch.randn(3, n, 8, dtype=torch.float64)
    H_pre, H_post, H_res = mixer.double().coefficients(x)
    hot = torch.full((n,), 1 - SIG1, dtype=torch.float64)
    hot[layer % n] = SIG1
    torch.testing.assert_close(H_pre, hot.expand(3, n))                      # ~[0.73, 0.27, 0.27, 0.27]
    torch.testing.assert_close(H_post, (2 * hot).expand(3, n))               # ~[1.46, 0.54, 0.54, 0.54]
    assert (mixer.phi == 0).all() and torch.equal(mixer.gates.float(), torch.full((3,), 0.01))
    if name == "mhc":
        L = torch.full((n, n), -8.0, dtype=torch.float64).fill_diagonal_(0.0)
        expected = eager.sinkhorn(L, 20)
    else:
        perms = {"mhc_lite": all_permutations(n), "behc": cyclic_permutations(n)}.get(name)
        if perms is None:                                                    # two 2x2 factors [0, -8]
            a = 1 / (1 + OFF)
            U = torch.tensor([[a, 1 - a], [1 - a, a]], dtype=torch.float64)
            expected = torch.kron(U, U)
        else:
            w = torch.full((len(perms),), OFF, dtype=torch.float64)
            w[0] = 1.0
            expected = torch.tensor(from_permutations((w / w.sum()).numpy(), perms))
    torch.testing.assert_close(H_res, expected.expand(3, n, n))
    assert (H_res.diagonal(dim1=-2, dim2=-1) > 0.99).all()


def test_reference_init_uses_the_streams():
    """Equal streams in: the reference init reads one stream and writes unequally, so streams differ at once."""
    torch.manual_seed(0)
    h = torch.randn(2, 3, 8)
    x = h.unsqueeze(-2).expand(2, 3, 4, 8)
    block = MLPBlock(8)
    for name in ("mhc", "mhc_lite", "kromhc", "behc"):
        y = make_mixer(name, 4, 8, layer=2)(x, block)
        spread = (y - y.mean(-2, keepdim=True)).norm() / y.norm()
        symmetric = make_mixer(name, 4, 8, layer=2, init="symmetric")(x, block)
        assert spread > 0.05 and (symmetric - symmetric.mean(-2, keepdim=True)).norm() / symmetric.norm() < 1e-2


def test_symmetric_init_draws_differ_between_mixers():
    """kromhc and behc have the same phi shape at n = 4; their draws must still differ."""
    torch.manual_seed(0)
    a = make_mixer("kromhc", 4, 8, init="symmetric").phi
    torch.manual_seed(0)
    b = make_mixer("behc", 4, 8, init="symmetric").phi
    assert a.shape == b.shape and not torch.equal(a, b)


def test_favoured_stream_follows_each_source():
    """hc favours stream layer mod n (HC paper); the mHC family a random one from torch's generator
    (mHC-lite's runs pass no layer_index): fixed by the seed, and not layer mod n in general."""
    def favoured(name, layer, **kw):
        return make_mixer(name, 4, 8, layer=layer, **kw).favoured

    assert [favoured("hc", k) for k in range(8)] == [k % 4 for k in range(8)]
    torch.manual_seed(0)
    drawn = [favoured("kromhc", k) for k in range(32)]
    torch.manual_seed(0)
    assert [favoured("kromhc", k) for k in range(32)] == drawn and len(set(drawn)) == 4
    assert drawn != [k % 4 for k in range(32)]
    assert [favoured("mhc", k, favoured="layer") for k in range(8)] == [k % 4 for k in range(8)]
    torch.manual_seed(1)
    assert len({favoured("hc", k, favoured="random") for k in range(32)}) == 4
    with pytest.raises(ValueError, match="favoured"):
        make_mixer("mhc", 4, 8, favoured="first")


@pytest.mark.parametrize("name", ["mhc", "mhc_lite", "kromhc", "behc", "hc"])
def test_mixer_norm_source_and_plain(name):
    """source: the mHC family's RMSNorm gain (nC, starting at 1: the same coefficients as plain at init)
    and HC's LayerNorm; plain: no norm parameters. The gain is learned: it gets a gradient."""
    torch.manual_seed(0)
    source = make_mixer(name, 4, 8, layer=1, favoured="layer").double()
    torch.manual_seed(0)
    plain = make_mixer(name, 4, 8, layer=1, favoured="layer", mixer_norm="plain").double()
    extra = 2 * 8 if name == "hc" else 4 * 8
    n_source, n_plain = (sum(p.numel() for p in m.parameters()) for m in (source, plain))
    assert n_source - n_plain == extra
    assert n_source == mixing_params(name, 4, 8) and n_plain == mixing_params(name, 4, 8, "plain")
    x = torch.randn(3, 4, 8, dtype=torch.float64)
    if name != "hc":
        with torch.no_grad():
            for m in (source, plain):
                m.phi.normal_(generator=torch.Generator().manual_seed(5))
        for a, b in zip(source.coefficients(x), plain.coefficients(x)):
            torch.testing.assert_close(a, b)                     # gain 1 at init: the same numbers
        sum(c.sum() for c in source.coefficients(x)).backward()
        assert source.norm_gain.grad is not None and source.norm_gain.grad.abs().sum() > 0
    else:
        assert isinstance(source.norm, torch.nn.LayerNorm) and isinstance(plain.norm, torch.nn.RMSNorm)


def test_hc_causal_arm_bounds_the_gain_and_changes_nothing_else():
    """res_bound="norm": HC's H_res divided by max(1, its Amax gains). Same parameters and init (H_res = I
    at init is untouched); a grown H_res is scaled to gains <= 1 in both directions, so every product of
    them is too; refused for any other mixer."""
    from reference.mixers import MixerSpec

    torch.manual_seed(0)
    plain = MixerSpec(mixer="hc", n_streams=4).build(8, 3)
    torch.manual_seed(0)
    bounded = MixerSpec(mixer="hc", n_streams=4, res_bound="norm").build(8, 3)
    assert [n for n, _ in plain.named_parameters()] == [n for n, _ in bounded.named_parameters()]
    x = torch.randn(2, 5, 4, 8)
    torch.testing.assert_close(bounded.coefficients(x)[2], plain.coefficients(x)[2])   # at init: I, gain 1
    with torch.no_grad():
        for m in (plain, bounded):
            m.A_r.mul_(3.0).add_(0.5)
    H, Hb = plain.coefficients(x)[2], bounded.coefficients(x)[2]
    assert H.abs().sum(-1).amax() > 2
    assert Hb.abs().sum(-1).amax() <= 1 + 1e-6 and Hb.abs().sum(-2).amax() <= 1 + 1e-6
    torch.testing.assert_close(Hb * torch.maximum(H.abs().sum(-1).amax(-1), H.abs().sum(-2).amax(-1))[..., None, None], H)
    chain = Hb[0, 0]
    for _ in range(20):
        chain = chain @ Hb[0, 1]
    assert chain.abs().sum(-1).max() <= 1 + 1e-5
    Hb.sum().backward()                                                      # differentiable
    assert bounded.A_r.grad is not None and torch.isfinite(bounded.A_r.grad).all()
    with pytest.raises(ValueError, match="causal arm"):
        MixerSpec(mixer="mhc", res_bound="norm")
    with pytest.raises(ValueError, match="res_bound"):
        MixerSpec(mixer="hc", res_bound="clip")
