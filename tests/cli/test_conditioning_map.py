"""`ufm conditioning --map`: the regime map on the command line, its JSON, its bad input, and the point's regime."""
import json

import pytest


def test_the_map_as_json_covers_0_1_per_configuration(cli):
    code, out, err = cli("conditioning", "--map", "-K", "3,10", "--lambda-ratio", "1,10", "--alpha-max", "0.2",
                         "--json")
    assert code == 0 and err == ""
    regimes = json.loads(out)
    keys = {"definition", "K", "d_regime", "lambda_ratio", "per_class", "alpha_max", "sK_from", "sK_to", "verdict",
            "boundary_from", "boundary_to"}
    assert all(set(r) == keys and r["alpha_max"] == 0.2 for r in regimes)
    groups = {}
    for r in regimes:
        groups.setdefault((r["definition"], r["K"], r["d_regime"], r["lambda_ratio"]), []).append(r)
    assert {k[0] for k in groups} == {"logits", "features", "classifier", "full", "full, b included"}
    assert len(groups) == 5 * 2 * 2 * 2
    for rs in groups.values():
        assert rs[0]["sK_from"] == 0 and rs[-1]["sK_to"] == 1
        assert all(a["sK_to"] == b["sK_from"] for a, b in zip(rs, rs[1:]))
    assert {r["per_class"] for r in regimes if r["definition"] == "full, b included"} == {10}  # -n, default 10


def test_the_map_as_text_is_one_line_per_regime(cli):
    code, out, _ = cli("conditioning", "--map", "-K", "10", "--lambda-ratio", "1", "--definitions", "features")
    lines = out.splitlines()
    assert code == 0 and "Regime map of the conditioning claim" in lines[0]
    rows = [line.split() for line in lines[3:]]
    assert [(r[2], r[5], r[6], r[7]) for r in rows] == [
        ("K-1", "(0,", "0.1419)", "higher"), ("K-1", "[0.1419,", "0.3015)", "mixed"),
        ("K-1", "[0.3015,", "1)", "lower"), (">=K", "(0,", "0.2244)", "higher"),
        (">=K", "[0.2244,", "0.3648)", "mixed"), (">=K", "[0.3648,", "1)", "lower")]


@pytest.mark.parametrize("argv, message", [
    (["--map", "--alpha-max", "1"], "--alpha-max must be a float in the range (0, 1). Got 1.0 instead."),
    (["--map", "--alpha-max", "0"], "--alpha-max must be a float in the range (0, 1). Got 0.0 instead."),
    (["--map", "-K", "3,1"], "-K/--num-classes must be an int in the range [2, inf). Got 1 instead."),
    (["--map", "-K", "1"], "-K/--num-classes must be an int in the range [2, inf). Got 1 instead."),
    (["--map", "--lambda-ratio", "1,0"], "--lambda-ratio must be a float in the range (0, inf). Got 0.0 instead."),
    (["--map", "--lambda-ratio", "-1"], "--lambda-ratio must be a float in the range (0, inf). Got -1.0 instead."),
    (["-K", "3,5"], "-K/--num-classes takes one value without --map. Got [3, 5] instead."),
    (["--alpha-max", "0.2"], "--alpha-max applies only with --map"),
    (["--map", "--alphas", "0,0.1"], "--alphas does not apply with --map"),
    (["--map", "--lambda-w", "0.01"], "--lambda-w does not apply with --map"),
])
def test_bad_map_input_exits_2_naming_the_flag(cli, argv, message):
    code, out, err = cli("conditioning", *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err


def test_a_single_point_says_where_it_lies_on_the_map(cli):
    code, out, _ = cli("conditioning", "-K", "10", "--alphas", "0,0.05,0.1,0.2")
    assert code == 0
    head, verdicts = out.split("Label smoothing vs CE (symbolic condition numbers):\n")
    assert "Where this point lies on the regime map" in head and "s K = 0.158114, d >= K" in head
    assert "compare CE with alpha = 0.05, 0.1, 0.2 only" in head
    assert "features:         s K in (0, 0.269): higher over alpha in (0, 0.2]" in head
    assert "the logits kappa (K p_true) involves no W, H or d" in head
    assert len(verdicts.splitlines()) == 5  # the verdict block the README shows comes last, unchanged


def test_a_point_without_an_alpha_above_0_has_no_regime_lines(cli):
    code, out, err = cli("conditioning", "-K", "4")
    assert code == 0 and err == "" and "regime map" not in out
