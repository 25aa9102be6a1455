"""The claims registry: each verdict rule on synthetic records written as real run folders."""
import json
import math

import numpy as np
import pytest

from ufm.analysis import claims as C
from ufm.analysis.claims import CLAIMS, claim, evaluate_claims, matched_nc2
from ufm.analysis.evidence import Evidence, NoEvidenceError, convergence_rows, gather, verify_rows
from ufm.records.store import SweepStore

IDS = ["closed-form", "conditioning", "ufm-convergence", "nc-speed", "nc-strength", "nc2-at-nc1", "calibration",
       "generalization", "robustness", "ufm-predictions"]


def write_run(folder, alpha, seed, train, test=None, K=3, counts=None, mode="standard", lambdas=(5e-4, 5e-4),
              dim=16, train_size=300):
    """A run folder written by hand: config.json and metrics.jsonl (train records, then test records)."""
    folder.mkdir(parents=True)
    config = {"dataset": "gaussian", "model": "mlp", "alpha": alpha, "seed": seed, "mode": mode,
              "lambda_w": lambdas[0], "lambda_h": lambdas[1], "lambda_b": 0.0, "epochs": len(train) - 1,
              "device": "auto"}
    dataset = {"sizes": {"train": train_size, "val": 0, "test": 60}}
    if counts is not None:
        dataset["class_counts"] = {"train": counts, "val": [0] * K, "test": [20] * K}
    (folder / "config.json").write_text(json.dumps({"config": config, "dataset": dataset,
                                                    "model": {"num_classes": K, "feature_dim": dim}}))
    lines = [{"epoch": e, "split": "train", **rec} for e, rec in enumerate(train)]
    lines += [{"epoch": len(train) - 1, "split": "test", **rec} for rec in ([test] if test else [])]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return folder


def _train(final_error=0.0, nc1=(1.0, 0.3, 0.1), nc2=(0.9, 0.6, 0.5), nc3=(1.0, 0.8, 0.7), p_off=0.01):
    errors = [0.5] + [final_error] * (len(nc1) - 1)
    return [{"error": e, "nc1": n1, "nc2_h": n2, "nc2_w": n2, "nc3": n3, "p_off": p_off}
            for e, n1, n2, n3 in zip(errors, nc1, nc2, nc3)]


def _group(tmp_path, seeds, ce, ls, alpha=0.1, **kw):
    """CE and LS runs per seed: ``ce(seed)`` and ``ls(seed)`` give (train, test) records."""
    runs = []
    for s in seeds:
        for a, make in ((0.0, ce), (alpha, ls)):
            train, test = make(s)
            runs.append(write_run(tmp_path / f"alpha={a}-seed={s}", a, s, train, test, **kw))
    return runs


def _by_id(results):
    return {r["id"]: r for r in results}


def _test(error, **extra):
    return {"error": error, "ece": 0.1, "ece_ts": 0.05, **extra}


def test_the_registry_has_every_claim_with_its_text():
    assert [c.id for c in CLAIMS] == IDS
    for c in CLAIMS:
        assert c.statement and c.definition and c.evidence and c.criterion
    assert "no W, H or d" in claim("conditioning").definition
    with pytest.raises(ValueError, match="no claim 'nope'; the claims are closed-form"):
        claim("nope")


def test_a_clear_effect_over_five_seeds_holds_and_its_reverse_fails(tmp_path):
    runs = _group(tmp_path / "a", range(5), lambda s: (_train(), _test(0.20 + 0.01 * s)),
                  lambda s: (_train(), _test(0.15 + 0.01 * s)))
    r = _by_id(evaluate_claims(runs))["generalization"]
    assert r["verdict"] == "holds" and r["method"] == "sign test" and r["n"] == 5
    assert r["effect"] == pytest.approx(0.05) and r["interval"] == pytest.approx([0.05, 0.05])
    assert r["parts"][0]["seeds"] == [0, 1, 2, 3, 4] and str(tmp_path / "a" / "alpha=0.0-seed=0") in r["evidence"]
    back = _group(tmp_path / "b", range(5), lambda s: (_train(), _test(0.15 + 0.01 * s)),
                  lambda s: (_train(), _test(0.20 + 0.01 * s)))
    assert _by_id(evaluate_claims(back))["generalization"]["verdict"] == "fails"


def test_a_tie_gives_no_holds(tmp_path):
    runs = _group(tmp_path, range(5), lambda s: (_train(), _test(0.20)),
                  lambda s: (_train(), _test(0.20 if s == 2 else 0.15)))
    r = _by_id(evaluate_claims(runs))["generalization"]
    assert r["verdict"] == "inconclusive" and r["interval"][0] == 0.0


def test_two_seeds_are_inconclusive(tmp_path):
    runs = _group(tmp_path, range(2), lambda s: (_train(), _test(0.9)), lambda s: (_train(), _test(0.1)))
    r = _by_id(evaluate_claims(runs))["generalization"]
    assert r["verdict"] == "inconclusive" and "fewer than 3" in r["reason"]


def test_a_group_outside_the_terminal_phase_is_not_applicable(tmp_path):
    runs = _group(tmp_path, range(5), lambda s: (_train(final_error=0.21 if s == 3 else 0.0), _test(0.2)),
                  lambda s: (_train(nc1=(1.0, 0.1, 0.01)), _test(0.1)))
    results = _by_id(evaluate_claims(runs))
    for cid in ("nc-speed", "nc-strength", "nc2-at-nc1"):
        r = results[cid]
        assert r["verdict"] == "not-applicable", cid
        assert all("training error 0.21 at the last epoch in alpha=0.0-seed=3: not in the terminal phase" in p["reason"]
                   for p in r["parts"])
    assert results["generalization"]["verdict"] == "holds"  # not a claim about the terminal phase
    geometry = [p for p in results["ufm-predictions"]["parts"] if "falls" in p["label"]]
    assert geometry and all(p["verdict"] == "not-applicable" for p in geometry)


def test_one_percent_training_error_is_still_the_terminal_phase(tmp_path):
    runs = _group(tmp_path, range(5), lambda s: (_train(final_error=0.01), _test(0.2)),
                  lambda s: (_train(nc1=(1.0, 0.1, 0.01)), _test(0.1)))
    r = _by_id(evaluate_claims(runs))["nc-strength"]
    nc1 = next(p for p in r["parts"] if p["label"] == "alpha=0.1 NC1")
    assert nc1["verdict"] == "holds" and nc1["effects"] == pytest.approx([1.0] * 5)  # log10(0.1 / 0.01)


def test_nc_strength_and_speed_effects(tmp_path):
    # CE: NC1 1 -> 0.3 -> 0.1; LS: 1 -> 0.05 -> 0.02. Target = 0.1 (the larger final): CE at epoch 2, LS at 1.
    runs = _group(tmp_path, range(5), lambda s: (_train(), _test(0.2)),
                  lambda s: (_train(nc1=(1.0, 0.05, 0.02), nc2=(0.9, 0.45, 0.4), nc3=(1.0, 0.9, 0.75)), _test(0.2)))
    results = _by_id(evaluate_claims(runs))
    parts = {p["label"]: p for p in results["nc-strength"]["parts"]}
    assert parts["alpha=0.1 NC1"]["effects"] == pytest.approx([math.log10(0.1 / 0.02)] * 5)
    assert parts["alpha=0.1 NC2 (means)"]["effects"] == pytest.approx([0.1] * 5)
    assert parts["alpha=0.1 NC3"]["verdict"] == "fails"  # LS ends with the higher NC3 (0.75 > 0.7)
    assert results["nc-strength"]["verdict"] == "inconclusive" and "fails for alpha=0.1 NC3" in \
        results["nc-strength"]["reason"]
    speed = {p["label"]: p for p in results["nc-speed"]["parts"]}
    assert speed["alpha=0.1 NC1"]["effects"] == [1.0] * 5 and speed["alpha=0.1 NC1"]["verdict"] == "holds"
    assert speed["alpha=0.1 NC2 (means)"]["effects"] == [1.0] * 5  # target 0.5: CE at 2, LS at 1


def test_every_alpha_must_support_the_claim(tmp_path):
    runs = _group(tmp_path, range(5), lambda s: (_train(), _test(0.2)), lambda s: (_train(), _test(0.1)))
    runs += [write_run(tmp_path / f"alpha=0.2-seed={s}", 0.2, s, _train(), _test(0.2 + 0.01 * (s - 2)))
             for s in range(5)]
    r = _by_id(evaluate_claims(runs))["generalization"]
    verdicts = {p["label"]: p["verdict"] for p in r["parts"]}
    assert verdicts == {"alpha=0.1 test error": "holds", "alpha=0.2 test error": "inconclusive"}
    assert r["verdict"] == "inconclusive" and r["effect"] is None
    assert "holds for alpha=0.1 test error" in r["reason"] and "inconclusive for alpha=0.2" in r["reason"]


def _trajectory(log_nc1, offset, bump=None):
    """NC2 = 0.6 + 0.1 log10 NC1 + offset along log10 NC1 values; ``bump``: (index, log10 NC1, NC2) of a
    record that rises above the running minimum (its NC2 must not count)."""
    records = [{"error": 0.0, "nc1": 10.0 ** x, "nc2_h": 0.6 + 0.1 * x + offset, "nc2_w": 0.3 + 0.2 * x + offset,
                "nc3": 0.5, "p_off": 0.01} for x in log_nc1]
    if bump is not None:
        i, x, v = bump
        records.insert(i, {"error": 0.0, "nc1": 10.0 ** x, "nc2_h": v, "nc2_w": v, "nc3": 0.5, "p_off": 0.01})
    return records


def test_matched_nc1_statistic_on_trajectories_with_a_known_answer(tmp_path):
    ce = _trajectory(np.linspace(0.0, -3.0, 7), 0.05, bump=(3, 0.5, 9.0))  # NC1 rises once: ignored
    ls = _trajectory(np.linspace(0.0, -4.0, 9), 0.0)
    assert matched_nc2(ce, ls, "nc2_h") == pytest.approx(0.05, abs=1e-12)
    assert matched_nc2(ce, ls, "nc2_w") == pytest.approx(0.05, abs=1e-12)
    # piecewise linear: LS bends at log10 NC1 = -1; the mean of the difference over [-3, 0] is exact
    ls_bent = [dict(r, nc2_h=r["nc2_h"] + 0.03 * max(0.0, -1 - math.log10(r["nc1"]))) for r in ls]
    # difference 0.05 - 0.03 max(0, -1 - x) on [-3, 0]: mean = 0.05 - 0.03 * (2 * 2 / 2) / 3 = 0.03
    assert matched_nc2(ce, ls_bent, "nc2_h") == pytest.approx(0.03, abs=1e-12)
    runs = _group(tmp_path, range(5), lambda s: (_trajectory(np.linspace(0, -3, 9), 0.01 * (s + 1)), _test(0.2)),
                  lambda s: (_trajectory(np.linspace(0.2, -4, 9), 0.0), _test(0.2)))
    r = _by_id(evaluate_claims(runs))["nc2-at-nc1"]
    parts = {p["label"]: p for p in r["parts"]}
    assert parts["alpha=0.1 NC2 (means)"]["effects"] == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05])
    assert r["verdict"] == "holds"


def test_matched_nc1_needs_half_a_decade_of_overlap(tmp_path):
    runs = _group(tmp_path, range(5), lambda s: (_trajectory(np.linspace(0, -1, 5), 0.05), _test(0.2)),
                  lambda s: (_trajectory(np.linspace(-0.7, -3, 5), 0.0), _test(0.2)))
    r = _by_id(evaluate_claims(runs))["nc2-at-nc1"]
    assert r["verdict"] == "not-applicable"
    assert "overlap by 0.30 decades, less than 0.5" in r["parts"][0]["reason"]


def _ufm_group(tmp_path, counts, seeds=range(5), train_size=300):
    return _group(tmp_path, seeds, lambda s: (_train(p_off=0.0100 + 0.0001 * s), _test(0.2)),
                  lambda s: (_train(p_off=0.0100 + 0.1 / 3 + 0.0001 * s), _test(0.2)), counts=counts,
                  train_size=train_size)


def test_unbalanced_classes_make_the_closed_form_checks_not_applicable(tmp_path):
    r = _by_id(evaluate_claims(_ufm_group(tmp_path / "u", [159, 183, 170], train_size=512)))["ufm-predictions"]
    p_off = next(p for p in r["parts"] if p["label"].startswith("alpha=0.1 p_off"))
    assert p_off["verdict"] == "not-applicable" and p_off["reason"] == "classes unbalanced, 159-183 per class"
    within = _by_id(evaluate_claims(_ufm_group(tmp_path / "w", [100, 101, 100], train_size=301)))["ufm-predictions"]
    p_off = next(p for p in within["parts"] if p["label"].startswith("alpha=0.1 p_off"))
    assert p_off["verdict"] == "holds" and p_off["effects"] == pytest.approx([0.25] * 5, abs=1e-9)
    unknown = _by_id(evaluate_claims(_ufm_group(tmp_path / "n", None)))["ufm-predictions"]
    p_off = next(p for p in unknown["parts"] if p["label"].startswith("alpha=0.1 p_off"))
    assert p_off["verdict"] == "holds" and "balance could not be checked" in p_off["reason"]
    assert "n = N/K = 100 assumed" in p_off["reason"]


def _closed_form_train(alpha, K=4, n=100, lambdas=(5e-3, 5e-5), scale=1.0):
    from ufm.theory.closed_form import closed_form_arrays

    cf = closed_form_arrays(alpha, K, n, *lambdas)
    rec = {q: float(getattr(cf, q)) * scale for q in ("w_norm", "h_norm", "logit_gap", "p_true")}
    return [{"error": 0.5, "nc1": 1.0, "nc2_h": 0.9, "nc2_w": 0.9, "p_off": 0.1, **{q: 0.0 for q in rec}},
            {"error": 0.0, "nc1": 0.1, "nc2_h": 0.5, "nc2_w": 0.5, "p_off": 0.1, **rec}]


def test_ufm_style_runs_at_the_closed_form(tmp_path):
    runs = [write_run(tmp_path / f"s{s}", 0.1, s, _closed_form_train(0.1, scale=1 + 0.01 * s), K=4, mode="ufm",
                      lambdas=(5e-3, 5e-5), train_size=400, counts=[100] * 4) for s in range(5)]
    r = _by_id(evaluate_claims(runs))["ufm-predictions"]
    part = next(p for p in r["parts"] if "closed form" in p["label"])
    assert part["verdict"] == "holds" and part["effects"] == pytest.approx([0.05 - 0.01 * s for s in range(5)])
    far = [write_run(tmp_path / f"f{s}", 0.1, s, _closed_form_train(0.1, scale=1.2), K=4, mode="ufm",
                     lambdas=(5e-3, 5e-5), train_size=400, counts=[100] * 4) for s in range(5)]
    part = next(p for p in _by_id(evaluate_claims(far))["ufm-predictions"]["parts"] if "closed form" in p["label"])
    assert part["verdict"] == "fails"
    odd = [write_run(tmp_path / f"o{s}", 0.1, s, _closed_form_train(0.1), K=4, mode="ufm", lambdas=(5e-3, 5e-5),
                     train_size=400, counts=[90, 110, 100, 100]) for s in range(5)]
    part = next(p for p in _by_id(evaluate_claims(odd))["ufm-predictions"]["parts"] if "closed form" in p["label"])
    assert part["verdict"] == "not-applicable" and part["reason"] == "classes unbalanced, 90-110 per class"


def test_geometry_falls_by_more_than_the_spread_across_seeds(tmp_path):
    # terminal phase from epoch 1 (error 0): NC2 0.6 -> 0.5 - 0.002 s; drop 0.1 + 0.002 s, spread 0.008
    def make(s):
        return [{"error": 0.5, "nc1": 1.0, "nc2_h": 0.9, "nc2_w": 0.9, "p_off": 0.01},
                {"error": 0.0, "nc1": 0.5, "nc2_h": 0.6, "nc2_w": 0.6, "p_off": 0.01},
                {"error": 0.0, "nc1": 0.2, "nc2_h": 0.5 - 0.002 * s, "nc2_w": 0.6, "p_off": 0.01}], _test(0.2)
    r = _by_id(evaluate_claims(_group(tmp_path, range(5), make, make)))["ufm-predictions"]
    parts = {p["label"]: p for p in r["parts"]}
    assert parts["alpha=0 NC2 (means) falls beyond the seed range"]["effects"] == pytest.approx([0.1 + 0.002 * s - 0.008 for s in range(5)])
    assert parts["alpha=0 NC2 (means) falls beyond the seed range"]["verdict"] == "holds"
    assert parts["alpha=0.1 NC2 (classifier) falls beyond the seed range"]["verdict"] == "inconclusive"  # no fall: effects 0


def test_calibration_reports_the_effect_after_scaling_beside_it(tmp_path):
    runs = _group(tmp_path, range(5), lambda s: (_train(), {"error": 0.2, "ece": 0.15, "ece_ts": 0.04}),
                  lambda s: (_train(), {"error": 0.2, "ece": 0.05 + 0.001 * s, "ece_ts": 0.05}))
    r = _by_id(evaluate_claims(runs))["calibration"]
    assert r["verdict"] == "holds" and r["interval"] == pytest.approx([0.096, 0.1])
    scaled = r["parts"][0]["after_scaling"]
    assert scaled["mean"] == pytest.approx(-0.01) and "verdict" not in scaled


def test_robustness_needs_the_noise_records(tmp_path):
    old = _group(tmp_path / "old", range(5), lambda s: (_train(), _test(0.2)), lambda s: (_train(), _test(0.1)))
    r = _by_id(evaluate_claims(old))["robustness"]
    assert r["verdict"] == "not-evaluated"
    assert "no error_noise_0.1 in the last test record" in r["parts"][0]["reason"]
    noise = {f"error_noise_{s}": 0.3 for s in ("0.1", "0.25", "0.5")}
    new = _group(tmp_path / "new", range(5), lambda s: (_train(), _test(0.2, **noise)),
                 lambda s: (_train(), _test(0.1, **{k: 0.25 for k in noise})))
    r = _by_id(evaluate_claims(new))["robustness"]
    assert r["verdict"] == "holds" and len(r["parts"]) == 3


def test_a_group_without_ce_and_no_runs_at_all_are_not_evaluated(tmp_path):
    runs = [write_run(tmp_path / f"s{s}", 0.1, s, _train(), _test(0.1)) for s in range(3)]
    r = _by_id(evaluate_claims(runs))["generalization"]
    assert r["verdict"] == "not-evaluated" and r["reason"] == "no group of runs holds both alpha = 0 and an alpha > 0"
    results = evaluate_claims(evidence=Evidence())
    assert all(r["verdict"] == "not-evaluated" for r in results)
    assert _by_id(results)["nc-speed"]["reason"] == "no training runs given: pass experiment, run or demo folders"


# -- the UFM claims on synthetic evidence --------------------------------------------------------

def _regime(definition, verdict, K=3, d="K-1", lo=0.0, hi=1.0, ratio=1.0):
    return {"definition": definition, "K": K, "d_regime": d, "lambda_ratio": ratio, "sK_from": lo, "sK_to": hi,
            "verdict": verdict}


def test_conditioning_holds_only_where_ls_lowers_it_in_every_regime():
    regimes = [_regime("logits", "lower"), _regime("logits", "lower", K=10, d=">=K"),
               _regime("full", "lower", lo=0.0, hi=0.4), _regime("full", "higher", K=10, d=">=K", lo=0.4, hi=1.0),
               _regime("features", "lower"), _regime("features", "equal", K=2)]
    r = claim("conditioning").evaluate(Evidence(regimes=regimes))
    parts = {p["label"]: p for p in r["parts"]}
    assert {k: p["verdict"] for k, p in parts.items()} == {"logits": "holds", "full": "fails",
                                                            "features": "inconclusive"}
    assert parts["full"]["reason"] == ("LS lowers it at K=3 d=K-1 lambda ratio 1: sK in (0, 0.4); "
                                       "LS raises it at K=10 d=>=K lambda ratio 1: sK in (0.4, 1)")
    assert parts["full"]["measured"] == "lower in 1 of 2 regimes"
    assert r["verdict"] == "inconclusive"
    assert claim("conditioning").evaluate(Evidence(regimes=regimes[:2]))["verdict"] == "holds"
    mixed = claim("conditioning").evaluate(Evidence(regimes=[_regime("full", "mixed")]))
    assert mixed["verdict"] == "fails" and "mixed at K=3" in mixed["reason"]
    missing = claim("conditioning").evaluate(Evidence(missing={"regimes": "not available"}))
    assert missing["verdict"] == "not-evaluated" and missing["reason"] == "not available"


def _verify_row(max_error, converged=True, dim=3):
    return {"num_classes": 3, "per_class": 4, "dim": dim, "lambda_w": 5e-3, "lambda_h": 5e-3, "lambda_b": 0.0,
            "alpha": 0.1, "seed": 0, "max_error": max_error, "num_converged": converged}


def test_closed_form_verdicts():
    def verdict(rows):
        return claim("closed-form").evaluate(Evidence(verify=verify_rows(rows, "here")))

    ok = verdict([_verify_row(1e-9), _verify_row(3e-8), _verify_row(0.5, dim=1)])  # d < K-1: not counted
    assert ok["verdict"] == "holds" and ok["effect"] == 3e-8 and ok["n"] == 2
    assert ok["reason"] == "2 of 2 points agree with the closed form to 1e-06 (worst error 3e-08)"
    bad = verdict([_verify_row(1e-9), _verify_row(2e-3)])
    assert bad["verdict"] == "fails" and "1 disagree, e.g. K=3 n=4 d=3" in bad["reason"]
    unconverged = verdict([_verify_row(1e-9), _verify_row(1e-3, converged=False)])
    assert unconverged["verdict"] == "inconclusive" and "1 did not converge" in unconverged["reason"]
    assert claim("closed-form").evaluate(Evidence())["verdict"] == "not-evaluated"


def _convergence_result(d, steps_ce, steps_ls, recorded=2000):
    """A convergence() result (its config and rows) with NC1 steps to 1e-3 per seed."""
    rows = []
    for alpha, steps in ((0.0, steps_ce), (0.1, steps_ls)):
        rows += [{"rule": "local", "alpha": alpha, "seed": s, "steps_recorded": recorded, "diverged_at": None,
                  "steps_nc1_0.001": v, "steps_orbit_0.001": 100} for s, v in enumerate(steps)]
    problem = {"num_classes": 3, "per_class": 2, "dim": d, "lambda_w": 5e-3, "lambda_h": 5e-3, "lambda_b": 0.0,
               "alpha": 0.0, "loss": "label_smoothing"}
    return {"config": {"problem": problem}, "rows": rows}


def test_convergence_pairs_by_configuration_and_seed_per_regime():
    rows = convergence_rows(_convergence_result(2, [300, 310, 320, 330, 340], [200, 200, 200, 200, 200]), "x")
    rows += convergence_rows(_convergence_result(3, [300] * 5, [None, 250, 250, 250, 250], recorded=900), "y")
    r = claim("ufm-convergence").evaluate(Evidence(convergence=rows))
    parts = {p["label"]: p for p in r["parts"]}
    assert list(parts) == ["d=K-1 NC1 to 0.001", "d=K-1 orbit distance to 0.001", "d>=K NC1 to 0.001",
                           "d>=K orbit distance to 0.001"]
    assert parts["d=K-1 NC1 to 0.001"]["effects"] == [100, 110, 120, 130, 140]
    assert parts["d=K-1 NC1 to 0.001"]["verdict"] == "holds"
    assert parts["d=K-1 orbit distance to 0.001"]["verdict"] == "inconclusive"  # ties
    # an LS run that never reached 1e-3 counts as reaching it at the end of the longer run (900): 300 - 900
    assert parts["d>=K NC1 to 0.001"]["effects"] == [-600, 50, 50, 50, 50]
    assert r["verdict"] == "inconclusive"


# -- evidence from folders -----------------------------------------------------------------------

def test_gather_reads_demo_and_sweep_folders(tmp_path):
    demo = tmp_path / "demo"
    (demo / "records").mkdir(parents=True)
    (demo / "records" / "verify.json").write_text(json.dumps({"rows": [_verify_row(1e-9), _verify_row(2e-9)]}))
    conv = _convergence_result(2, [300] * 5, [200] * 5)
    (demo / "records" / "convergence.json").write_text(json.dumps({"settings": conv["config"], "rows": conv["rows"]}))
    (demo / "records" / "regimes.json").write_text(json.dumps({"map": [_regime("logits", "lower")]}))
    for s in range(5):
        for a in (0.0, 0.1):
            write_run(demo / "experiment" / "runs" / f"alpha={a}-seed={s}", a, s, _train(), _test(0.2 - a))
    (demo / "experiment" / "experiment.json").write_text(json.dumps({"name": "x", "runs": [
        f"alpha={a}-seed={s}" for s in range(5) for a in (0.0, 0.1)]}))
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    with SweepStore(sweep / "sweep.sqlite") as store:
        store.put_many([{"key": f"k{s}", "config": {**{k: v for k, v in _verify_row(0).items() if k in (
            "num_classes", "per_class", "dim", "lambda_w", "lambda_h", "lambda_b", "alpha", "seed")}, "seed": s},
            "result": {"max_error": 1e-8, "num_status": "converged", "conv_steps_nc1_0.001": 100,
                       "conv_steps_recorded": 500, "conv_diverged_at": None},
            "components": ["closed-form", "solve", "convergence"], "status": "ok", "error": None} for s in range(2)])
    ev = gather([demo, sweep])
    assert len(ev.verify) == 4 and len(ev.convergence) == 12 and len(ev.runs) == 10 and len(ev.regimes) == 1
    results = _by_id(evaluate_claims(evidence=ev))
    assert results["closed-form"]["verdict"] == "holds"
    assert "demo/records/verify.json (2 points)" in results["closed-form"]["evidence"]
    assert "sweep/sweep.sqlite (2 points)" in results["closed-form"]["evidence"]
    assert results["ufm-convergence"]["verdict"] == "inconclusive"
    assert results["conditioning"]["verdict"] == "holds"
    assert results["generalization"]["verdict"] == "holds" and "demo/experiment (10 runs)" in \
        results["generalization"]["evidence"]
    assert len(gather([demo, demo / "experiment"]).runs) == 10  # a run met twice counts once


def test_gather_refuses_a_folder_without_records(tmp_path):
    with pytest.raises(NoEvidenceError, match="holds none of the records ufm claims reads: expected "
                                              r"experiment.json \(an experiment\)"):
        gather([tmp_path])
    with pytest.raises(NoEvidenceError, match="is not a folder"):
        gather([tmp_path / "none"])


def test_computed_evidence_includes_the_regime_map(monkeypatch):
    from ufm.analysis import evidence

    monkeypatch.setitem(evidence.DEFAULT_VERIFY, "classes", [3])
    monkeypatch.setattr(evidence, "DEFAULT_CONVERGENCE", {**evidence.DEFAULT_CONVERGENCE, "problems": [
        evidence.DEFAULT_CONVERGENCE["problems"][0]], "seeds": [0, 1, 2], "eps": [1e-3]})
    monkeypatch.setattr(evidence, "DEFAULT_REGIMES", {"classes": [3], "alpha_max": 0.3, "lambda_ratios": [1]})
    results = _by_id(evaluate_claims())
    assert results["closed-form"]["verdict"] == "holds" and results["closed-form"]["evidence"].startswith("computed")
    assert results["conditioning"]["evidence"].startswith("computed: regime_map(classes=[3]")
    parts = {p["label"]: p["verdict"] for p in results["conditioning"]["parts"]}
    assert parts["logits"] == "holds" and parts["features"] == "fails"  # K p_true falls with alpha; features: mixed
    assert all(p["n"] == 3 for p in results["ufm-convergence"]["parts"])
    assert results["generalization"]["verdict"] == "not-evaluated"


def test_the_claims_use_validates_checks():
    """One implementation of each check: the shared functions are those of ufm.analysis.networks."""
    from ufm.analysis import networks

    for name in ("first_epoch", "p_off_excess", "relative_spread", "terminal_phase_start", "ufm_run_checks",
                 "group_runs", "final_value"):
        assert getattr(C, name) is getattr(networks, name)


def test_balance_is_checked_on_every_run_not_only_until_one_lacks_counts():
    from ufm.analysis.claims import _balance

    bare = {"meta": {"dataset": {"sizes": {"train": 300}}}}
    counted = lambda counts: {"meta": {"dataset": {"sizes": {"train": sum(counts)},  # noqa: E731
                                                   "class_counts": {"train": counts}}}}
    assert _balance({"K": 3, "runs": [bare, counted([150, 100, 50])]}) == ("classes unbalanced, 50-150 per class", "")
    unmet, note = _balance({"K": 3, "runs": [bare, counted([100, 100, 100])]})
    assert unmet is None and "balance could not be checked" in note and "n = N/K = 100 assumed" in note
    assert _balance({"K": 3, "runs": [counted([100, 100, 100])]}) == (None, "")


def test_runs_recorded_before_a_key_existed_group_with_new_ones():
    from ufm.analysis.networks import group_runs

    old = {"config": {"dataset": "gaussian", "alpha": 0.0, "seed": 0, "mode": "standard"}}
    new = {"config": {"dataset": "gaussian", "alpha": 0.1, "seed": 0, "mode": "standard", "nc_convention": "ufm",
                      "memory_format": "contiguous", "autocast": "off"}}
    other = {"config": {**new["config"], "nc_convention": "guo2025"}}
    assert group_runs([old, new, other]) == [[old, new], [other]]
