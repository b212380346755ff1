"""proofs_checks: every claim passes in quick mode; the JSON schema; the shared generators."""

import json
import runpy
import sys

import numpy as np
import pytest
from hypothesis import given

from birkhoff import certify
from proofs_checks import CLAIM_MODULES
from strategies import seeded_exact_ds


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")    # runpy, the module already imported
def test_all_claims_pass_quick_json(capsys, monkeypatch):
    """``python -m proofs_checks --quick --json``: its ``__main__`` run in this interpreter (runpy)."""
    monkeypatch.setattr(sys, "argv", ["proofs_checks", "--quick", "--json"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("proofs_checks", run_name="__main__", alter_sys=True)
    data = json.loads(capsys.readouterr().out)
    assert exit_.value.code == 0, [c for c in data["claims"] if not c["passed"]]
    assert len(data["claims"]) == len(CLAIM_MODULES) == 11
    for claim in data["claims"]:
        assert {"id", "statement", "passed", "evidence"} <= set(claim) and claim["passed"]


def test_only_runs_the_named_claims(capsys):
    from proofs_checks.__main__ import main

    assert main(["--quick", "--only", "3", "10"]) == 0 and "2/2 claims pass" in capsys.readouterr().out


def test_a_failing_claim_exits_1(monkeypatch, capsys):
    import proofs_checks.__main__ as runner
    from proofs_checks import ClaimResult

    class Failing:
        __name__ = "proofs_checks.c99_fail"

        @staticmethod
        def check(quick):
            return ClaimResult("99", "always false", False, "by construction")

    monkeypatch.setattr(runner, "claims", lambda: [Failing])
    assert runner.main(["--quick"]) == 1 and "[FAIL]" in capsys.readouterr().out


@given(seeded_exact_ds(dyadic=True))
def test_shared_generator_gives_exact_ds(P):
    assert certify(P).exact and (np.asarray(P >= 0)).all()
