"""The report of a DNN experiment folder, from its records alone (``ufm experiment``, ``ufm plot DIR``).

Reads ``experiment.json``, each run's ``config.json`` and ``metrics.jsonl`` (through
``ufm.records.runs``) and the experiment's ``validation.json``; writes the figures
(``ufm.report.dnn_figures``), ``report.md`` and ``validation.md``. Re-rendering never re-runs
anything and never edits a record.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from ufm._core.io import atomic_write_text, read_json, writable_folder
from ufm.records.runs import EXPERIMENT, experiment_runs, read_config, read_records
from ufm.report.dnn_figures import FIGURES, draw_figures, final_values
from ufm.report.validation import validation_markdown

__all__ = ["render_experiment", "load_runs", "summary_table", "experiment_markdown"]


def _spec(out: Path) -> dict:
    """``experiment.json``, or for a run folder (``ufm train``, ``ufm.Tracker``) a one-run experiment named after it."""
    return read_json(out / EXPERIMENT) if (out / EXPERIMENT).is_file() else {"name": out.name,
                                                                               "description": "One training run."}


def load_runs(out) -> List[dict]:
    """[{name, alpha, seed, mode, meta, records}] of the experiment folder ``out``, in run order (a
    run folder: its one run)."""
    out = Path(out)
    spec = _spec(out)
    runs = []
    for run in experiment_runs(out) if (out / EXPERIMENT).is_file() else [out]:
        meta = read_config(run)
        runs.append({"name": run.name, "alpha": meta["config"]["alpha"], "seed": meta["config"]["seed"],
                     "mode": meta["config"]["mode"], "meta": meta, "records": read_records(run)})
    if not runs:
        raise ValueError(f"{out} holds no runs yet; run `ufm experiment {spec['name']} --out {out}` first")
    return runs


def render_experiment(out, formats=("png",), to=None) -> List[Path]:
    """Draw the figures (:data:`~ufm.report.dnn_figures.FIGURES`, in each of ``formats``) of the
    experiment (or run) folder ``out`` into ``to`` (None: ``out``), write ``report.md`` there and,
    when ``validation.json`` exists, ``validation.md``; returns the paths of the figures and of
    ``report.md``. ``out`` is only read, so it may be read-only when ``to`` is another folder.

    Raises:
        NotWritableError: ``to`` cannot be written to; raised before any figure is drawn.
    """
    out = Path(out)
    runs = load_runs(out)
    if not any(r["records"] for r in runs):
        raise ValueError(f"{out} holds no records yet (none a checkpoint covers): nothing to draw")
    validation = read_json(out / "validation.json") if (out / "validation.json").is_file() else {}
    to = writable_folder(out if to is None else to)
    paths = draw_figures(to, runs, validation, formats)
    atomic_write_text(to / "report.md", experiment_markdown(out, runs, validation))
    if validation:
        atomic_write_text(to / "validation.md", validation_markdown(validation))
    return [*paths, to / "report.md"]


def summary_table(runs: List[dict]) -> List[str]:
    """Markdown rows: per alpha, the last records (mean ± std over seeds): train and test error,
    train NC1-NC4, test ECE before and after temperature scaling, and the temperature."""
    lines = ["| alpha | train error | test error | NC1 (train) | NC2 means | NC2 W | NC3 | NC4 | test ECE | "
             "test ECE scaled | T |", "|---|---|---|---|---|---|---|---|---|---|---|"]

    def ms(a, split, key, fmt=".3g"):
        v = final_values(runs, a, split, key)
        if not len(v):
            return "–"
        return f"{v.mean():{fmt}} ± {v.std():.1g}" if len(v) > 1 else f"{v.mean():{fmt}}"

    for a in sorted({r["alpha"] for r in runs}):
        lines.append(f"| {a:g} | {ms(a, 'train', 'error')} | {ms(a, 'test', 'error')} | {ms(a, 'train', 'nc1')} | "
                     f"{ms(a, 'train', 'nc2_h')} | {ms(a, 'train', 'nc2_w')} | {ms(a, 'train', 'nc3')} | "
                     f"{ms(a, 'train', 'nc4')} | {ms(a, 'test', 'ece')} | {ms(a, 'test', 'ece_ts')} | "
                     f"{ms(a, 'test', 'temperature')} |")
    return lines


def experiment_markdown(out, runs: List[dict], validation: Dict) -> str:
    """The experiment's report: the last records per alpha (mean ± std over seeds), the
    UFM checks and the figures."""
    out = Path(out)
    spec = _spec(out)
    alphas = sorted({r["alpha"] for r in runs})
    seeds = sorted({r["seed"] for r in runs})
    last_epoch = max(rec["epoch"] for r in runs for rec in r["records"])
    lines = [f"# Experiment `{spec['name']}`", "", spec.get("description", ""), "",
             f"{len(runs)} runs (alphas {', '.join(f'{a:g}' for a in alphas)}; seeds {', '.join(map(str, seeds))}), "
             f"last recorded epoch {last_epoch}. Mean ± std over seeds of the last record of each run.", ""]
    lines += summary_table(runs)
    if (out / "claims.json").is_file():
        from ufm.report.claims import claims_markdown

        lines += ["", "## Claims of the paper, judged on these runs", "",
                  claims_markdown(read_json(out / "claims.json")["results"])]
    lines += ["", "## UFM predictions against the measurements", ""]
    lines += [validation_markdown(validation) if validation else "(no validation.json yet)", ""]
    lines += ["## Figures", ""] + [f"![{f}]({f})" for f in FIGURES] + [""]
    return "\n".join(lines)
