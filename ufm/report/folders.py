"""Redraw the figures of a finished folder, whatever wrote it (``ufm plot DIR``)."""
from __future__ import annotations

from pathlib import Path
from typing import List

__all__ = ["plot_folder"]


def plot_folder(out) -> List[Path]:
    """The figures (and reports) of the experiment or sweep folder ``out``, drawn from its records
    alone; returns their paths.

    Raises:
        FileNotFoundError: ``out`` holds neither an experiment (``experiment.json``) nor a sweep
            (``sweep.sqlite``).
        ValueError: the records hold nothing finished to draw.
    """
    out = Path(out)
    if (out / "experiment.json").is_file():
        from ufm.report.experiment import render_experiment

        return render_experiment(out)
    from ufm.report.sweep_figures import plot_sweep

    return plot_sweep(out)
