"""BE-HC token mixing (reference.token_mixing): causality, exact DS, O(N d) memory, quantized weights."""

from fractions import Fraction
from typing import Sequence

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reference.models import Model, ModelConfig
from reference.token_mixing import TokenMixBlock, power_of_two_shifts, quantize_shift_weights, token_mix


def token_mixing_matrix(w: Sequence, shifts: Sequence[int], N: int) -> np.ndarray:
    """Dense ``(N + S) x (N + S)`` operator ``sum_k w_k P_k`` on the padded sequence (one channel).

    ``P_k[i, (i - s_k) mod (N + S)] = 1``; rows ``S..S+N-1`` act on the real tokens.
    Entries keep the type of ``w`` (``Fraction`` for exact checks).
    """
    S = max(shifts)
    size = N + S
    A = np.full((size, size), type(w[0])(0), dtype=object)
    for wk, s in zip(w, shifts):
        for i in range(size):
            A[i, (i - s) % size] += wk
    return A


def exact_weights(q: np.ndarray, scale: int) -> list[list[Fraction]]:
    """``q / scale`` as Fractions, per channel: ``[[q_0c / s, ..., q_Kc / s] for c]``."""
    return [[Fraction(int(v), scale) for v in q[:, c]] for c in range(q.shape[1])]


def _weights(K, d, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(3 * torch.randn(K, d, generator=g, dtype=dtype), dim=0)


def test_power_of_two_shifts():
    assert power_of_two_shifts(1) == (0,)
    assert power_of_two_shifts(2) == (0, 1)
    assert power_of_two_shifts(8) == (0, 1, 2, 4)
    assert power_of_two_shifts(9) == (0, 1, 2, 4, 8)
    assert len(power_of_two_shifts(16384)) == 15
    with pytest.raises(ValueError):
        power_of_two_shifts(0)


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 40), d=st.integers(1, 4), B=st.integers(1, 3), seed=st.integers(0, 2**16),
       shifts=st.sets(st.integers(0, 45), min_size=1, max_size=6))
def test_equals_dense_operator_on_padded_sequence(N, d, B, seed, shifts):
    """Real rows of the dense (N+S)x(N+S) operator sum_k w_k P_k applied to the zero-padded input."""
    shifts = tuple(sorted(shifts))
    w = _weights(len(shifts), d, seed)
    x = torch.randn(B, N, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    y = token_mix(x, w, shifts)
    assert y.shape == x.shape
    S = max(shifts)
    for c in range(d):
        A = token_mixing_matrix([float(v) for v in w[:, c]], shifts, N).astype(np.float64)
        xp = np.concatenate([np.zeros((B, S)), x[..., c].numpy()], axis=1)
        np.testing.assert_allclose((xp @ A.T)[:, S:], y[..., c].numpy(), atol=1e-14)


def test_operator_is_exactly_doubly_stochastic_and_causal():
    shifts = power_of_two_shifts(12)
    q = quantize_shift_weights(_weights(len(shifts), 3).numpy(), 127)
    for w in exact_weights(q, 127):
        A = token_mixing_matrix(w, shifts, 12)
        assert all(sum(row) == 1 for row in A) and all(sum(col) == 1 for col in A.T)
        assert all(v >= 0 for v in A.flat)
        S = max(shifts)
        real = A[S:, S:]                      # acts on real tokens: lower triangular
        assert all(real[i, j] == 0 for i in range(12) for j in range(i + 1, 12))
        assert all(A[S + i, j] == 0 for i in range(12) for j in range(S + i + 1, 12 + S))  # no wrap


@settings(max_examples=30, deadline=None)
@given(K=st.integers(1, 16), d=st.integers(1, 8), seed=st.integers(0, 2**16),
       scale=st.sampled_from([1, 7, 127, 255]), peaked=st.floats(0.1, 30.0))
def test_quantized_weights_exact(K, d, seed, scale, peaked):
    w = torch.softmax(peaked * torch.randn(K, d, generator=torch.Generator().manual_seed(seed),
                                           dtype=torch.float64), dim=0).numpy()
    q = quantize_shift_weights(w, scale)
    assert q.dtype.kind == "i" and (q >= 0).all() and (q <= scale).all()
    assert (q.sum(0) == scale).all()
    assert all(abs(int(a) - scale * Fraction(float(b))) < 1 for a, b in zip(q.flat, w.flat))
    assert all(sum(col) == Fraction(1) for col in exact_weights(q, scale))


def test_causality_by_jacobian():
    """Output t depends on inputs <= t only, through the whole block (projections, gate, mix)."""
    torch.manual_seed(0)
    block = TokenMixBlock(6, max_len=20).double()
    with torch.no_grad():
        block.logits.normal_()
    x = torch.randn(1, 20, 6, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda z: block(z), x)[0, :, :, 0, :, :]   # (t, c, s, c')
    dep = J.abs().sum((1, 3))
    assert float(dep.triu(1).abs().max()) == 0.0
    assert float(dep.diagonal().min()) > 0 and float(dep[19, 0]) == 0.0   # 19 = 16+2+1: three hops
    model = Model(ModelConfig(vocab=10, width=8, depth=3, mixer="behc", kind="tokenmix", max_len=32)).double()
    idx = torch.randint(0, 10, (2, 32))
    idx2 = idx.clone()
    idx2[:, 20:] = (idx2[:, 20:] + 1) % 10
    torch.testing.assert_close(model(idx)[:, :20], model(idx2)[:, :20])


def test_memory_is_linear_in_sequence_length():
    """Tensors autograd saves for a mixing layer scale with N d, never N^2."""
    def saved_numel(N):
        total = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: total.append(t.numel()) or t, lambda t: t):
            x = torch.randn(2, N, 4, requires_grad=True)
            token_mix(x, _weights(len(power_of_two_shifts(N)), 4, dtype=torch.float32),
                      power_of_two_shifts(N)).sum()
        return sum(total)
    for N in (64, 512, 4096):
        assert saved_numel(N) <= 2 * 4 * N * (len(power_of_two_shifts(N)) + 1) + 1000


def test_bad_input():
    x = torch.randn(2, 5, 3)
    with pytest.raises(ValueError):
        token_mix(x, torch.ones(2, 4), (0, 1))           # w does not match d
    with pytest.raises(ValueError):
        token_mix(x[0], torch.ones(2, 3), (0, 1))        # not (B, N, d)
    with pytest.raises(ValueError):
        token_mix(x, torch.ones(2, 3), (0, -1))          # anti-causal shift
    with pytest.raises(ValueError, match="backend"):
        ModelConfig(vocab=10, width=8, depth=2, mixer="residual", kind="tokenmix", backend="cuda")
    with pytest.raises(ValueError):
        ModelConfig(vocab=10, width=8, depth=2, mixer="residual", kind="attention")
