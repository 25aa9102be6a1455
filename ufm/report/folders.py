"""Redraw the figures of a finished folder, whatever wrote it (``ufm plot DIR``).

The options every figure shares live here: the file formats (:data:`FORMATS`, written by
:func:`save_figure`, each atomically) and the y-scale rule (:data:`LOGY`, :func:`y_scale`). A
sweep's figures also take a selection and a facet (``ufm.report.sweep_figures``).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

from ufm._core.io import atomic_write
from ufm._core.validation import InvalidParameterError, ListOf, Options, OrNone, validate_params

__all__ = ["plot_folder", "save_figure", "y_scale", "FORMATS", "LOGY"]

#: the file formats a figure can be written in (matplotlib's savefig, Agg backend)
FORMATS = ("png", "pdf", "svg")
#: the y-scale of line panels: auto (log when the panel's values are all positive and span more than a
#: decade), on (log; symmetric log when a value is <= 0, so that none is hidden), off (linear)
LOGY = ("auto", "on", "off")
#: max/min above which ``logy="auto"`` draws a log axis
DECADE = 10.0


def y_scale(values, logy: str = "auto") -> str:
    """The matplotlib y-scale of a panel whose plotted values are ``values`` under the rule ``logy``
    (:data:`LOGY`): ``"log"``, ``"symlog"`` (``on`` with a value <= 0) or ``"linear"``; non-finite
    values are ignored."""
    import math

    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    positive = bool(finite) and min(finite) > 0
    if logy == "off" or not finite:
        return "linear"
    if logy == "on":
        return "log" if positive else "symlog"
    return "log" if positive and max(finite) / min(finite) > DECADE else "linear"


def save_figure(fig, stem, formats: Sequence[str] = ("png",), dpi: int = 110) -> List[Path]:
    """Lay ``fig`` out (``tight_layout``), write it to ``stem.<format>`` for each of ``formats``
    (atomically), close it, and return the paths written."""
    stem = Path(stem)
    fig.tight_layout()
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        atomic_write(path, lambda fh, fmt=fmt: fig.savefig(fh, format=fmt, dpi=dpi), binary=True)
        paths.append(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths


@validate_params({"logy": OrNone(Options(LOGY)), "formats": ListOf(Options(FORMATS))})
def plot_folder(out, select: Optional[dict] = None, facet: Optional[str] = None, logy: Optional[str] = None,
                formats: Sequence[str] = ("png",), to=None) -> List[Path]:
    """The figures (and reports) of the experiment, run or sweep folder ``out``, drawn from its records
    alone, in each of ``formats``, into ``to`` (None: ``out``; ``out`` is only read, so a read-only
    folder can be drawn elsewhere); returns their paths. A run folder (``config.json``: ``ufm train``,
    ``ufm.Tracker``) is drawn as an experiment of one run.

    ``select``, ``facet`` and ``logy`` (None: ``"auto"``) shape a sweep's figures and are checked
    by ``ufm.report.sweep_figures.plot_sweep``; an experiment's figures take none of them.

    Raises:
        FileNotFoundError: ``out`` holds neither an experiment (``experiment.json``) nor a sweep
            (``sweep.sqlite``).
        InvalidParameterError: a selection that selects nothing, or sweep options for an experiment.
        ValueError: the records hold nothing finished to draw.
    """
    out = Path(out)
    if (out / "experiment.json").is_file() or (out / "config.json").is_file():
        from ufm.report.experiment import render_experiment

        for name, value in (("select", select), ("facet", facet), ("logy", logy)):
            if value is not None:
                raise InvalidParameterError(f"The {name!r} parameter of plot_folder applies to a sweep's figures; "
                                            f"{out} holds an experiment.", param=name, value=value)
        return render_experiment(out, formats=formats, to=to)
    from ufm.report.sweep_figures import plot_sweep

    return plot_sweep(out, select=select, facet=facet, logy=logy or "auto", formats=formats, to=to)
