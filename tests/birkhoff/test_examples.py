import subprocess
import sys

import numpy as np

from birkhoff.examples import DATA_DIR, build_examples
from birkhoff.io import load_matrix


def test_shipped_files_are_what_the_generator_builds():
    for name, M in build_examples().items():
        loaded = load_matrix(DATA_DIR / name)
        if M.dtype == object:
            assert (loaded == M).all(), name
        else:  # exp/log may differ in the last bit across CPUs' SIMD paths
            np.testing.assert_allclose(loaded, M, rtol=1e-12, atol=1e-15, err_msg=name)


def test_demo_prints_certificates():
    out = subprocess.run([sys.executable, "-m", "birkhoff.demo"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.count("Certificate for") == 4 and "product of 1000" in out.stdout
