"""Running a sweep: closed forms vectorized, numeric work grouped by shape and sent to an executor.

Per point, the components selected by ``what``:

* ``closed-form``: the closed-form minimizer (logit gap, p_true, p_off, ||w||, ||h||, f*,
  trivial), evaluated for all points at once with ``closed_form_arrays``;
* ``solve``: a batched L-BFGS solve (float64, tol 1e-10, the point's seed) per group of
  points sharing (K, d, n), compared with the closed form (``ufm.analysis.verify``): the worst error,
  the solver status and steps;
* ``conditioning``: the symbolic condition number of each Hessian definition
  (``ufm.theory.spectra``), and of ``full`` with b included when lambda_b = 0;
* ``convergence``: gradient descent from the point's seed under the ``local`` step rule
  (``ufm.analysis.convergence``): steps until NC1, ||grad f|| and the orbit distance fall below each of
  CONVERGENCE_EPS, the step size, and the measured and predicted local rates.

Groups run in worker processes (``concurrent.futures.ProcessPoolExecutor``) or in the driver
(``workers=0``); the driver alone writes the store, one transaction per finished group.
Points past the threshold are recorded with ``trivial = true``; a group whose solve fails is
recorded with its error and the sweep goes on.
"""
from __future__ import annotations

import csv
import io
import time
from concurrent.futures import Executor, as_completed
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ufm._core.io import atomic_write, atomic_write_text, write_json
from ufm._core.validation import Interval, check_param
from ufm._core.executors import ClusterError, dask_executor, process_pool
from ufm.problem import UFMProblem, group_by_shape
from ufm.records.schema import (CLOSED_FORM_QUANTITIES, CONFIG_COLUMNS, SOLVE_QUANTITIES, closed_form_column,
                                convergence_column, kappa_column, numeric_column)
from ufm.records.store import SweepStore
from ufm.sweep.spec import WHAT, SweepSpec

__all__ = ["WHAT", "run_sweep", "sweep_status", "export_csv", "compute_group", "GROUP_SIZE", "ClusterError"]

#: tolerances of the convergence component
CONVERGENCE_EPS = (1e-3, 1e-6, 1e-9)
#: the most points one task solves as a batch
GROUP_SIZE = 64


def _closed_forms(points: Sequence[dict]) -> List[dict]:
    """The closed form of every point at once (vectorized numpy)."""
    from ufm.theory.closed_form import closed_form_arrays

    cols = {k: np.array([p[k] for p in points], dtype=float) for k in CONFIG_COLUMNS[:-1]}
    v = closed_form_arrays(cols["alpha"], cols["num_classes"], cols["per_class"], cols["lambda_w"], cols["lambda_h"])
    trivial = np.asarray(v["trivial"])
    applies = cols["dim"] >= cols["num_classes"] - 1  # else the values are the ETF ansatz's, not a minimizer's
    return [{**{closed_form_column(k): float(v[k][i]) for k in CLOSED_FORM_QUANTITIES}, "trivial": bool(trivial[i]),
             "closed_form_applies": bool(applies[i])} for i in range(len(points))]


def _solve_component(points, problems, results, device) -> None:
    """A batched L-BFGS solve of the group, measured and compared with the closed form."""
    from ufm.analysis.verify import compare, measure, worst_error
    from ufm.numerics.solve import solve

    res = solve(problems, seeds=[p["seed"] for p in points], method="lbfgs", tol=1e-10, device=device)
    for i, (p, r) in enumerate(zip(problems, results)):
        m = measure(res, i)
        r.update({numeric_column(k): m[k] for k in CLOSED_FORM_QUANTITIES + SOLVE_QUANTITIES})
        if p.closed_form_applies:
            r["max_error"] = worst_error(compare(p, m))


def _conditioning_component(problems, results) -> None:
    """The symbolic condition number of each Hessian definition (and of full with b)."""
    from ufm.theory.keys import DEFINITIONS
    from ufm.theory.spectra import symbolic_spectrum

    for p, r in zip(problems, results):
        if not p.closed_form_applies:
            continue
        for dfn in DEFINITIONS:
            s = symbolic_spectrum(p, dfn)
            r[kappa_column(dfn)] = s.condition_number
            if "condition_number_with_bias" in s.details:
                r[kappa_column("full", with_bias=True)] = s.details["condition_number_with_bias"]


def _convergence_component(points, problems, results, status, error, device) -> None:
    """Gradient descent from each point's seed under the local rule: steps to CONVERGENCE_EPS and rates."""
    from ufm.analysis.convergence import convergence

    for i, (p, r) in enumerate(zip(problems, results)):
        if not p.closed_form_applies or status[i] == "error":
            continue
        try:
            c = convergence(p, alphas=[p.alpha], seeds=[points[i]["seed"]], eps=CONVERGENCE_EPS,
                            rules=["local"], device=device)
        except Exception as e:  # recorded, and the sweep goes on
            status[i], error[i] = "error", f"{type(e).__name__}: {e}"
            continue
        row, pred = c["rows"][0], c["predictions"][0]
        r.update({convergence_column(k): v for k, v in row.items() if k.startswith("steps_") or k.startswith("rate_")})
        r.update({convergence_column("lr"): row["lr"],
                  convergence_column("rate_predicted"): pred["rate_predicted_full"],
                  convergence_column("diverged_at"): row["diverged_at"]})


def compute_group(points: Sequence[dict], what: Sequence[str], device: Optional[str] = None) -> List[dict]:
    """Compute ``what`` for points sharing (K, d, n); returns one store record per point."""
    results = [dict() for _ in points]
    status, error = ["ok"] * len(points), [None] * len(points)
    if "closed-form" in what:
        for r, cf in zip(results, _closed_forms(points)):
            r.update(cf)
    numeric = {"solve", "conditioning", "convergence"} & set(what)
    problems = [UFMProblem.from_config(p) for p in points] if numeric else []
    if "solve" in what:
        try:
            _solve_component(points, problems, results, device)
        except Exception as e:  # recorded, and the sweep goes on
            status = ["error"] * len(points)
            error = [f"{type(e).__name__}: {e}"] * len(points)
    if "conditioning" in what:
        _conditioning_component(problems, results)
    if "convergence" in what:
        _convergence_component(points, problems, results, status, error, device)
    return [{"key": p["key"], "config": {k: p[k] for k in CONFIG_COLUMNS}, "config_json": p.get("config_json"),
             "result": r, "components": list(what), "status": st, "error": er}
            for p, r, st, er in zip(points, results, status, error)]


def _groups(points: Sequence[dict], size: int) -> List[List[dict]]:
    """Same-shape points in groups of at most ``size`` (each group is one batched solve)."""
    by_shape = group_by_shape(points, shape=lambda p: (p["num_classes"], p["dim"], p["per_class"]))
    members = [[p for _, p in g] for g in by_shape.values()]
    return [g[i:i + size] for g in members for i in range(0, len(g), size)]


def run_sweep(spec: SweepSpec, out, *, workers: Optional[int] = None, executor: Optional[Executor] = None,
              cluster: Optional[str] = None, device: Optional[str] = None, progress: bool = False,
              log: Optional[Callable[[str], None]] = None) -> dict:
    """Run (or resume) ``spec`` into the folder ``out``; returns counts and the run time.

    Points already in ``out/sweep.sqlite`` with every requested component are skipped. With
    only ``closed-form`` requested, all points are evaluated in the driver, vectorized. Else
    groups of at most GROUP_SIZE same-shape points go to ``executor`` (default: a pool of
    ``workers`` processes; ``workers=0`` runs them in the driver; ``cluster``: ``local-dask``
    or ``dask://HOST:PORT``, through dask.distributed's executor). The results do not depend
    on the executor (fixed seeds). ``out/results.csv`` is rewritten from the store at the end.

    Raises:
        ClusterError: the scheduler cannot be reached; raised before anything is written.
    """
    log = log or (lambda msg: None)
    if workers is not None:
        check_param("workers", workers, Interval("int", 0, None, "left"), "run_sweep")
    points = spec.points()  # validates every point before anything is written
    close = None
    if cluster is not None and set(spec.what) != {"closed-form"}:
        executor, close = dask_executor(cluster, workers)  # connects before anything is written
    try:
        return _run(spec, points, Path(out), workers, executor, device, progress, log)
    finally:
        if close is not None:
            close()


def _run(spec, points, out, workers, executor, device, progress, log) -> dict:
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with SweepStore(out / "sweep.sqlite") as store:
        store.set_meta("spec", spec.to_dict())
        store.set_meta("total", len(points))
        write_json(out / "spec.json", spec.to_dict())
        have = store.components()
        need = set(spec.what)
        fresh = not have
        todo = [p for p in points if not need <= have.get(p["key"], set())]
        log(f"{len(points)} points, {len(points) - len(todo)} already done, {len(todo)} to compute")
        bar = tqdm(total=len(todo), disable=not progress, unit="pt", desc="sweep")
        if need == {"closed-form"}:
            written = []  # with a fresh store, the table is exactly what is computed
            for i in range(0, len(todo), 20_000):
                records = compute_group(todo[i:i + 20_000], ["closed-form"])
                bar.update(store.put_many(records, merge=not fresh))
                written += records if fresh else []
        else:
            groups = _groups(todo, GROUP_SIZE)
            if executor is None and workers == 0:
                for g in groups:
                    bar.update(store.put_many(compute_group(g, spec.what, device)))
            else:
                own = executor is None
                pool = executor or process_pool(workers)
                try:
                    futures = [pool.submit(compute_group, g, spec.what, device) for g in groups]
                    for fut in as_completed(futures):
                        bar.update(store.put_many(fut.result()))
                finally:
                    if own:
                        pool.shutdown(cancel_futures=True)
        bar.close()
        if todo or not (out / "results.csv").is_file():
            export_csv(store, out / "results.csv",
                       records=sorted(written, key=lambda r: r["key"]) if need == {"closed-form"} and fresh else None)
        summary = {"total": len(points), "computed": len(todo), "errors": store.count("error"),
                   "seconds": time.perf_counter() - t0}
    return summary


def export_csv(store: SweepStore, path, records: Optional[List[dict]] = None) -> None:
    """The tidy table: one row per point, configuration columns then result columns (atomic);
    the same table as ``results.parquet`` beside it when pyarrow is installed.

    ``records``: the store's rows when the caller already holds them (a fresh sweep), in key order."""
    rows = store.rows() if records is None else records
    _export_parquet(rows, Path(path).with_suffix(".parquet"))
    keys = sorted({k for r in rows for k in r["result"]})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["key", *CONFIG_COLUMNS, *keys, "status", "error"])
    for r in rows:
        res, cfg = r["result"], r["config"]
        values = [res.get(k) for k in keys]
        w.writerow([r["key"], *[cfg[k] for k in CONFIG_COLUMNS], *["" if v is None or v != v else v for v in values],
                    r["status"], r["error"] or ""])  # v != v: NaN, written as an empty cell
    atomic_write_text(path, buf.getvalue())


def _export_parquet(rows: List[dict], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return
    table = pa.Table.from_pylist([{"key": r["key"], **{k: r["config"][k] for k in CONFIG_COLUMNS}, **r["result"],
                                   "status": r["status"], "error": r["error"]} for r in rows])
    atomic_write(path, lambda fh: pq.write_table(table, fh), binary=True)


def sweep_status(out) -> dict:
    """Progress of the sweep in ``out``: total points, done, errors, remaining."""
    path = Path(out) / "sweep.sqlite"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: no sweep has been run in {out}")
    with SweepStore(path) as store:
        total = store.meta("total") or 0
        spec = store.meta("spec") or {}
        need = set(spec.get("what", []))
        done = sum(1 for c in store.components().values() if need <= c)
        return {"total": total, "done": done, "errors": store.count("error"), "remaining": total - done,
                "what": sorted(need)}
