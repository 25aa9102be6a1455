"""Sweeps over the smoothing factor, the class count and the regularization (``ufm sweep``).

``spec`` expands a grid (flags or a TOML file) into points with stable keys; ``store``
keeps finished points in an SQLite file, one transaction per finished group, so a sweep
resumes where it stopped; ``runner`` computes the points, grouped by shape, through a
``concurrent.futures`` executor.
"""
from ufm.sweep.runner import WHAT, run_sweep, sweep_status
from ufm.sweep.spec import SweepSpec

__all__ = ["SweepSpec", "run_sweep", "sweep_status", "WHAT"]
