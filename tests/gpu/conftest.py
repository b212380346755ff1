import pytest


@pytest.fixture(params=[True, pytest.param(False, marks=pytest.mark.heavy)], ids=["fast", "full"])
def fast_mode(request) -> bool:
    """``torch.autograd.gradcheck``'s ``fast_mode``. Fast (the default run): ``v^T J u`` for random ``u, v``
    against its finite difference, 0.2-0.7 s a kernel under the interpreter; it catches gross errors only
    (a factor 2 on one Jacobian entry failed it, 20 % on one of 12 entries passed). Full (heavy): the whole
    Jacobian, column by column, 1-6 s a kernel. What pins the gradients in every run is each kernel's
    forward-backward test against its torch twin or ``birkhoff`` (1e-12..1e-5, over hypothesis or
    parametrised shapes)."""
    return request.param
