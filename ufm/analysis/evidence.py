"""The evidence the claims registry judges (``ufm.analysis.claims``): read from finished folders,
or computed on the spot on a small default grid.

Folders, recognized by what they hold (:func:`gather`):

* an **experiment** (``experiment.json`` and ``runs/*``): the runs its ``experiment.json`` lists;
* a **run** (``config.json``): that training run;
* a **sweep** (``sweep.sqlite``): its ``solve`` component (``max_error`` and the solver status per
  point) and its ``convergence`` component (``conv_steps_<quantity>_<eps>``, named by
  ``ufm.records.schema``);
* a **demo** (``records/*.json``): ``records/verify.json`` (verify rows),
  ``records/convergence.json`` (convergence rows), ``records/regimes.json`` when present (a
  regime map), and the folders ``experiment/``, ``experiment-ufm/`` and ``sweep/`` inside it.

Everything is read through ``ufm.records`` and plain JSON: reading folders imports no torch
(except for UFM-style runs, whose closed form ``ufm.theory.closed_form`` computes with torch
imported). The evidence is normalized into plain rows (:class:`Evidence`), each naming its
``source``, so that a claim need not know which kind of folder it came from.

:func:`computed` is the default evidence of the three UFM claims when no folder is given (21 s
for the whole of ``ufm claims`` on the 2-core development CPU, before the regime map existed): ``verify`` on ``DEFAULT_VERIFY``, the regime map of
``ufm.analysis.regimes.regime_map`` on ``DEFAULT_REGIMES``, and gradient descent
(``ufm.analysis.convergence``) on ``DEFAULT_CONVERGENCE``, one problem with d = K - 1 and one
with d = K, five seeds each (the fewest the statistics rule can judge).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ufm._core.io import read_json
from ufm.analysis.networks import load_run
from ufm.records.runs import CONFIG, EXPERIMENT, experiment_runs
from ufm.records.schema import CONVERGENCE_PREFIX, steps_column_parts

__all__ = ["Evidence", "NoEvidenceError", "gather", "computed", "verify_rows", "convergence_rows", "sweep_rows",
           "DEFAULT_VERIFY", "DEFAULT_REGIMES", "DEFAULT_CONVERGENCE", "EXPECTED"]

#: the small grid of ``verify`` computed when no folder is given (``default_grid`` arguments)
DEFAULT_VERIFY = {"per_class": 4, "seeds": [0], "classes": [3]}
#: the regime map computed when no folder is given (``regime_map`` arguments)
DEFAULT_REGIMES = {"classes": [3, 5, 10, 100], "alpha_max": 0.3, "lambda_ratios": [1, 10, 100]}
#: the convergence runs computed when no folder is given: one problem per d-regime, CE and LS
DEFAULT_CONVERGENCE = {"problems": [{"num_classes": 3, "per_class": 2, "dim": 2, "lambda_w": 5e-3, "lambda_h": 5e-3},
                                    {"num_classes": 3, "per_class": 2, "dim": 3, "lambda_w": 5e-3, "lambda_h": 5e-3}],
                       "alphas": [0.0, 0.1], "seeds": [0, 1, 2, 3, 4], "eps": [1e-3, 1e-6], "rules": ["local"]}
#: what a folder must hold, in the words of the error message
EXPECTED = ("experiment.json (an experiment), config.json (a training run), sweep.sqlite (a sweep) or "
            "records/*.json (a demo)")


class NoEvidenceError(ValueError):
    """A folder holds none of the records the claims read (or does not exist)."""


@dataclass
class Evidence:
    """What the claims judge, as plain rows; ``sources`` says where each kind came from, and
    ``missing`` why a kind is absent (when the reason is more than "no folder held it").

    ``verify``: {label, max_error, converged, closed_form_applies, source};
    ``regimes``: the regime map (dicts with definition, K, d_regime, lambda_ratio, sK_from,
    sK_to, verdict), or None; ``convergence``: {config, regime, alpha, seed, rule, steps
    ({(quantity, eps): steps or None}), steps_recorded, diverged, source}; ``runs``: loaded
    training runs (``ufm.analysis.networks.load_run``) with their ``source``.
    """

    verify: List[dict] = field(default_factory=list)
    regimes: Optional[List[dict]] = None
    convergence: List[dict] = field(default_factory=list)
    runs: List[dict] = field(default_factory=list)
    sources: Dict[str, List[str]] = field(default_factory=dict)
    missing: Dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, source: str) -> None:
        self.sources.setdefault(kind, []).append(source)

    def where(self, kind: str) -> str:
        """Where the evidence of ``kind`` came from, in words ("" when none)."""
        return "; ".join(self.sources.get(kind, []))


# -- rows from the analyses' own records ---------------------------------------------------------

def _regime(K: int, d: int) -> str:
    return "K-1" if d == K - 1 else ">=K"


def verify_rows(rows: Sequence[dict], source: str) -> List[dict]:
    """Rows of ``ufm.analysis.verify.verify`` (or a demo's ``records/verify.json``), normalized."""
    out = []
    for r in rows:
        label = (f"K={r['num_classes']} n={r['per_class']} d={r['dim']} lambda_W={r['lambda_w']:g} "
                 f"lambda_H={r['lambda_h']:g} lambda_b={r['lambda_b']:g} alpha={r['alpha']:g} seed={r['seed']}")
        out.append({"label": label, "max_error": r.get("max_error"), "converged": bool(r.get("num_converged")),
                    "closed_form_applies": r["dim"] >= r["num_classes"] - 1, "source": source})
    return out


def _steps(row: dict) -> dict:
    """{(quantity, eps): steps} of a row's ``[conv_]steps_<quantity>_<eps>`` entries."""
    return {parts: value for parts, value in ((steps_column_parts(k), v) for k, v in row.items()) if parts}


def convergence_rows(result: dict, source: str) -> List[dict]:
    """Rows of ``ufm.analysis.convergence.convergence`` (its ``config``, or the demo record's
    ``settings``), normalized; the configuration is the problem without alpha, and the rule."""
    settings = result.get("settings") or result["config"]  # a demo record keeps the stage's own config in "config"
    problem = {k: v for k, v in settings["problem"].items() if k != "alpha"}
    K, d = problem["num_classes"], problem["dim"]
    return [{"config": json.dumps({**problem, "rule": r["rule"]}, sort_keys=True), "regime": _regime(K, d),
             "alpha": float(r["alpha"]), "seed": r["seed"], "rule": r["rule"], "steps": _steps(r),
             "steps_recorded": r.get("steps_recorded"), "diverged": r.get("diverged_at") is not None,
             "source": source} for r in result["rows"]]


def sweep_rows(rows: Sequence[dict], source: str) -> tuple:
    """(verify rows, convergence rows) of a sweep store's points (``SweepStore.rows()``)."""
    verify, conv = [], []
    for p in rows:
        c, r = p["config"], p["result"]
        if "solve" in p["components"] and p["status"] != "error":
            verify += verify_rows([{**c, "max_error": r.get("max_error"),
                                    "num_converged": r.get("num_status") == "converged"}], source)
        steps = _steps(r)
        if "convergence" in p["components"] and steps:
            config = {k: v for k, v in c.items() if k not in ("alpha", "seed")}
            conv.append({"config": json.dumps({**config, "rule": "local"}, sort_keys=True),
                         "regime": _regime(c["num_classes"], c["dim"]), "alpha": float(c["alpha"]),
                         "seed": c["seed"], "rule": "local", "steps": steps,
                         "steps_recorded": r.get(CONVERGENCE_PREFIX + "steps_recorded"),
                         "diverged": r.get(CONVERGENCE_PREFIX + "diverged_at") is not None, "source": source})
    return verify, conv


# -- folders -------------------------------------------------------------------------------------

def _add_runs(ev: Evidence, runs: Sequence[Path], source: str, seen: set) -> None:
    used = skipped = 0
    for run in runs:
        key = run.resolve()
        if key in seen:
            continue
        seen.add(key)
        try:
            r = load_run(run)
        except ValueError as e:
            if "no train records" not in str(e):
                raise
            skipped += 1  # an unfinished run with no records yet
            continue
        ev.runs.append({**r, "source": source})
        used += 1
    note = f", {skipped} without records left out" if skipped else ""
    ev.add("runs", f"{source} ({used} run{'s' if used != 1 else ''}{note})")


def _add_sweep(ev: Evidence, folder: Path) -> None:
    from ufm.records.store import SweepStore

    with SweepStore(folder / "sweep.sqlite", readonly=True) as store:
        verify, conv = sweep_rows(store.rows(), str(folder / "sweep.sqlite"))
    if verify:
        ev.verify += verify
        ev.add("verify", f"{folder / 'sweep.sqlite'} ({len(verify)} points)")
    if conv:
        ev.convergence += conv
        ev.add("convergence", f"{folder / 'sweep.sqlite'} ({len(conv)} runs)")


def _add_demo(ev: Evidence, folder: Path, seen: set) -> None:
    records = folder / "records"
    if (records / "verify.json").is_file():
        rows = verify_rows(read_json(records / "verify.json")["rows"], str(records / "verify.json"))
        ev.verify += rows
        ev.add("verify", f"{records / 'verify.json'} ({len(rows)} points)")
    if (records / "convergence.json").is_file():
        rows = convergence_rows(read_json(records / "convergence.json"), str(records / "convergence.json"))
        ev.convergence += rows
        ev.add("convergence", f"{records / 'convergence.json'} ({len(rows)} runs)")
    if (records / "regimes.json").is_file():
        data = read_json(records / "regimes.json")
        ev.regimes = (ev.regimes or []) + list(data["map"] if isinstance(data, dict) else data)
        ev.add("regimes", str(records / "regimes.json"))
    for sub in ("experiment", "experiment-ufm", "sweep"):
        if (folder / sub).is_dir():
            _add_folder(ev, folder / sub, seen, inside_demo=True)


def _add_folder(ev: Evidence, folder: Path, seen: set, inside_demo: bool = False) -> None:
    if (folder / EXPERIMENT).is_file():
        _add_runs(ev, experiment_runs(folder), str(folder), seen)
    elif (folder / CONFIG).is_file():
        _add_runs(ev, [folder], str(folder), seen)
    elif (folder / "sweep.sqlite").is_file():
        _add_sweep(ev, folder)
    elif (folder / "records").is_dir() and any((folder / "records").glob("*.json")):
        _add_demo(ev, folder, seen)
    elif not inside_demo:
        raise NoEvidenceError(f"{folder} holds none of the records ufm claims reads: expected {EXPECTED}")


def gather(folders: Sequence) -> Evidence:
    """The evidence in ``folders`` (module docstring); a run met twice is counted once.

    Raises:
        NoEvidenceError: a folder does not exist or holds none of the expected records.
        ValueError: a ``config.json`` is not a training run's.
    """
    ev, seen = Evidence(), set()
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise NoEvidenceError(f"{folder} is not a folder: expected one holding {EXPECTED}")
        _add_folder(ev, folder, seen)
    return ev


# -- computed on the spot ------------------------------------------------------------------------

def _computed_verify(ev: Evidence) -> None:
    from ufm.analysis.verify import default_grid, verify

    rows = verify(default_grid(**DEFAULT_VERIFY))
    ev.verify += verify_rows(rows, "computed")
    args = ", ".join(f"{k}={v}" for k, v in DEFAULT_VERIFY.items())
    ev.add("verify", f"computed: verify(default_grid({args})), {len(rows)} points")


def _computed_regimes(ev: Evidence) -> None:
    from ufm.analysis.regimes import regime_map

    ev.regimes = list(regime_map(**DEFAULT_REGIMES))
    args = ", ".join(f"{k}={v}" for k, v in DEFAULT_REGIMES.items())
    ev.add("regimes", f"computed: regime_map({args}), {len(ev.regimes)} regimes")


def _computed_convergence(ev: Evidence) -> None:
    from ufm.analysis.convergence import convergence
    from ufm.problem import UFMProblem

    c = DEFAULT_CONVERGENCE
    for p in c["problems"]:
        out = convergence(UFMProblem(**p), alphas=c["alphas"], seeds=c["seeds"], eps=c["eps"], rules=c["rules"])
        ev.convergence += convergence_rows(out, "computed")
    shapes = ", ".join(f"K={p['num_classes']} n={p['per_class']} d={p['dim']}" for p in c["problems"])
    ev.add("convergence", f"computed: gradient descent, {shapes}, alphas {c['alphas']}, "
                          f"{len(c['seeds'])} seeds, eps {c['eps']}")


def computed() -> Evidence:
    """The default evidence of the UFM claims, computed now (module docstring); no training runs."""
    ev = Evidence()
    _computed_verify(ev)
    _computed_regimes(ev)
    _computed_convergence(ev)
    return ev
