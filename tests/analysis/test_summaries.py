"""The summaries analyses return for every reader, on synthetic results with known answers."""
import math

import pytest

from ufm.analysis.conditioning import verdicts_across
from ufm.analysis.convergence import NC1_BAND, RATE_RTOL, summarize
from ufm.analysis.tracking import summarize_trajectories
from ufm.analysis.verify import summarize_rows
from ufm.records.schema import convergence_steps_column, steps_column


def _convergence_result(rate_ce=0.9, rate_ls=0.8, nc1_ls=0.7):
    config = {"rules": ["local"], "alphas": [0.0, 0.1], "eps": [1e-3, 1e-6, 1e-9]}
    rows = []
    for a, steps in ((0.0, [100, 200]), (0.1, [50, None])):
        for seed, s in enumerate(steps):
            row = {"rule": "local", "alpha": a, "seed": seed}
            for q in ("nc1", "grad_norm", "gap", "orbit"):
                for e in config["eps"]:
                    row[steps_column(q, e)] = s
            rows.append(row)
    preds = [{"rule": "local", "alpha": 0.0, "lr": 0.1, "L_minimizer": 2.0, "rate_predicted_full": 0.9,
              "rate_measured_mean": rate_ce, "rate_predicted_nc1": 0.8, "rate_measured_nc1_mean": 0.8},
             {"rule": "local", "alpha": 0.1, "lr": 0.1, "L_minimizer": 3.0, "rate_predicted_full": 0.8,
              "rate_measured_mean": rate_ls, "rate_predicted_nc1": 0.7, "rate_measured_nc1_mean": nc1_ls}]
    return {"config": config, "rows": rows, "predictions": preds}


def test_convergence_summary_means_over_seeds_and_none_when_a_seed_did_not_reach():
    s = summarize(_convergence_result())
    ce = next(x for x in s["steps"] if (x["alpha"], x["quantity"], x["eps"]) == (0.0, "nc1", 1e-6))
    ls = next(x for x in s["steps"] if (x["alpha"], x["quantity"], x["eps"]) == (0.1, "nc1", 1e-6))
    assert (ce["mean"], ce["reached"], ce["runs"]) == (150.0, 2, 2)
    assert (ls["mean"], ls["reached"]) == (None, 1)
    assert {(v["quantity"], v["steps_ce"], v["steps_ls"], v["ratio_ce_ls"]) for v in s["ce_vs_ls"]} == {
        ("nc1", 150.0, None, None), ("orbit", 150.0, None, None)}
    assert s["lr_times_L"] == {"min": pytest.approx(0.2), "max": pytest.approx(0.3)}


def test_rate_verdicts_use_the_fixed_tolerances():
    s = summarize(_convergence_result())
    assert s["rates"] == {"worst_deviation": 0.0, "tolerance": RATE_RTOL, "matches": True}
    off = 0.9 + 1.2 * RATE_RTOL * (1 - 0.9)  # beyond the tolerance, measured nearer 1
    assert summarize(_convergence_result(rate_ce=off))["rates"]["matches"] is False
    slow = 0.7 + 2 * NC1_BAND * (1 - 0.7)
    verdicts = {v["alpha"]: v["verdict"] for v in summarize(_convergence_result(nc1_ls=slow))["nc1"]}
    assert verdicts == {0.0: "agrees", 0.1: "slower"}
    fast = 0.7 - 2 * NC1_BAND * (1 - 0.7)
    assert summarize(_convergence_result(nc1_ls=fast))["nc1"][1]["verdict"] == "faster"


def test_the_sweep_column_is_the_convergence_row_name_with_its_prefix():
    assert convergence_steps_column("nc1", 1e-6) == "conv_" + steps_column("nc1", 1e-6) == "conv_steps_nc1_1e-06"


def _run(alpha, seed, steps, converged, crossing):
    step = [0, 10, 20, 30]
    return {"alpha": alpha, "seed": seed, "f_star": 1.0, "steps": steps, "converged": converged, "step": step,
            "objective": [2.0 if s < crossing else 1.0 for s in step], "nc1": [1.0 if s < crossing else 0.0 for s in step]}


def test_trajectory_summary_compares_ls_with_ce_only_when_everything_converged():
    runs = [_run(0.0, 0, 300, True, 20), _run(0.0, 1, 100, True, 10), _run(0.1, 0, 100, True, 10)]
    s = summarize_trajectories(runs)
    assert [(a["alpha"], a["mean_steps"], a["mean_steps_gap"], a["mean_steps_nc1"]) for a in s["alphas"]] == [
        (0.0, 200.0, 15.0, 15.0), (0.1, 100.0, 10.0, 10.0)]
    assert s["ce_vs_ls"] == [{"alpha": 0.1, "steps_ce": 200.0, "steps_ls": 100.0, "ratio_ce_ls": 2.0,
                              "label_smoothing_took": "fewer"}]
    s = summarize_trajectories([_run(0.0, 0, 300, False, 99), _run(0.1, 0, 100, True, 10)])
    assert s["ce_vs_ls"] == [] and not s["all_converged"] and s["alphas"][0]["mean_steps_nc1"] is None


def test_verify_summary_counts_and_takes_worst_and_upper_median_errors():
    rows = [{"ok": True, "trivial": False, "err_logit_gap": 1e-9, "err_nc1": math.nan},
            {"ok": False, "trivial": True, "err_logit_gap": 3e-9, "err_nc1": 1e-3},
            {"ok": True, "trivial": False, "err_logit_gap": 2e-9}]
    s = summarize_rows(rows)
    assert (s["passed"], s["total"], s["trivial"]) == (2, 3, 1)
    assert s["errors"]["logit_gap"] == {"worst": 3e-9, "median": 2e-9}
    assert s["errors"]["nc1"] == {"worst": 1e-3, "median": 1e-3}
    assert s["failed"] == [rows[1]]


def test_verdicts_across_configurations():
    summaries = {"3": {"logits": {"verdict": "lower with LS"}, "features": {"verdict": "higher with LS"},
                       "full": {"verdict": "lower with LS"}, "classifier": {"verdict": "undefined"}},
                 "10": {"logits": {"verdict": "lower with LS"}, "features": {"verdict": "higher with LS"},
                        "full": {"verdict": "higher with LS"}, "classifier": {"verdict": "lower with LS"}}}
    assert verdicts_across(summaries) == {"support": ["logits"], "against": ["features"], "equal": [],
                                          "mixed": ["full"], "unknown": ["classifier"]}
    assert verdicts_across({"2": {"logits": {"verdict": "equal"}}})["equal"] == ["logits"]


def test_gd_trajectories_are_plain_records_that_summarize():
    from ufm import UFMProblem
    from ufm.analysis.tracking import gd_trajectories

    out = gd_trajectories(UFMProblem(3, 2, 3, 1e-2, 1e-2), [0.0, 0.1], [0], tol=1e-3, max_steps=5000, record_every=10)
    run = out["runs"][0]
    assert isinstance(run["step"], list) and all(isinstance(v, float) for v in run["nc1"])
    s = summarize_trajectories(out["runs"])
    assert s["all_converged"] and s["ce_vs_ls"][0]["label_smoothing_took"] in ("fewer", "more", "as many")
    assert s["alphas"][0]["mean_steps"] == run["steps"]


def test_agreement_of_symbolic_and_numeric_spectra():
    from ufm.analysis.conditioning import agreement

    pairs = [{"max_eigenvalue_error": 1e-12, "null_symbolic": 3, "null_numeric": 3},
             {"max_eigenvalue_error": None, "null_symbolic": 0, "null_numeric": 0},
             {"max_eigenvalue_error": 4e-11, "null_symbolic": 1, "null_numeric": 1}]
    assert agreement(pairs) == {"max_eigenvalue_error": 4e-11, "null_dims_agree": True}
    pairs[0]["null_numeric"] = 2
    assert agreement(pairs)["null_dims_agree"] is False


def test_all_converged_counts_every_alpha_not_only_ce():
    s = summarize_trajectories([_run(0.0, 0, 100, True, 10), _run(0.1, 0, 300, False, 99)])
    assert not s["all_converged"] and s["ce_vs_ls"] == []
    s = summarize_trajectories([_run(0.0, 0, 300, False, 99), _run(0.1, 0, 100, True, 10)])
    assert not s["all_converged"]
    s = summarize_trajectories([_run(0.0, 0, 100, True, 10), _run(0.1, 0, 100, True, 10)])
    assert s["all_converged"]
