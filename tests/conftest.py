import os

# GPU kernels run under Triton's interpreter on machines without CUDA; set before any
# triton import.
try:
    import torch
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
except ImportError:  # pragma: no cover
    pass

import pytest
from hypothesis import HealthCheck, settings


@pytest.fixture(autouse=True)
def _gpu_tests_on_cuda(request):
    """``test_gpu_*`` build their tensors where the kernels run: CUDA when present."""
    import torch

    if torch.cuda.is_available() and request.module.__name__.rsplit(".", 1)[-1].startswith("test_gpu"):
        with torch.device("cuda"):
            yield
    else:
        yield


settings.register_profile(
    "default", deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "ci", parent=settings.get_profile("default"), derandomize=True, print_blob=True)
settings.register_profile("stress", parent=settings.get_profile("default"), max_examples=1000)   # for notes
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default"))
