"""The tasks: the bundled corpus and the synthetic Markov chain."""

import math

import numpy as np
import torch

from reference.lab.data import CharLM, Markov


def test_data():
    task = CharLM(16)
    x, y = task.batch(3, 7, 5)
    x2, y2 = task.batch(3, 7, 5)
    assert torch.equal(x, x2) and torch.equal(x[:, 1:], y[:, :-1]) and x.max() < task.vocab
    assert 2.5 < task.unigram_entropy() < math.log(task.vocab)
    m = Markov(16)
    T = np.where(m.T > 0, m.T, 1.0)
    conditional_entropy = float(-(m.pi[:, None] * m.T * np.log(T)).sum())      # the best achievable loss
    assert conditional_entropy < m.unigram_entropy()
    xm, ym = m.batch(0, 0, 4)
    assert xm.shape == (4, 16) and torch.equal(xm[:, 1:], ym[:, :-1])
