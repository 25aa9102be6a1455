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

``closed-form`` and ``conditioning`` are computed for all points at once (numpy columns, the condition
numbers from the distinct eigenvalues and their multiplicities): a sweep of those alone runs in the
driver, its points in key order, CHUNK points to a group; each value is formatted once, for the
store's JSON and for ``results.csv`` alike, which a fresh store's sweep writes from those columns
(the bytes ``export_csv`` writes from the store). Other groups run in worker processes
(``concurrent.futures.ProcessPoolExecutor``) or in the driver (``workers=0``); the driver alone
writes the store, one transaction per finished group. A finished sweep records itself in the store
(meta ``finished``: its spec, components and point count), so rerunning it expands nothing.
Points past the threshold are recorded with ``trivial = true``; a group whose solve fails is
recorded with its error and the sweep goes on.
"""
from __future__ import annotations

import csv
import io
import json
import time
from concurrent.futures import Executor, as_completed
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ufm._core.io import atomic_write, atomic_write_text, writable_folder, write_json
from ufm._core.validation import Interval, check_param
from ufm._core.executors import ClusterError, dask_executor, process_pool
from ufm.problem import UFMProblem, group_by_shape
from ufm.records.schema import (CLOSED_FORM_QUANTITIES, CONFIG_COLUMNS, SOLVE_QUANTITIES, closed_form_column,
                                convergence_column, kappa_column, numeric_column)
from ufm.records.store import SweepStore
from ufm.sweep.grids import admit, check_sweep_folder, point_needs
from ufm.sweep.spec import WHAT, PointTable, SweepSpec, paused_gc

__all__ = ["WHAT", "run_sweep", "sweep_status", "export_csv", "compute_group", "GROUP_SIZE", "ClusterError"]

#: tolerances of the convergence component
CONVERGENCE_EPS = (1e-3, 1e-6, 1e-9)
#: the most points one task solves as a batch
GROUP_SIZE = 64
#: the components computed in the driver for all points at once (numpy), without an executor
VECTORIZED = frozenset({"closed-form", "conditioning"})
#: the most points one transaction of the vectorized path writes
CHUNK = 50_000
#: seconds between two rewrites of ``results.csv`` while groups finish
CSV_EVERY = 10.0


def _vector_results(cols: Dict[str, np.ndarray], what) -> List[Tuple[str, np.ndarray, Optional[np.ndarray]]]:
    """The vectorized components of ``what`` for the points of ``cols`` (``CONFIG_COLUMNS`` -> arrays),
    all at once: (column, values, where recorded (None: everywhere)), in the order of a point's record."""
    from ufm.theory.closed_form import closed_form_arrays

    out = []
    applies = cols["dim"] >= cols["num_classes"] - 1  # else the values are the ETF ansatz's, not a minimizer's
    if "closed-form" in what:
        f = {k: np.asarray(cols[k], dtype=float) for k in ("alpha", "num_classes", "per_class", "lambda_w", "lambda_h")}
        v = closed_form_arrays(f["alpha"], f["num_classes"], f["per_class"], f["lambda_w"], f["lambda_h"])
        out += [(closed_form_column(k), np.asarray(getattr(v, k), dtype=float), None) for k in CLOSED_FORM_QUANTITIES]
        out += [("trivial", np.asarray(v.trivial, dtype=bool), None), ("closed_form_applies", applies, None)]
    if "conditioning" in what:
        out += _conditioning_columns(cols, applies)
    return out


def _conditioning_columns(cols, applies):
    """The symbolic condition number of each Hessian definition where the closed form applies (and of
    full with b where lambda_b = 0), evaluated for all points at once (``symbolic_spectra``)."""
    from ufm.theory.keys import DEFINITIONS, WITH_BIAS
    from ufm.theory.spectra import symbolic_spectra

    names = ("num_classes", "per_class", "dim", "lambda_w", "lambda_h", "lambda_b", "alpha")
    out = []
    for dfn, where in [(d, applies) for d in DEFINITIONS] + [(WITH_BIAS, applies & (cols["lambda_b"] == 0))]:
        kappa = np.full(applies.shape, np.nan)
        if where.any():
            kappa[where] = symbolic_spectra(*[cols[k][where] for k in names], dfn).condition_number
        out.append((kappa_column("full", with_bias=True) if dfn == WITH_BIAS else kappa_column(dfn), kappa, where))
    return out  # kappa_full_with_bias right after kappa_full, as in a point's record


def _update(dicts: List[dict], results) -> List[dict]:
    """The columns of :func:`_vector_results` added to one result dict per point (plain floats and bools)."""
    for name, values, where in results:
        vals = values.tolist()
        for i in (range(len(dicts)) if where is None else np.flatnonzero(where).tolist()):
            dicts[i][name] = vals[i]
    return dicts


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
    cols = {k: np.array([p[k] for p in points]) for k in CONFIG_COLUMNS}
    results = [{} for _ in points]
    status, error = ["ok"] * len(points), [None] * len(points)
    if "closed-form" in what:
        _update(results, _vector_results(cols, ["closed-form"]))
    numeric = {"solve", "convergence"} & set(what)
    problems = [UFMProblem.from_config(p) for p in points] if numeric else []
    if "solve" in what:
        try:
            _solve_component(points, problems, results, device)
        except Exception as e:  # recorded, and the sweep goes on
            status = ["error"] * len(points)
            error = [f"{type(e).__name__}: {e}"] * len(points)
    if "conditioning" in what:
        _update(results, _vector_results(cols, ["conditioning"]))
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
              log: Optional[Callable[[str], None]] = None, extend: bool = False,
              on_points: Optional[Callable[[int, int], None]] = None) -> dict:
    """Run (or resume) ``spec`` into the folder ``out``; returns counts and the run time.

    Points already in ``out/sweep.sqlite`` with every requested component are skipped. With
    only ``closed-form`` requested, or only ``closed-form`` and ``conditioning`` and neither
    ``executor`` nor ``cluster`` given, all points are evaluated in the driver, vectorized, and
    stored CHUNK points to a transaction. Else
    groups of at most GROUP_SIZE same-shape points go to ``executor`` (default: a pool of
    ``workers`` processes; ``workers=0`` runs them in the driver; ``cluster``: ``local-dask``
    or ``dask://HOST:PORT``, through dask.distributed's executor). The results do not depend
    on the executor (fixed seeds). ``out/results.csv`` is rewritten from the store as groups
    finish (at most every CSV_EVERY seconds) and at the end, also when interrupted. Progress:
    ``progress`` draws a tqdm bar; ``on_points(done, total)``, a hook (``ufm.report.progress``), is
    called before the first point and as points are stored (it changes no result).

    A folder holding another grid is refused unless ``extend`` (``ufm.sweep.grids``); ``total`` in
    the result counts the points of every grid the folder holds.

    Raises:
        ClusterError: the scheduler cannot be reached; raised before anything is written.
        SweepFolderError: ``out`` holds another grid (and not ``extend``) or other work; raised
            before anything is written.
        NotWritableError: ``out`` cannot be written to.
    """
    log = log or (lambda msg: None)
    if workers is not None:
        check_param("workers", workers, Interval("int", 0, None, "left"), "run_sweep")
    shapes = spec.shapes()  # validates every point before anything is written
    out = Path(out)
    check_sweep_folder(out)
    if (out / "sweep.sqlite").is_file():
        with SweepStore(out / "sweep.sqlite", readonly=True) as store:
            admit(spec, store.grids(), extend, out)  # refuses another grid before anything is written
    close = None
    if cluster is not None and set(spec.what) != {"closed-form"}:
        executor, close = dask_executor(cluster, workers)  # connects before anything is written
    try:
        return _run(spec, shapes, out, workers, executor, device, _Tally(progress, on_points), log, extend)
    finally:
        if close is not None:
            close()


def _record_grids(store: SweepStore, out: Path, spec: SweepSpec, grids: List[dict], total: int) -> None:
    store.set_meta("grids", grids)
    store.set_meta("spec", spec.to_dict())
    store.set_meta("total", total)
    write_json(out / "spec.json", grids[0] if len(grids) == 1 else {"grids": grids})


def _run(spec, shapes, out, workers, executor, device, progress, log, extend) -> dict:
    writable_folder(out)
    t0 = time.perf_counter()
    with SweepStore(out / "sweep.sqlite") as store:
        need = set(spec.what)
        grids = admit(spec, store.grids(), extend, out)
        finished = store.meta("finished") or {}
        if (len(grids) == 1 and finished.get("spec") == spec.to_dict() and need <= set(finished["what"])
                and (out / "results.csv").is_file()):
            # This very sweep finished here before: stored points are never deleted and their components
            # only grow, so every point is still done, and the grid need not be expanded to know it.
            total = finished["total"]
            _record_grids(store, out, spec, grids, total)
            log(f"{total} points, {total} already done, 0 to compute")
            return {"total": total, "computed": 0, "errors": store.count("error"), "seconds": time.perf_counter() - t0}
        table = spec.table(shapes)
        total = len(table) if len(grids) == 1 else len(point_needs(grids))
        _record_grids(store, out, spec, grids, total)
        summary = _compute(spec, table, store, out, workers, executor, device, progress, log)
        store.set_meta("finished", {"spec": spec.to_dict(), "what": sorted(need), "total": len(table)})
    summary["total"] = total
    summary["seconds"] = time.perf_counter() - t0
    return summary


def _compute(spec, table: PointTable, store: SweepStore, out, workers, executor, device, progress, log) -> dict:
    """The points of ``table`` not yet done with every component of the spec, computed and stored;
    ``results.csv`` (re)written when anything was computed or it is missing."""
    need = set(spec.what)
    stored = store.keys_by_components()  # one query per set of components, not one row per point
    done = set().union(*[keys for comps, keys in stored.items() if need <= set(comps)])
    todo = [i for i, k in enumerate(table.keys) if k not in done] if done else list(range(len(table)))
    log(f"{len(table)} points, {len(table) - len(todo)} already done, {len(todo)} to compute")
    bar = progress.start(len(todo))
    lines = None
    try:
        if need == {"closed-form"} or (need <= VECTORIZED and executor is None):
            lines = _run_vectorized(store, table, todo, need, stored, bar)
        else:
            _run_groups(spec, table.points(todo), store, out, workers, executor, device, bar)
    except KeyboardInterrupt:  # what is committed stays, and results.csv lists it
        bar.close()
        export_csv(store, out / "results.csv")
        raise
    bar.close()
    if todo or not (out / "results.csv").is_file():
        if lines is not None:  # a fresh store: the table is exactly what was computed
            _export_parquet_from(store, out / "results.parquet")
            atomic_write(out / "results.csv", lambda fh: fh.writelines(lines))
        else:
            export_csv(store, out / "results.csv")
    return {"total": len(table), "computed": len(todo), "errors": store.count("error")}


class _Tally:
    """Points stored so far, shown by a tqdm bar (``bar``) and/or a hook ``on_points(done, total)``."""

    def __init__(self, bar: bool, on_points: Optional[Callable[[int, int], None]]):
        self.show_bar, self.on_points, self.bar, self.done, self.total = bar, on_points, None, 0, 0

    def start(self, total: int) -> "_Tally":
        from tqdm import tqdm

        self.bar, self.total = tqdm(total=total, disable=not self.show_bar, unit="pt", desc="sweep"), total
        if self.on_points is not None:
            self.on_points(0, total)
        return self

    def update(self, n: int) -> None:
        self.done += n
        self.bar.update(n)
        if self.on_points is not None:
            self.on_points(self.done, self.total)

    def close(self) -> None:
        self.bar.close()


def _run_groups(spec, points, store: SweepStore, out: Path, workers, executor, device, bar) -> None:
    """Groups of ``points`` computed by the executor (or in the driver when ``workers == 0``), each
    stored in one transaction as it finishes; ``results.csv`` rewritten at most every CSV_EVERY s."""
    groups = _groups(points, GROUP_SIZE)
    written = time.monotonic()

    def stored(records) -> None:
        nonlocal written
        bar.update(store.put_many(records))
        if time.monotonic() - written >= CSV_EVERY:
            export_csv(store, out / "results.csv")
            written = time.monotonic()

    if executor is None and workers == 0:
        for g in groups:
            stored(compute_group(g, spec.what, device))
        return
    own = executor is None
    pool = executor or process_pool(workers)
    try:
        futures = [pool.submit(compute_group, g, spec.what, device) for g in groups]
        for fut in as_completed(futures):
            stored(fut.result())
    finally:
        if own:
            pool.shutdown(cancel_futures=True)


def _run_vectorized(store: SweepStore, table: PointTable, todo: List[int], what, stored, bar):
    """The points ``todo`` computed in the driver, CHUNK at a time in key order, each chunk one
    transaction; returns the text of ``results.csv`` (in pieces) when the store held no point before
    (else None: the table is exported from the store)."""
    with paused_gc():
        return _vectorized_chunks(store, table, todo, what, stored, bar)


def _vectorized_chunks(store, table, todo, what, stored, bar):
    fresh = not stored
    known = set() if fresh else set().union(*stored.values())
    todo = np.asarray(todo, dtype=np.int64)
    todo = todo[np.argsort(np.array([table.keys[i] for i in todo.tolist()]), kind="stable")] if todo.size else todo
    comps = json.dumps(sorted(what))
    cols = {k: v[todo] for k, v in table.columns.items()}
    parts = []
    for lo in range(0, todo.size, CHUNK):
        rows = todo[lo:lo + CHUNK].tolist()
        results = _vector_results({k: v[lo:lo + CHUNK] for k, v in cols.items()}, what)
        texts = [(name, *_texts(values), where) for name, values, where in results]
        keys = [table.keys[i] for i in rows]
        if fresh or not known.intersection(keys):
            records = zip(keys, [table.configs[i] for i in rows], _result_json(texts, len(rows)))
            bar.update(store.put_rows([(k, c, r, comps, "ok", None) for k, c, r in records]))
        else:  # some of these points are stored: their results are merged with what they hold
            chunk = table.points(rows)
            results = _update([{} for _ in rows], results)
            bar.update(store.put_many([{"key": p["key"], "config": {k: p[k] for k in CONFIG_COLUMNS},
                                        "config_json": p["config_json"], "result": r, "components": sorted(what),
                                        "status": "ok", "error": None} for p, r in zip(chunk, results)]))
        if fresh:
            parts.append((rows, keys, texts))
    return _csv_text(table, parts) if fresh else None


def _texts(values: np.ndarray):
    """Each value as JSON writes it (json.dumps: repr of a float, NaN, Infinity; true/false) and as
    the CSV writes it (repr of a float, an empty cell for NaN; True/False), formatted once."""
    if values.dtype == bool:
        return np.array(["false", "true"], dtype=object)[values.astype(np.int8)].tolist(), \
            np.array(["False", "True"], dtype=object)[values.astype(np.int8)].tolist()
    text = list(map(repr, values.tolist()))
    if np.isfinite(values).all():
        return text, text
    special = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
    return [special.get(t, t) for t in text], ["" if t == "nan" else t for t in text]


def _result_json(texts, n: int) -> List[str]:
    """Each point's result dict as json.dumps writes it, from the formatted columns (a column is
    left out where it is not recorded)."""
    code = np.zeros(n, dtype=np.int64)  # which columns a point records, one bit each
    for bit, (_, _, _, where) in enumerate(texts):
        code |= (np.ones(n, dtype=np.int64) if where is None else where.astype(np.int64)) << bit
    patterns = np.unique(code)
    out = [None] * n if len(patterns) > 1 else None
    for pattern in patterns.tolist():
        present = [(name, js) for bit, (name, js, _, _) in enumerate(texts) if pattern >> bit & 1]
        template = "{" + ", ".join(f'"{name}": %s' for name, _ in present) + "}"
        if out is None:  # every point records the same columns
            return [template % row for row in zip(*[js for _, js in present])] if present else ["{}"] * n
        rows = np.flatnonzero(code == pattern).tolist()
        columns = [[js[i] for i in rows] for _, js in present]
        for i, row in zip(rows, zip(*columns) if columns else [()] * len(rows)):
            out[i] = template % row
    return out


def _csv_text(table: PointTable, parts) -> List[str]:
    """``results.csv`` of a fresh vectorized sweep, in pieces (the bytes :func:`export_csv` writes from
    the store): rows in key order, configuration columns, the result columns in sorted order, status."""
    names = sorted({name for _, _, texts in parts for name, _, _, where in texts if where is None or where.any()})
    out = [",".join(["key", *CONFIG_COLUMNS, *names, "status", "error"]) + "\r\n"]
    template = ",".join(["%s"] * (1 + 6 + len(names))) + ",ok,\r\n"  # the shape is one cell: K,n,d
    levels = [np.array(level, dtype=object) for level in table.levels]
    for rows, keys, texts in parts:
        by_name = {name: (csv if where is None else np.where(where, np.array(csv, dtype=object), "").tolist())
                   for name, _, csv, where in texts}
        blank = [""] * len(rows)
        config = [level[index].tolist() for level, index in zip(levels, table.index[:, rows])]
        out.append("".join([template % row for row in zip(keys, *config, *[by_name.get(k, blank) for k in names])]))
    return out


def export_csv(store: SweepStore, path) -> None:
    """The tidy table: one row per point, configuration columns then result columns (atomic);
    the same table as ``results.parquet`` beside it when pyarrow is installed."""
    rows = store.rows()
    _export_parquet(rows, Path(path).with_suffix(".parquet"))
    keys = sorted({k for r in rows for k in r["result"]})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["key", *CONFIG_COLUMNS, *keys, "status", "error"])
    w.writerows([r["key"], *[r["config"][k] for k in CONFIG_COLUMNS],
                 *["" if v is None or v != v else v for v in map(r["result"].get, keys)], r["status"], r["error"] or ""]
                for r in rows)  # v != v: NaN, written as an empty cell
    atomic_write_text(path, buf.getvalue())


def _export_parquet_from(store: SweepStore, path: Path) -> None:
    """``results.parquet`` from the store, when pyarrow is installed (the store is read only then)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return
    _export_parquet(store.rows(), path)


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
    """Progress of the sweep in ``out``: total points, done, errors, remaining, the components asked
    for and the number of grids. Read-only: works on a store in a read-only folder."""
    path = Path(out) / "sweep.sqlite"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: no sweep has been run in {out}")
    with SweepStore(path, readonly=True) as store:
        grids = store.grids()
        errors = store.count("error")
        if len(grids) > 1:  # a point is done when it has the components of every grid holding it
            needs, have = point_needs(grids), store.components()
            total = len(needs)
            done = sum(need <= have.get(key, set()) for key, need in needs.items())
            need = set().union(*needs.values())
        else:
            total = store.meta("total") or 0
            need = set(grids[0]["what"]) if grids else set()
            done = sum(n for comps, n in store.count_by_components().items() if need <= set(comps))
    return {"total": total, "done": done, "errors": errors, "remaining": total - done,
            "what": sorted(need), "grids": len(grids)}
