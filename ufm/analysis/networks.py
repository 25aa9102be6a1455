"""The UFM's predictions confronted with trained networks (``ufm validate RUN...``).

Reads only the raw records of run folders (``config.json``, ``metrics.jsonl``), through
``ufm.records.runs``, and works on their plain configuration dicts (the fields of
``ufm.dnn.TrainConfig`` as ``config.json`` holds them). The verdicts are returned as data;
``ufm.report.validation`` renders them.

**UFM-style runs** (``mode = "ufm"``: explicit penalties lambda_W, lambda_H, lambda_b): the
closed-form minimizer for the run's K, n = N/K (N training samples), lambda_W, lambda_H and
alpha predicts ||w_k||, ||h_i|| (measured as mean_k ||mu_k - mu_G||), the logit gap and
p_true (``ufm.theory.closed_form``); each is compared with the train-split record at every
recorded epoch (relative error |measured - predicted| / |predicted|). The prediction holds
when the relative error at the last epoch is below ``UFM_RTOL``.

**Ordinary weight-decay runs**, grouped by configuration up to alpha and seed, where the
effective feature penalty is unknown. Predictions that do not need it:

* ``p_off - alpha/K agrees across alpha``: the closed form gives p_off = alpha/K + s with s
  independent of alpha (same lambdas). Measured on the train split at the last epoch, mean
  over seeds; holds when (max - min) / max of (p_off - alpha/K) over alphas is below
  ``AGREE_RTOL``.
* ``geometry approaches the simplex ETF``: NC2 of the class means and of the classifier fall
  from the start of the terminal phase (the first record with zero training error; the
  record at mid-training if there is none) to the last epoch (train split), in every run of
  the group. (From initialization would not do: a random classifier's rows are nearly
  orthogonal and equinorm, already close to a simplex ETF for moderate K.)
* ``LS reaches a given NC1 in fewer epochs``: the target is the largest final train NC1 of the
  group (so that every run reaches it); holds when, for every alpha > 0, the mean over seeds
  of the first epoch at which NC1 <= target is lower than that of alpha = 0 (a tie is not support).
* ``LS collapses more (lower final NC1)``: final train NC1, mean over seeds, lower for every
  alpha > 0 than for alpha = 0 (the paper's empirical claim).

The tolerances UFM_RTOL and AGREE_RTOL were set before any measurement and are not tuned to
the results; each check reports its measured values with the verdict, whichever way it goes.

Each check is one public function (:func:`load_run`, :func:`group_runs`, :func:`ufm_run_checks`,
:func:`p_off_excess`, :func:`relative_spread`, :func:`terminal_phase_start`, :func:`first_epoch`),
which ``validate`` applies to the means over seeds and the claims registry
(``ufm.analysis.claims``) to each seed: one implementation of each.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from ufm.analysis.series import first_reached
from ufm.records.runs import read_config, read_records

__all__ = ["validate", "failed_checks", "load_run", "group_runs", "ufm_run_checks", "p_off_excess", "relative_spread",
           "terminal_phase_start", "first_epoch", "final_value", "UFM_RTOL", "AGREE_RTOL", "UFM_QUANTITIES"]

#: relative error at the last epoch under which a UFM-style run "matches" the closed form
UFM_RTOL = 0.05
#: relative spread under which (p_off - alpha/K) "agrees" across alphas
AGREE_RTOL = 0.25
#: closed-form quantity -> record key of the measurement
UFM_QUANTITIES = {"w_norm": "w_norm", "h_norm": "h_norm", "logit_gap": "logit_gap", "p_true": "p_true"}
#: configuration keys read as floats (a hand-written JSON may hold 0 for 0.0)
_FLOAT_KEYS = ("alpha", "lambda_w", "lambda_h")
#: configuration keys that do not make two runs differ beyond alpha and seed
_NOT_GROUPED = ("alpha", "seed", "device", "eval_batch_size")


def load_run(run) -> dict:
    """A run folder's configuration (a plain dict), its meta data, its train records (``train``)
    and the records of every split (``splits``: split -> records in epoch order).

    Raises:
        ValueError: ``config.json`` is not a training run's, or there are no train records yet.
    """
    meta = read_config(run)
    try:
        config = dict(meta["config"])
        config.update({k: float(config[k]) for k in _FLOAT_KEYS})
        # each of these must be present
        config["seed"], config["mode"], meta["model"]["num_classes"], meta["model"]["feature_dim"]
        meta["dataset"]["sizes"]["train"]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{run}/config.json is not the configuration of a training run ({e!r} missing or "
                         "invalid); pass folders written by ufm train or ufm experiment") from None
    splits: Dict[str, List[dict]] = {}
    for r in read_records(run):
        splits.setdefault(r["split"], []).append(r)
    if not splits.get("train"):
        raise ValueError(f"{run} has no train records yet; train it first")
    return {"run": str(run), "meta": meta, "config": config, "train": splits["train"], "splits": splits}


#: configuration keys added after runs were first recorded, with the value those runs had
_ADDED_KEYS = {"nc_convention": "ufm", "memory_format": "contiguous", "autocast": "off"}


def group_runs(loaded: Sequence[dict]) -> List[List[dict]]:
    """Runs grouped by configuration up to alpha and seed (and device, evaluation batch size),
    in order of first appearance; the mode is part of the configuration."""
    groups: Dict[str, List[dict]] = {}
    for r in loaded:
        config = {**_ADDED_KEYS, **r["config"]}  # a run recorded before a key existed had its default
        key = json.dumps({k: v for k, v in config.items() if k not in _NOT_GROUPED}, sort_keys=True)
        groups.setdefault(key, []).append(r)
    return list(groups.values())


def _num(v) -> float:
    """A recorded value as a float (null, i.e. non-finite when written, is NaN)."""
    return float("nan") if v is None else float(v)


def final_value(r: dict, key: str, split: str = "train") -> float:
    """The value of ``key`` in the last record of ``split`` of a loaded run (NaN when missing)."""
    records = r["splits"].get(split) or [{}]
    return _num(records[-1].get(key))


def _nanmean(values) -> float:
    values = [v for v in map(_num, values) if math.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def ufm_run_checks(r: dict) -> dict:
    """A UFM-style run (loaded) against the closed form for its K, n = N/K, lambda_W, lambda_H and
    alpha: per quantity the prediction, the relative error curve and whether the last one is
    below UFM_RTOL (module docstring)."""
    from ufm.theory.closed_form import closed_form_arrays  # imports torch: only for UFM-style runs

    cfg, meta = r["config"], r["meta"]
    K = meta["model"]["num_classes"]
    N = meta["dataset"]["sizes"]["train"]
    cf = closed_form_arrays(cfg["alpha"], K, N / K, cfg["lambda_w"], cfg["lambda_h"])
    checks = []
    for q, key in UFM_QUANTITIES.items():
        pred = float(getattr(cf, q))
        curve = []
        for rec in r["train"]:
            m = _num(rec.get(key))
            err = abs(m - pred) / abs(pred) if pred and math.isfinite(m) else None
            curve.append({"epoch": rec["epoch"], "measured": m, "predicted": pred, "rel_error": err})
        final = curve[-1]["rel_error"]
        checks.append({"quantity": q, "predicted": pred, "measured": curve[-1]["measured"], "rel_error": final,
                       "holds": final is not None and final < UFM_RTOL, "curve": curve})
    return {"run": r["run"], "kind": "ufm", "alpha": cfg["alpha"], "num_classes": K, "per_class": N / K,
            "feature_dim": meta["model"]["feature_dim"], "trivial": bool(cf.trivial),
            "closed_form_applies": meta["model"]["feature_dim"] >= K - 1, "checks": checks}


def p_off_excess(p_off: float, alpha: float, K: int) -> float:
    """p_off - alpha/K: the closed form's s = sqrt(n lambda_W lambda_H), independent of alpha."""
    return _num(p_off) - alpha / K


def relative_spread(values: Sequence[float]) -> float:
    """(max - min) / max |v| of ``values``: 0 when all are 0, NaN when one is missing."""
    values = [_num(v) for v in values]
    if not all(math.isfinite(v) for v in values):
        return float("nan")  # a missing value: the check does not hold
    scale = max(abs(v) for v in values)
    return (max(values) - min(values)) / scale if scale > 0 else 0.0


def terminal_phase_start(records: list, max_error: float = 0.0) -> dict:
    """The first record with training error at most ``max_error`` (the terminal phase of
    training, Papyan et al. 2020: zero error by default) if it comes before the last one, else
    the record at mid-training."""
    for rec in records[:-1]:
        if rec["error"] is not None and rec["error"] <= max_error:
            return rec
    last = records[-1]["epoch"]
    return min(records, key=lambda rec: abs(rec["epoch"] - last / 2))


def first_epoch(records: list, target: float, key: str = "nc1") -> float:
    """The first epoch with ``key`` <= target (``first_reached``, inclusive), NaN if none reaches it."""
    epoch = first_reached([rec["epoch"] for rec in records], [rec.get(key) for rec in records], target,
                          inclusive=True)
    return float("nan") if epoch is None else epoch


def _p_off_check(by_alpha: Dict[float, List[dict]], K: int) -> dict:
    s = {a: p_off_excess(_nanmean(rr["train"][-1].get("p_off") for rr in runs), a, K) for a, runs in by_alpha.items()}
    spread = relative_spread(list(s.values()))
    # A comparison with a NaN is False: a check whose inputs are missing (null records) does not hold.
    return {"prediction": "p_off - alpha/K agrees across alpha", "measured": s, "value": spread,
            "criterion": f"relative spread < {AGREE_RTOL}", "holds": spread < AGREE_RTOL}


def _geometry_check(runs: List[dict]) -> dict:
    falls = {}
    for rr in runs:
        start = terminal_phase_start(rr["train"])
        falls[rr["run"]] = {"from_epoch": start["epoch"],
                            **{k: (_num(start.get(k)), _num(rr["train"][-1].get(k))) for k in ("nc2_h", "nc2_w")}}
    return {"prediction": "geometry approaches the simplex ETF", "measured": falls,
            "criterion": "NC2 (means and classifier) lower at the last epoch than when the terminal phase "
                         "starts (first record with zero training error; else mid-training)",
            "holds": all(f[k][1] < f[k][0] for f in falls.values() for k in ("nc2_h", "nc2_w"))}


def _nc1_checks(by_alpha: Dict[float, List[dict]]) -> List[dict]:
    alphas = sorted(by_alpha)
    finals = [_num(rr["train"][-1].get("nc1")) for a in alphas for rr in by_alpha[a]]
    target = max(finals) if all(math.isfinite(v) for v in finals) else float("nan")
    epochs = {a: [first_epoch(rr["train"], target) for rr in by_alpha[a]] for a in alphas}
    mean_ep = {a: float(np.mean(v)) for a, v in epochs.items()}
    nc1 = {a: _nanmean(rr["train"][-1].get("nc1") for rr in by_alpha[a]) for a in alphas}
    return [{"prediction": "LS reaches a given NC1 in fewer epochs", "target_nc1": target,
             "measured": mean_ep, "criterion": "mean first epoch with NC1 <= target, alpha > 0 < alpha = 0 "
                                               "(a tie is not support)",
             "holds": all(mean_ep[a] < mean_ep[0.0] for a in alphas if a > 0)},
            {"prediction": "LS collapses more (lower final NC1)", "measured": nc1,
             "criterion": "final train NC1, alpha > 0 < alpha = 0",
             "holds": all(nc1[a] < nc1[0.0] for a in alphas if a > 0)}]


def _group_checks(runs: List[dict]) -> dict:
    K = runs[0]["meta"]["model"]["num_classes"]
    by_alpha: Dict[float, List[dict]] = {}
    for r in runs:
        by_alpha.setdefault(r["config"]["alpha"], []).append(r)
    by_alpha = dict(sorted(by_alpha.items()))
    checks = [_p_off_check(by_alpha, K)] if len(by_alpha) > 1 else []
    checks.append(_geometry_check(runs))
    if 0.0 in by_alpha and len(by_alpha) > 1:
        checks += _nc1_checks(by_alpha)
    return {"runs": [r["run"] for r in runs], "alphas": list(by_alpha), "num_classes": K,
            "seeds": sorted({r["config"]["seed"] for r in runs}), "checks": checks}


def failed_checks(result: dict) -> List[str]:
    """The checks of a :func:`validate` result that do not hold, one line each (empty: all hold)."""
    failed = [f"{r['run']}: {c['quantity']}" for r in result["ufm_runs"] for c in r["checks"] if not c["holds"]]
    for i, g in enumerate(result["groups"], 1):
        failed += [f"group {i}: {c['prediction']}" for c in g["checks"] if not c["holds"]]
    return failed


def validate(runs: Sequence) -> dict:
    """Confront the UFM with the runs in ``runs`` (folders); see the module docstring.

    Returns:
        dict with ``ufm_runs`` (per UFM-style run: each quantity's prediction, measurement,
        relative error curve and verdict) and ``groups`` (per group of ordinary runs that
        differ only in alpha and seed: the cross-run checks).
    """
    loaded = [load_run(Path(r)) for r in runs]
    ufm_runs = [ufm_run_checks(r) for r in loaded if r["config"]["mode"] == "ufm"]
    groups = group_runs([r for r in loaded if r["config"]["mode"] == "standard"])
    return {"ufm_runs": ufm_runs, "groups": [_group_checks(g) for g in groups],
            "tolerances": {"UFM_RTOL": UFM_RTOL, "AGREE_RTOL": AGREE_RTOL}}
