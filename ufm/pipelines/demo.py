"""``ufm demo``: a short version of everything, written as raw records, then a report.

Stages (each writes one record under ``OUT/records/`` atomically, with its full
configuration and the library versions; a stage whose record already holds the same
configuration and ufm version is reused, so an interrupted demo resumes where it stopped):

1. ``derivation``: the symbolic derivation (``OUT/derivation.md``) and, except in the quick
   version, the Hessian derivation (``OUT/hessian.md``, about a minute);
2. ``verify``: numeric vs closed form over the verification grid;
3. ``alpha_sweep``: numeric solutions and the closed form against alpha;
4. ``trajectory``: gradient descent from random starts, CE vs LS, with f, ||grad f||
   and NC1 recorded along the way;
5. ``conditioning``: Hessian spectra and condition numbers against alpha for several K
   under each definition (symbolic), and a symbolic-vs-numeric check;
6. ``regimes``: the regime map of the conditioning claim (``ufm.analysis.regimes``: where in
   s K label smoothing lowers the condition number, per definition, K, d-regime and
   lambda_W/lambda_H) and where the conditioning stage's points lie on it;
7. ``convergence``: gradient descent under the stated step-size rules, steps to each
   tolerance and measured vs predicted local rates;
8. ``sweep``: a small sweep (``ufm sweep``) into ``OUT/sweep/``, resumable on its own;
9. ``experiment``: the ``mnist1d-mlp`` experiment in short form (CE vs LS networks with NC
   and calibration records, ``ufm experiment``) into ``OUT/experiment/``, and one UFM-style
   run on Gaussian data (``OUT/experiment-ufm/``) confronted with the closed form; both
   resumable on their own;
10. ``claims``: every claim of the paper judged on the records above (``ufm claims OUT``),
    judged again on every run, since it reads the other stages' records.

The figures and ``OUT/report.md`` are then built from the records alone
(``ufm report OUT`` rebuilds them without re-running anything).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import torch

from ufm._core.io import atomic_write_text, environment, read_json, writable_folder, write_json
from ufm._version import __version__
from ufm.analysis.tracking import gd_trajectories, summarize_trajectories
from ufm.analysis.verify import alpha_sweep, default_grid, summarize_rows, verify
from ufm.problem import UFMProblem

__all__ = ["run_demo", "demo_config"]


def demo_config(quick: bool = False) -> dict:
    """The demo's configuration; ``quick`` is a reduced version for tests."""
    return {
        "verify": {"per_class": 10, "seeds": [0] if quick else [0, 1], "classes": [3, 5] if quick else [3, 5, 10],
                   "tol": 1e-6, "method": "lbfgs", "solver_tol": 1e-11},
        "alpha_sweep": {"num_classes": 10, "per_class": 10, "dim": 10, "lambda_w": 5e-3, "lambda_h": 5e-3,
                        "lambda_b": 0.0, "alphas": [round(0.05 * i, 2) for i in range(0, 19, 3 if quick else 1)],
                        "method": "lbfgs", "solver_tol": 1e-11, "seed": 0},
        "conditioning": {"classes": [3, 5, 10], "per_class": 10, "lambda_w": 5e-3, "lambda_h": 5e-3, "lambda_b": 0.0,
                         "alphas": [round(0.025 * i, 3) for i in range(0, 13, 2 if quick else 1)],
                         "numeric_check": {"num_classes": 4, "dim": 5, "per_class": 3, "alphas": [0.0, 0.1]}},
        "regimes": {"classes": [3, 5, 10], "alpha_max": 0.3, "lambda_ratios": [1, 10, 100], "per_class": 10,
                    "figure": {"K": 10, "lambda_ratio": 1}},
        "convergence": {"num_classes": 5, "per_class": 5, "dim": 5, "lambda_w": 5e-3, "lambda_h": 5e-3,
                        "lambda_b": 0.0, "alphas": [0.0, 0.1], "seeds": [0] if quick else [0, 1, 2],
                        "eps": [1e-3, 1e-6, 1e-9], "rules": ["local"] if quick else ["local", "common"],
                        "max_steps": 20000, "record_every": 10},
        "sweep": {"classes": [3, 5, 10], "alphas": [round(0.05 * i, 2) for i in range(7)], "dims": ["K"],
                  "per_class": [10], "lambda_w": [5e-3, 1e-2], "lambda_h": [5e-3], "lambda_b": [0.0], "seeds": 1,
                  "what": ["closed-form", "conditioning"] if quick else ["closed-form", "solve", "conditioning"]},
        "experiment": {"name": "mnist1d-mlp", "epochs": 4 if quick else 60, "milestones": [] if quick else [30, 45],
                       "eval_every": 2, "alphas": [0.0, 0.1] if quick else [0.0, 0.05, 0.1, 0.2], "seeds": [0],
                       "workers": 0 if quick else 2,
                       "ufm_run": {"dataset": "gaussian", "val_fraction": 0.0, "model": "mlp",
                                   "dataset_options": {"num_classes": 4, "dim": 16, "train_size_per_class": 100,
                                                       "test_size_per_class": 50},
                                   "model_options": {"width": 32, "depth": 2, "feature_relu": False},
                                   "mode": "ufm", "lambda_w": 5e-3, "lambda_h": 5e-5, "alpha": 0.1,
                                   "epochs": 100 if quick else 1000, "batch_size": 400, "lr": 0.4,
                                   "schedule": "constant", "eval_every": 25 if quick else 50}},
        "trajectory": {"num_classes": 10, "per_class": 10, "dim": 10, "lambda_w": 5e-3, "lambda_h": 5e-3,
                       "lambda_b": 0.0, "alphas": [0.0, 0.1], "seeds": [0] if quick else [0, 1, 2],
                       "method": "gd", "lr": 0.5, "tol": 1e-10, "max_steps": 2000 if quick else 30000,
                       "record_every": 20 if quick else 25},
    }


def _stage(out: Path, name: str, config: dict, compute: Callable[[dict], dict], force: bool, log) -> dict:
    path = out / "records" / f"{name}.json"
    if path.exists() and not force:
        try:
            old = read_json(path)
            if old.get("config") == config and old.get("environment", {}).get("ufm") == __version__:
                log(f"[{name}] reusing {path}")
                return old
        except (ValueError, OSError):
            pass  # unreadable: recompute
    log(f"[{name}] running ...")
    t0 = time.perf_counter()
    data = compute(config)
    record = {"stage": name, "config": config, "environment": environment(),
              "seconds": round(time.perf_counter() - t0, 3), **data}
    write_json(path, record)
    log(f"[{name}] done in {record['seconds']:.1f} s -> {path}")
    return read_json(path)  # what later stages and the report see is what was stored


def _derivation(config: dict) -> dict:
    from ufm.theory.symbolic.minimizer import derive_minimizer, to_markdown

    d = derive_minimizer(config["loss"])
    md = to_markdown(d)
    hessian = None
    if config.get("hessian"):
        from ufm.theory.symbolic.hessian import derive_hessian, hessian_to_markdown

        hessian = hessian_to_markdown(derive_hessian())
    return {"markdown": md, "hessian_markdown": hessian,
            "latex": {k: d.latex(k, in_s=True) for k in ("logit_gap", "p_true", "p_off", "threshold")},
            "latex_ce": {k: d.special_case_latex(k, alpha=0) for k in ("logit_gap", "p_true", "threshold")}}


def _verify(config: dict) -> dict:
    grid = default_grid(config["per_class"], config["seeds"], config["classes"])
    rows = verify(grid, tol=config["tol"], method=config["method"], solver_tol=config["solver_tol"])
    return {"rows": rows, "summary": summarize_rows(rows)}


def _alpha_sweep(config: dict) -> dict:
    c = config
    return alpha_sweep(UFMProblem.from_config(c), c["alphas"], method=c["method"], solver_tol=c["solver_tol"],
                       seed=c["seed"])


def _trajectory(config: dict) -> dict:
    c = config
    out = gd_trajectories(UFMProblem.from_config(c), c["alphas"], c["seeds"], method=c["method"], lr=c["lr"],
                          tol=c["tol"], max_steps=c["max_steps"], record_every=c["record_every"])
    out["summary"] = summarize_trajectories(out["runs"])
    return out


def _conditioning(config: dict) -> dict:
    from ufm.analysis.conditioning import agreement, compare_sources, conditioning, summarize, verdicts_across

    c = config
    spectra, summaries = [], {}
    for K in c["classes"]:
        p = UFMProblem.from_config(c, num_classes=K, dim=K, alpha=0.0)
        sp = conditioning(p, alphas=c["alphas"])
        spectra += [s.to_dict() for s in sp]
        summaries[str(K)] = summarize(sp)
    nc = c["numeric_check"]
    p = UFMProblem.from_config({**c, **nc}, alpha=0.0)
    pairs = compare_sources(conditioning(p, alphas=nc["alphas"], numeric=True))
    return {"spectra": spectra, "summary": summaries, "verdicts": verdicts_across(summaries), "numeric_check": pairs,
            "agreement": agreement(pairs)}


def _regimes(conditioning: dict):
    """The regime map of the conditioning claim, and where the conditioning stage's points lie on it."""
    def compute(config: dict) -> dict:
        from ufm.analysis.regimes import regime_map, regime_of

        c = config
        regimes = regime_map(classes=c["classes"], alpha_max=c["alpha_max"], lambda_ratios=c["lambda_ratios"],
                             per_class=c["per_class"])
        points = {str(K): regime_of(UFMProblem.from_config(conditioning, num_classes=K, dim=K, alpha=0.0),
                                    alphas=conditioning["alphas"]) for K in conditioning["classes"]}
        return {"map": regimes, "points": points}
    return compute


def _claims(out: Path):
    def compute(config: dict) -> dict:
        from ufm.analysis.claims import evaluate_claims

        return {"results": evaluate_claims([out])}
    return compute


def _convergence(config: dict) -> dict:
    from ufm.analysis.convergence import convergence

    c = config
    p = UFMProblem.from_config(c, alpha=0.0)
    out = convergence(p, alphas=c["alphas"], seeds=c["seeds"], eps=c["eps"], rules=c["rules"],
                      max_steps=c["max_steps"], record_every=c["record_every"])
    out["settings"] = out.pop("config")  # the stage record's "config" is the stage configuration
    return out


def _sweep(out: Path):
    def compute(config: dict) -> dict:
        from ufm.sweep import SweepSpec, run_sweep

        summary = run_sweep(SweepSpec(**config), out / "sweep", workers=0)
        return {"folder": "sweep", "summary": summary}
    return compute


def _replace_if_other(marker: Path, same: Callable[[dict], bool]) -> None:
    """Remove the folder of ``marker`` unless the JSON in ``marker`` describes this configuration."""
    import shutil

    if marker.parent.is_dir():
        try:
            keep = same(read_json(marker))
        except (OSError, ValueError, KeyError, TypeError):
            keep = False
        if not keep:
            shutil.rmtree(marker.parent)


def _experiment(out: Path):
    def compute(config: dict) -> dict:
        from ufm.analysis.networks import validate
        from ufm.dnn.config import TrainConfig
        from ufm.dnn.experiment import ExperimentSpec, load_experiment, run_experiment
        from ufm.dnn.training import train

        c = config
        full = load_experiment(c["name"])
        spec = ExperimentSpec(full.name, {**full.base, "epochs": c["epochs"], "milestones": c["milestones"],
                                          "eval_every": c["eval_every"]},
                              {"alpha": c["alphas"], "seed": c["seeds"]}, full.description + " (short form)")
        ufm_cfg = TrainConfig.from_dict(c["ufm_run"])
        # folders left by a demo of another configuration (e.g. --quick) are replaced; a folder of this
        # configuration is kept, so an interrupted stage resumes its runs
        _replace_if_other(out / "experiment" / "experiment.json", lambda d: d == spec.to_dict())
        _replace_if_other(out / "experiment-ufm" / "config.json", lambda d: d["config"] == ufm_cfg.to_dict())
        result = run_experiment(spec, out / "experiment", workers=c["workers"], progress=False)
        train(ufm_cfg, out / "experiment-ufm", progress=False)
        return {"folder": "experiment", "ufm_folder": "experiment-ufm", "experiment_seconds": result["seconds"],
                "validation": result["validation"], "ufm_validation": validate([out / "experiment-ufm"])}
    return compute


def run_demo(out, *, quick: bool = False, force: bool = False, log: Optional[Callable[[str], None]] = print) -> Path:
    """Run every stage (reusing finished ones), then build figures and ``report.md``.

    ``log`` receives one line as each stage starts (``[verify] running ...``, or ``[verify]
    reusing PATH``) and one as it ends (``[verify] done in 1.2 s -> PATH``); None: no lines
    (``ufm demo`` writes them on stderr, ``--quiet`` drops them). Returns the path of the report.
    """
    from ufm.report.markdown import build_report

    log = log or (lambda msg: None)
    out = writable_folder(out)
    torch.manual_seed(0)
    cfg = demo_config(quick)
    deriv = _stage(out, "derivation", {"loss": "label_smoothing", "hessian": not quick}, _derivation, force, log)
    atomic_write_text(out / "derivation.md", deriv["markdown"])
    if deriv.get("hessian_markdown"):
        atomic_write_text(out / "hessian.md", deriv["hessian_markdown"])
    _stage(out, "verify", cfg["verify"], _verify, force, log)
    _stage(out, "alpha_sweep", cfg["alpha_sweep"], _alpha_sweep, force, log)
    _stage(out, "trajectory", cfg["trajectory"], _trajectory, force, log)
    _stage(out, "conditioning", cfg["conditioning"], _conditioning, force, log)
    _stage(out, "regimes", cfg["regimes"], _regimes(cfg["conditioning"]), force, log)
    _stage(out, "convergence", cfg["convergence"], _convergence, force, log)
    _stage(out, "sweep", cfg["sweep"], _sweep(out), force, log)
    _stage(out, "experiment", cfg["experiment"], _experiment(out), force, log)
    # the claims read the records of every stage above, so they are judged again on every run
    _stage(out, "claims", {"folders": ["."]}, _claims(out), True, log)
    return build_report(out)
