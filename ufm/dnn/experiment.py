"""Experiments: a grid of training runs (CE vs LS, seeds), run in parallel and resumable.

An experiment is a TOML file (bundled ones: :data:`BUNDLED`, in ``ufm/dnn/experiments/``)::

    name = "mnist1d-mlp"
    description = "..."
    [base]            # TrainConfig keys shared by every run
    dataset = "mnist1d"
    ...
    [grid]            # TrainConfig keys -> lists; every combination is one run
    alpha = [0.0, 0.05, 0.1, 0.2]
    seed = [0, 1]

Each run trains in ``OUT/runs/<key=value-...>/`` (a resumable run folder, see
``ufm.records.runs``); runs go to the same executors as sweeps (``ufm._core.executors``: local
worker processes or a Dask cluster). Running the experiment again resumes unfinished runs
and skips finished ones. The experiment writes records only: ``experiment.json`` (the spec)
first, and when every run is done ``summary.csv`` (the last record of each run and split) and
``validation.json`` (the verdicts of ``ufm.analysis.networks.validate``) and ``claims.json``
(every claim of the paper judged on these runs, ``ufm.analysis.claims``). The figures,
``report.md`` and ``validation.md`` are drawn from these files by
``ufm.report.experiment.render_experiment``.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import os
import time
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

from ufm._core.io import atomic_write_text, missing_folders, read_json, read_toml, remove_empty, writable_folder, write_json
from ufm._core.validation import Interval, InvalidParameterError, Options, check_param
from ufm._core.executors import dask_executor, process_pool
from ufm.analysis.claims import evaluate_claims
from ufm.analysis.networks import validate
from ufm.records.runs import CONFIG, EXPERIMENT, RUNS, read_records
from ufm.dnn.config import TrainConfig
from ufm.dnn.evaluate import NOISE_KEYS
from ufm.dnn.training import time_training, train

__all__ = ["ExperimentSpec", "load_experiment", "run_experiment", "plan_experiment", "scale_milestones", "BUNDLED", "SUMMARY_KEYS"]

_BUNDLED_DIR = Path(__file__).parent / "experiments"
#: names of the bundled experiments (``ufm experiment NAME``)
BUNDLED = tuple(sorted(p.stem for p in _BUNDLED_DIR.glob("*.toml")))
SUMMARY_KEYS = ("loss", "error", "nc1", "nc2_h", "nc2_w", "nc3", "nc4", "w_norm", "h_norm", "logit_gap", "p_true",
                "p_off", "ece", "adaptive_ece", "temperature", "ece_ts", "adaptive_ece_ts", *NOISE_KEYS)


@dataclass(frozen=True)
class ExperimentSpec:
    """A named grid of training runs: ``base`` TrainConfig keys and a ``grid`` of lists."""

    name: str
    base: dict
    grid: dict
    description: str = ""
    runs_: list = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.base, dict):
            raise InvalidParameterError(f"The 'base' table of experiment {self.name!r} must map TrainConfig keys to "
                                        f"values. Got {self.base!r} instead.", param="base")
        if not isinstance(self.grid, dict) or not self.grid:
            raise InvalidParameterError(f"The 'grid' table of experiment {self.name!r} must map TrainConfig keys to "
                                        f"non-empty lists. Got {self.grid!r} instead.", param="grid")
        for k, v in self.grid.items():
            # no repeats (e.g. alpha = [0.1, 0.10]): two runs would share one folder
            if not isinstance(v, list) or not v or len({json.dumps(x, sort_keys=True) for x in v}) != len(v):
                raise InvalidParameterError(f"The 'grid.{k}' entry of experiment {self.name!r} must be a non-empty "
                                            f"list without repeats. Got {v!r} instead.", param=f"grid.{k}")
        runs = []
        keys = list(self.grid)
        for values in itertools.product(*(self.grid[k] for k in keys)):
            changes = dict(zip(keys, values))
            cfg = TrainConfig.from_dict({**self.base, **changes}, where=f"experiment {self.name!r}")
            runs.append(("-".join(f"{k}={v}" for k, v in changes.items()), cfg))  # validated here, up front
        object.__setattr__(self, "runs_", runs)

    def runs(self) -> list:
        """[(run name, TrainConfig)], every combination of the grid, in order."""
        return list(self.runs_)

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "base": self.base, "grid": self.grid,
                "runs": [name for name, _ in self.runs_]}

    def override(self, **base_changes) -> "ExperimentSpec":
        """The same experiment with ``base`` keys changed (e.g. fewer epochs for a short form)."""
        grid = {k: v for k, v in self.grid.items() if k not in base_changes}
        return ExperimentSpec(self.name, {**self.base, **base_changes}, grid or {"seed": [0]}, self.description)

    def with_epochs(self, epochs: int) -> "ExperimentSpec":
        """The same experiment trained for ``epochs`` epochs, its learning-rate milestones scaled with it.

        Each milestone m of ``base`` (and of a ``grid`` of milestone lists) becomes m N / E rounded
        half up, N = ``epochs`` and E the old number of epochs, kept in [1, N - 1] (a milestone
        at N or later would never lower the learning rate), repeats dropped: ``[100, 150]`` at
        200 epochs becomes ``[25, 38]`` at 50 and ``[1]`` at 2. When the grid varies ``epochs``
        there is no one E and the milestones are left as they are. ``eval_every`` is left as it is:
        it changes no training, only how often (and at what cost) records are taken. The schedule's
        other keys need nothing: ``cosine`` already follows ``epochs``.
        """
        check_param("epochs", epochs, Interval("int", 1, None, "left"), "ExperimentSpec.with_epochs")
        if "epochs" in self.grid:
            return self.override(epochs=epochs)
        old = self.base.get("epochs", TrainConfig().epochs)
        base = {**self.base, "epochs": epochs}
        if "milestones" in base:
            base["milestones"] = scale_milestones(base["milestones"], old, epochs)
        grid = dict(self.grid)
        if "milestones" in grid:
            grid["milestones"] = list({json.dumps(v): v for v in (scale_milestones(m, old, epochs)
                                                                   for m in grid["milestones"])}.values())
        return ExperimentSpec(self.name, base, grid, self.description)

    def with_seeds(self, seeds: int) -> "ExperimentSpec":
        """The same experiment over the seeds 0, 1, ..., ``seeds - 1`` (replacing the grid's seeds)."""
        check_param("seeds", seeds, Interval("int", 1, None, "left"), "ExperimentSpec.with_seeds")
        return ExperimentSpec(self.name, self.base, {**self.grid, "seed": list(range(seeds))}, self.description)


def scale_milestones(milestones, old_epochs: int, epochs: int) -> list:
    """``milestones`` (epochs of a run of ``old_epochs``) for a run of ``epochs``: each m becomes
    round(m epochs / old_epochs), halves rounded up, kept in [1, epochs - 1]; sorted, repeats
    dropped (so a run of 1 epoch has none).

    >>> scale_milestones([100, 150], 200, 50), scale_milestones([100, 150], 200, 2), scale_milestones([3], 4, 1)
    ([25, 38], [1], [])
    """
    scaled = {min(epochs - 1, max(1, (2 * int(m) * epochs + old_epochs) // (2 * old_epochs))) for m in milestones}
    return sorted(m for m in scaled if m >= 1)


def load_experiment(name_or_path) -> ExperimentSpec:
    """A bundled experiment by name, or an experiment TOML file by path."""
    path = Path(name_or_path)
    if not path.suffix == ".toml":
        check_param("experiment", str(name_or_path), Options(BUNDLED), "load_experiment")
        path = _BUNDLED_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise InvalidParameterError(f"The experiment file {path} does not exist.", param="experiment",
                                    value=str(path))
    d = read_toml(path, "experiment file", "experiment")
    unknown = sorted(set(d) - {"name", "description", "base", "grid"})
    if unknown:
        raise InvalidParameterError(f"Unknown key {unknown[0]!r} in {path}; valid keys: name, description, base, grid.",
                                    param=unknown[0])
    return ExperimentSpec(d.get("name", path.stem), d.get("base", {}), d.get("grid", {}), d.get("description", ""))


def run_experiment(spec: ExperimentSpec, out, *, workers: Optional[int] = None, cluster: Optional[str] = None,
                   progress: bool = True, log: Optional[Callable[[str], None]] = None) -> dict:
    """Run (or resume) every run of ``spec`` under ``out``; write the summary and the validation.

    Writes ``experiment.json``, then (when every run is done) ``summary.csv`` and
    ``validation.json``; ``ufm.report.experiment.render_experiment`` draws the figures and
    reports from them.

    Args:
        spec: the experiment.
        out: its folder (``out/runs/<run>/`` per run).
        workers: worker processes (default one per CPU, at most one per run); 0 runs the runs
            one after another in this process, each with its own progress bar.
        cluster: ``local-dask`` or ``dask://HOST:PORT`` instead of local processes.
        progress: progress bars (runs done, and the current run's epochs when ``workers=0``).
        log: called with one line per finished run.

    Returns:
        dict with ``runs`` (run summaries), ``seconds``, ``validation``.

    Raises:
        ClusterError: (``ufm._core.executors``) the ``cluster`` cannot be used.

    A call that fails before any run has started leaves no ``experiment.json`` (nor a folder it
    created).
    """
    log = log or (lambda msg: None)
    if workers is not None:
        check_param("workers", workers, Interval("int", 0, None, "left"), "run_experiment")
    out = Path(out)
    runs = spec.runs()
    _check_experiment_folder(out, spec)
    made = missing_folders(out)
    writable_folder(out)
    had_spec = (out / EXPERIMENT).is_file()
    write_json(out / EXPERIMENT, spec.to_dict())
    try:
        return _run_all(spec, runs, out, workers, cluster, progress, log)
    except Exception:
        if not had_spec and not (out / RUNS).exists():  # no run was started: leave nothing behind
            (out / EXPERIMENT).unlink()
            remove_empty(made)
        raise


def _check_experiment_folder(out: Path, spec: "ExperimentSpec") -> None:
    """Refuse a folder holding other work: a sweep, a single run, or another experiment (by name).

    Raises:
        InvalidParameterError: (``param="out"``) naming what the folder holds.
    """
    other = ("a sweep (sweep.sqlite)" if (out / "sweep.sqlite").is_file() else
             "a single run (config.json)" if (out / CONFIG).is_file() else None)
    if other is None and (out / EXPERIMENT).is_file():
        try:
            name = read_json(out / EXPERIMENT).get("name")
        except (OSError, ValueError, AttributeError):
            name = None
        if name != spec.name:
            other = f"another experiment ({name!r})" if name else "an unreadable experiment.json"
    if other is not None:
        raise InvalidParameterError(f"The 'out' parameter of run_experiment: {out} holds {other}; pass another "
                                    "folder.", param="out", value=str(out))


def _run_all(spec: ExperimentSpec, runs: List[tuple], out: Path, workers, cluster, progress: bool, log) -> dict:
    """The runs of :func:`run_experiment`, then its summary, validation and claims."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    summaries = {}
    bar = tqdm(total=len(runs), disable=not progress, desc=spec.name, unit="run", dynamic_ncols=True)

    def done(name, s):
        summaries[name] = s
        bar.update(1)
        test = s["final"].get("test", {})
        log(f"[{len(summaries)}/{len(runs)}] {name}: test error {test.get('error', float('nan')):.4f}, "
            f"NC1 {s['final'].get('train', {}).get('nc1', float('nan')):.3g} ({s['seconds']:.1f} s)")

    if workers == 0 and cluster is None:
        for name, cfg in runs:
            bar.set_postfix_str(f"current: {name}")
            done(name, train(cfg, out / RUNS / name, progress=progress))
    else:
        _run_in_pool(runs, out, workers, cluster, done, bar)
    bar.close()
    _write_summary(out, runs)
    result = validate([out / RUNS / name for name, _ in runs])
    write_json(out / "validation.json", result)
    write_json(out / "claims.json", {"results": evaluate_claims([out])})
    return {"runs": [summaries[name] for name, _ in runs], "seconds": time.perf_counter() - t0,
            "validation": result}


#: the keys besides its data that decide a run's cost per epoch (runs sharing them and their data are timed once)
_COST_KEYS = ("model", "model_options", "batch_size", "dtype", "memory_format", "autocast", "device",
              "eval_batch_size", "mode")


def plan_experiment(spec: ExperimentSpec, *, time: bool = True, budget_s: float = 20.0) -> dict:
    """What running ``spec`` would do, without running it: its runs, where each dataset was found (or
    that it is missing, with the command that gets it) and, when every dataset is there and ``time``,
    an estimate of the wall time from timed training steps and forward passes on the run's device
    (:func:`~ufm.dnn.training.time_training`, about ``budget_s`` seconds per distinct setting).

    Returns:
        dict with ``name``, ``runs`` ([{name, epochs, records, estimate_seconds (or None)}]),
        ``datasets`` ([{dataset, found, where, problem (missing, unreadable, needs a package),
        message}]), ``timings`` (one per distinct setting), ``total_seconds`` (the runs one after
        another; None when not estimated) and ``timed``.
    """
    from ufm._core.validation import DataFileError
    from ufm.dnn.data import DatasetNotFoundError, load_dataset

    runs = spec.runs()
    # the data of each run, without downloading: runs with the same arguments share one dataset
    arguments = [{**cfg.dataset_arguments(), "download": False} for _, cfg in runs]
    data_keys = [json.dumps(a, sort_keys=True) for a in arguments]
    loaded, datasets = {}, []
    for (_, cfg), args, key in zip(runs, arguments, data_keys):
        if key in loaded:
            continue
        try:
            loaded[key] = load_dataset(**args)
            datasets.append({"dataset": cfg.dataset, "found": True, "where": loaded[key].source, "problem": None,
                             "message": None})
        except (DatasetNotFoundError, DataFileError, ImportError) as err:  # missing, damaged, or a package absent
            loaded[key] = None
            problem = ("missing" if isinstance(err, DatasetNotFoundError) else
                       "unreadable" if isinstance(err, DataFileError) else "needs a package")
            datasets.append({"dataset": cfg.dataset, "found": False, "where": None, "problem": problem,
                             "message": str(err)})
    timings, estimates = {}, []
    for (_, cfg), data_key in zip(runs, data_keys):
        data = loaded[data_key]
        key = json.dumps({**json.loads(data_key), **{k: getattr(cfg, k) for k in _COST_KEYS}}, sort_keys=True)
        if time and data is not None and key not in timings:
            timings[key] = time_training(cfg, data=data, budget_s=budget_s)
        t = timings.get(key)
        estimates.append(None if t is None else cfg.epochs * t["epoch_seconds"]
                         + len(cfg.record_epochs()) * t["record_seconds"])
    out_runs = [{"name": name, "epochs": cfg.epochs, "records": len(cfg.record_epochs()), "estimate_seconds": e}
                for (name, cfg), e in zip(runs, estimates)]
    total = sum(estimates) if estimates and all(e is not None for e in estimates) else None
    return {"name": spec.name, "runs": out_runs, "datasets": datasets, "timings": list(timings.values()),
            "total_seconds": total, "timed": bool(time)}


def _run_one(config_dict: dict, out: str, progress: bool) -> dict:
    return train(TrainConfig.from_dict(config_dict), out, progress=progress)


def _run_in_pool(runs: List[tuple], out: Path, workers: Optional[int], cluster: Optional[str], done: Callable,
                 bar) -> None:
    """Train ``runs`` in local worker processes or on a Dask cluster, calling ``done(name, summary)``
    as each finishes; the progress ``bar`` names the runs in flight."""
    close = None
    if cluster is not None:
        pool, close = dask_executor(cluster, workers)
    else:
        pool = process_pool(min(workers or os.cpu_count() or 1, len(runs)))
    try:
        futures = {pool.submit(_run_one, cfg.to_dict(), str(out / RUNS / name), False): name
                   for name, cfg in runs}

        def running():
            names = [futures[f] for f in futures if f.running()]
            left = any(not f.done() for f in futures)
            bar.set_postfix_str(("running: " + (", ".join(names) or "(starting)")) if left else "")

        running()
        for fut in as_completed(futures):
            done(futures[fut], fut.result())
            running()
    finally:
        if close is not None:
            close()
        else:
            pool.shutdown(cancel_futures=True)


def _write_summary(out: Path, runs: List[tuple]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["run", "alpha", "seed", "split", "epoch", *SUMMARY_KEYS])
    for name, cfg in runs:
        last = {}
        for r in read_records(out / RUNS / name):
            last[r["split"]] = r
        for split in ("train", "val", "test"):
            if split in last:
                r = last[split]
                writer.writerow([name, cfg.alpha, cfg.seed, split, r["epoch"],
                                 *("" if r.get(k) is None else repr(r[k]) for k in SUMMARY_KEYS)])
    atomic_write_text(out / "summary.csv", buf.getvalue())
