"""DEPTH.md's verdict rules on synthetic records: each verdict follows its rule, and the page holds
no result outside its generated blocks."""

import re
from pathlib import Path

from depth_records import evidence, fake, seeds
from reference.lab.studies import claims as C
from reference.lab.studies import tables as T
from reference.lab.studies.evidence import Evidence

ROOT = Path(__file__).resolve().parents[3]
def test_hc_stability_and_gain_are_reproduced_only_beyond_the_intervals(tmp_path):
    L8 = seeds("hc", 8, 0.03, ["stable"] * 10, gain=10.0)
    L32 = seeds("hc", 32, 0.03, ["diverged"] * 5 + ["spiked"] * 4 + ["stable"], gain=1e12)
    ds = seeds("mhc", 32, 0.03, ["stable"] * 10, gain=1.5) + seeds("kromhc", 32, 0.03, ["stable"] * 10)
    ev = evidence(tmp_path, **{"stability-L8": L8, "stability-L32": L32 + ds})
    assert C.hc_stability(ev)[0] == "reproduced"
    assert C.hc_gain(ev)[0] == "reproduced" and "every run starts at 1" in C.hc_gain(ev)[1]
    # the same rates at both depths: no difference, whatever the means
    ev = evidence(tmp_path / "same", **{"stability-L8": seeds("hc", 8, 0.03, ["stable"] * 5 + ["spiked"] * 5),
                                        "stability-L32": seeds("hc", 32, 0.03, ["spiked"] * 5 + ["stable"] * 5) + ds})
    assert C.hc_stability(ev)[0] == "no difference detected"


def test_the_causal_arm_needs_its_runs_and_calls_a_blow_up_difference_only_beyond_the_intervals(tmp_path):
    hc = seeds("hc", 32, 0.03, ["diverged"] * 8 + ["stable"] * 2)
    arm = seeds("hc", 32, 0.03, ["stable"] * 2 + ["flat"] * 8, res_bound="norm")
    assert C.causal_arm(evidence(tmp_path / "a", **{"stability-L32": hc}))[0] == "not testable here"
    word, numbers = C.causal_arm(evidence(tmp_path / "b", **{"stability-L32": hc, "stability-L32-hc-bounded": arm}))
    assert word == "reproduced for the blow-ups" and "stable 2/10" in numbers and "no difference detected" in numbers
    arm = seeds("hc", 32, 0.03, ["diverged"] * 7 + ["stable"] * 3, res_bound="norm")
    assert C.causal_arm(evidence(tmp_path / "c", **{"stability-L32": hc,
                                                    "stability-L32-hc-bounded": arm}))[0] == "not reproduced"


def test_matches_needs_the_margin_and_convergence_needs_an_interval_that_excludes_zero(tmp_path):
    krom = [fake("kromhc", 32, 0.03, s, val=2.9 + 0.001 * s) for s in range(10)]
    mhc = [fake("mhc", 32, 0.03, s, val=2.901 + 0.001 * s) for s in range(10)]     # worse by 0.001: inside 0.05
    assert C.kromhc_matches(evidence(tmp_path / "a", **{"stability-L32": krom + mhc}))[0] == "matches at lr 0.03"
    wide = [fake("mhc", 32, 0.03, s, val=2.9 + (0.3 if s % 2 else -0.3)) for s in range(10)]
    assert C.kromhc_matches(evidence(tmp_path / "b", **{"stability-L32": krom + wide}))[0].startswith(
        "no difference detected")
    worse = [fake("mhc", 32, 0.03, s, val=2.7 + 0.001 * s) for s in range(10)]
    assert C.kromhc_matches(evidence(tmp_path / "e", **{"stability-L32": krom + worse}))[0] == "contradicted at lr 0.03"
    high = [fake(m, 32, 0.3, s, outcome="flat" if s < 8 else "stable") for m in ("kromhc", "mhc") for s in range(10)]
    word, numbers = C.kromhc_matches(evidence(tmp_path / "f", **{"stability-L32": krom + mhc + high}))
    assert word == "matches at lr 0.03" and "not compared at lr 0.3" in numbers       # neither learns at 0.3
    assert C.kromhc_matches(evidence(tmp_path / "g", **{"stability-L32": high}))[0] == "not testable here"
    hc = [fake("hc", 32, 0.03, s, learn_at=10 + s % 2) for s in range(10)]
    res = [fake("residual", 32, 0.03, s, learn_at=20 + s % 3) for s in range(10)]
    word, numbers = C.hc_convergence(evidence(tmp_path / "c", **{"stability-L32": hc + res}))
    assert word == "reproduced" and "residual / HC 1." in numbers
    word, _ = C.hc_convergence(evidence(tmp_path / "d", **{"stability-L32": hc + [
        fake("residual", 32, 0.03, s, learn_at=10 + s % 2) for s in range(10)]}))
    assert word == "no difference detected"


def test_steps_to_target_uses_the_running_mean_of_the_excess_loss_and_censors():
    r = fake("hc", 32, 0.03, 0, learn_at=10, val=2.6)
    # excess +0.2 before step 10, -0.7 from it: with k learned steps in the window the mean is (2 - 0.9 k) / 10,
    # -0.07 at k = 3 and -0.16 at k = 4 (window ending at step 13): the target is reached after 14 steps
    assert T.steps_to_target(r) == 14
    assert T.steps_to_target(fake("hc", 32, 0.03, 0, outcome="flat")) is None


def test_sk_errors_and_behc_depth_and_the_premise(tmp_path):
    deep = (seeds("mhc", 1000, 0.01, ["stable"] * 4, kind="mlp", gain=1.9)
            + seeds("behc", 1000, 0.01, ["stable"] * 10, kind="mlp"))
    ev = evidence(tmp_path / "a", **{"deep-sk": deep})
    assert C.sk_errors(ev)[0] == "not reproduced" and "1.9 at L = 1000" in C.sk_errors(ev)[1]
    few = evidence(tmp_path / "few", **{"deep-sk": deep[1:]})             # 3 mHC runs: 0/3 is [0, 0.56]
    assert C.sk_errors(few)[0].startswith("not testable here (3 mHC runs")
    broken = seeds("mhc", 1000, 0.01, ["diverged"] * 10, kind="mlp") + deep[4:]
    assert C.sk_errors(evidence(tmp_path / "broken", **{"deep-sk": broken}))[0] == "reproduced"
    assert C.behc_depth(ev)[0].startswith("BE-HC trains: reproduced; ReZero") and "not testable" in C.behc_depth(ev)[0]
    one = evidence(tmp_path / "one", **{"deep-sk": seeds("behc", 1000, 0.01, ["stable"], kind="mlp")})
    assert C.behc_depth(one)[0].startswith("BE-HC trains: not testable here (1 run: too few")
    assert C.ds_gain(ev)[0] == "reproduced for KromHC and BE-HC"
    rezero = seeds("rezero", 1000, 0.01, ["diverged"] * 10, kind="mlp")
    word, numbers = C.behc_depth(evidence(tmp_path / "rz", **{"deep-sk": deep + rezero}))
    assert word == "BE-HC trains: reproduced; ReZero fails: reproduced, BE-HC against it: differs"
    assert "BE-HC stable 10/10 [0.72, 1.00], ReZero 0/10 [0.00, 0.28]" in numbers
    trains = seeds("rezero", 1000, 0.01, ["stable"] * 10, kind="mlp") + seeds("residual", 1000, 0.01, ["flat"] * 2,
                                                                              kind="mlp")
    assert C.behc_depth(evidence(tmp_path / "rt", **{"deep-sk": deep + trains}))[0] == (
        "BE-HC trains: reproduced; ReZero fails: not reproduced (ReZero trains), BE-HC against it: no difference "
        "detected; plain residual fails: not testable here (2 runs: too few for an interval beyond 1/2), BE-HC "
        "against it: differs")
    table = T.deep_sk(evidence(tmp_path / "table", **{"deep-sk": deep + trains}))
    assert "| 1000 | 0.01 | 40 | rezero | 10 | 10/10 [0.72, 1.00] | 0/10 [0.00, 0.28] | 2.900 +- 0.000 (10) | - | - |" \
        in table                                                           # no H_res: no composite gain shown
    assert "mHC against BE-HC, pooled over depths: behc stable 10/10 [0.72, 1.00]; mhc stable 4/4" in table
    assert C.sk_errors(evidence(tmp_path / "b", **{"other": deep}))[0] == "not testable here"
    premise = seeds("kromhc", 8, 0.01, ["stable"] * 3, ident=0.06) + [fake("mhc", 8, 0.01, 0, ident=0.2),
                                                                      fake("mhc", 8, 0.01, 1, ident=0.01)]
    word, numbers = C.premise_row(evidence(tmp_path / "c", **{"premise-L8": premise}))
    assert word == "met in 1 of 2 settings" and "+0.200" in numbers


def test_every_claim_has_a_row_and_an_empty_record_set_is_not_testable(tmp_path):
    table = C.verdict_table(Evidence(tmp_path))
    rows = [line for line in table.splitlines()[2:]]
    assert len(rows) == len(C.CLAIMS) and all("**not testable here**" in row for row in rows)


def test_no_result_is_typed_outside_the_generated_blocks():
    text = (ROOT / "docs/DEPTH.md").read_text()
    outside = re.sub(r"<!-- records:([\w-]+) -->.*?<!-- /records:\1 -->", "", text, flags=re.DOTALL)
    results = (r"\d+/\d+ \[", r"\+- ?\d", r"\d\.\d+e[+-]\d",
               r"\| \*\*(reproduced|contradicted|not reproduced|no difference)")
    for pattern in results:
        assert not re.search(pattern, outside), f"a result outside the generated blocks: {pattern}"


def test_brackets_need_the_rates_interval_beyond_one_half(tmp_path):
    runs = (seeds("hc", 32, 0.01, ["stable"] * 10) + seeds("hc", 32, 0.02, ["stable"] * 6 + ["diverged"] * 4)
            + seeds("hc", 32, 0.04, ["diverged"] * 10) + seeds("mhc", 32, 0.01, ["stable"] * 5 + ["flat"] * 5)
            + seeds("mhc", 32, 0.04, ["flat"] * 5 + ["stable"] * 5))
    text = T.core_claim(evidence(tmp_path, **{"stability-L32": runs}))
    assert "- hc at L = 32: stable-lr bracket [0.01, 0.04)" in text          # 6/10 at 0.02 decides nothing
    assert "- mhc at L = 32: stable-lr bracket not located by lr 0.01-0.04" in text


def test_the_second_bracket_counts_only_runs_well_below_unigram_and_open_ends_show_their_last_rates(tmp_path):
    runs = (seeds("kromhc", 64, 0.01, ["stable"] * 10) + seeds("kromhc", 64, 0.02, ["stable"] * 10, val=3.28)
            + seeds("kromhc", 64, 0.04, ["stable"] * 9 + ["flat"], val=3.28))      # 0.02 nats below unigram
    text = T.core_claim(evidence(tmp_path, **{"stability-L64": runs}))
    assert ("- kromhc at L = 64: stable-lr bracket [0.04, beyond 0.04) (10/10 at 0.01, 10/10 at 0.02, 9/10 at 0.04); "
            "by the runs >= 0.05 below unigram [0.01, 0.02)") in text
    assert "| 64 | 0.02 | kromhc | 10 | 10/10 [0.72, 1.00] | 0/10 [0.00, 0.28] |" in text
