"""Sweeps over the smoothing factor, the class count and the regularization (``ufm sweep``).

``spec`` expands a grid (flags or a TOML file) into points with stable keys; ``runner``
computes them (closed forms and condition numbers for all points at once, the other
components in groups of one shape through a ``concurrent.futures`` executor) into the SQLite
store of ``ufm.records.store``, one transaction per group, so a sweep resumes where it stopped.
"""
from ufm.sweep.runner import WHAT, run_sweep, sweep_status
from ufm.sweep.spec import SweepSpec

__all__ = ["SweepSpec", "run_sweep", "sweep_status", "WHAT"]
