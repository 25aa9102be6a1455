"""Reports render what analyses return and decide nothing: a verdict in the data is the verdict shown."""
from ufm.report import markdown, text


def _summary(matches, nc1=()):
    return {"steps": [], "ce_vs_ls": [{"rule": "local", "quantity": "nc1", "eps": 1e-6, "alpha": 0.1,
                                       "steps_ce": 150.0, "steps_ls": 100.0, "ratio_ce_ls": 1.5}],
            "rates": {"worst_deviation": 0.3, "tolerance": 0.05, "matches": matches},
            "lr_times_L": {"min": 0.2, "max": 0.4}, "nc1": list(nc1), "nc1_band": 0.02}


def test_the_rate_verdict_is_the_one_in_the_summary():
    # the same deviation (0.3) is shown as a match or not, as the analysis decided: the renderer does not judge
    assert "rates match the full-spectrum" in markdown._rates_paragraphs(_summary(True))[0]
    assert "rates do NOT match" in markdown._rates_paragraphs(_summary(False))[0]
    assert "the criterion is 0.05" in markdown._rates_paragraphs(_summary(False))[0]
    assert "NC1 < 1e-06: 100 steps with LS (alpha = 0.1) against 150 with CE (ratio CE/LS 1.50)" in \
        markdown._rates_paragraphs(_summary(True))[0]


def test_nc1_verdicts_are_listed_as_given():
    nc1 = [{"rule": "local", "alpha": 0.0, "deviation": 0.5, "verdict": "agrees"},
           {"rule": "local", "alpha": 0.1, "deviation": 0.0, "verdict": "slower"}]
    para = markdown._rates_paragraphs(_summary(True, nc1))[-1]
    assert "agrees with it to 2% of 1 - rate for alpha = 0 (local)" in para
    assert "more slowly than predicted for alpha = 0.1 (local)" in para


def test_the_verification_section_renders_the_summary():
    rec = {"rows": [{"num_classes": 3}], "config": {"seeds": [0], "per_class": 10, "method": "lbfgs",
                                                      "solver_tol": 1e-11, "tol": 1e-6},
           "summary": {"passed": 7, "total": 9, "trivial": 2, "failed": [],
                       "errors": {"logit_gap": {"worst": 2e-9, "median": 1e-10}}}}
    lines = "\n".join(markdown._verify_section(rec))
    assert "**7 of 9 points agree with the closed form to 1e-06**" in lines
    assert "| logit_gap | 2.00e-09 | 1.00e-10 |" in lines and "2 of them lie past" in lines


def test_the_conditioning_verdict_lines_render_summarize():
    summary = {"logits": {"alphas": [0.0, 0.1], "kappa": [8.0, 7.0], "verdict": "lower with LS"},
               "features": {"alphas": [0.0, 0.1], "kappa": [4.0, 5.0], "verdict": "made up by the test"}}
    lines = text._verdict_lines(summary)
    assert any("logits:" in line and "lower with LS: kappa(CE) = 8; kappa(alpha=0.1) = 7" in line for line in lines)
    assert any("made up by the test" in line for line in lines)


def _regime(**changes):
    r = {"definition": "features", "K": 10, "d_regime": "K-1", "lambda_ratio": 1.0, "per_class": None,
         "alpha_max": 0.3, "sK_from": 0.0, "sK_to": 0.1419, "verdict": "made up by the test", "boundary_from": None,
         "boundary_to": "end of the alpha range"}
    return {**r, **changes}


def test_the_regime_map_lines_render_each_regime_as_given():
    lines = text.regime_map_lines([_regime(), _regime(sK_from=0.1419, sK_to=1.0, verdict="lower", boundary_to=None,
                                                      definition="logits")])
    assert "alpha in (0, 0.3] below the threshold" in lines[0]
    assert lines[3].split() == ["features", "10", "K-1", "1", "-", "(0,", "0.1419)", "made", "up", "by", "the", "test",
                                "end", "of", "the", "alpha", "range"]
    assert lines[4].split()[:7] == ["logits", "10", "K-1", "1", "-", "[0.1419,", "1)"]
    assert lines[-1] == f"  note: {text.LOGITS_NOTE}" and "no W, H or d" in text.LOGITS_NOTE


def test_the_point_lines_say_where_a_point_lies_and_over_which_alphas():
    where = {"features": {"sK": 0.158114, "K": 10, "d_regime": ">=K", "lambda_ratio": 1.0, "alphas": [0.05, 0.1],
                          "alphas_past_threshold": [0.9], "alpha_max": 0.1, "regime": _regime(), "note": None},
             "full": {"sK": 0.158114, "K": 10, "d_regime": ">=K", "lambda_ratio": 1.0, "alphas": [0.05, 0.1],
                      "alphas_past_threshold": [0.9], "alpha_max": 0.1, "regime": None, "note": "a reason"}}
    lines = text.regime_point_lines(where)
    assert "s K = 0.158114, d >= K, lambda_W/lambda_H = 1" in lines[0] and "alpha = 0.05, 0.1 only" in lines[0]
    assert "alpha = 0.9: past the threshold" in lines[1]
    assert "features:         s K in (0, 0.1419): made up by the test over alpha in (0, 0.1]" in lines[2]
    assert lines[3] == "  full:             not on the map: a reason"
