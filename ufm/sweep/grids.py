"""The grids a sweep folder holds, so that two grids are never mixed in one folder by accident.

A folder holds the grid of its first sweep. Rerunning that grid, with the same or other
components (``what``), resumes it; another grid is refused, naming the keys that differ, unless
the sweep extends the folder (``extend=True``, ``ufm sweep --extend``): the folder then records
every grid run in it (store meta ``grids``, ``spec.json``), its ``results.csv`` lists the points of
all of them, and its point count is that of their union. A folder holding files that no sweep
writes (another command's work) is refused.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from ufm._core.validation import InvalidParameterError
from ufm.sweep.spec import WHAT, SweepSpec

__all__ = ["SweepFolderError", "admit", "point_needs", "check_sweep_folder", "SWEEP_FILES"]

#: the files a sweep writes in its folder
SWEEP_FILES = ("sweep.sqlite", "sweep.sqlite-wal", "sweep.sqlite-shm", "results.csv", "results.parquet", "spec.json")


class SweepFolderError(InvalidParameterError):
    """The output folder holds another grid, or other work (``param="out"``)."""

    def __init__(self, message: str, out):
        super().__init__(message, param="out", value=str(out))


def _grid(spec: dict) -> dict:
    """A spec without its components: what makes two sweeps the same grid."""
    return {k: v for k, v in spec.items() if k != "what"}


def _differences(there: dict, here: dict) -> List[str]:
    return [f"{k} {there.get(k)!r} there, {here.get(k)!r} here" for k in here if k != "what" and there.get(k) != here[k]]


def admit(spec: SweepSpec, grids: List[dict], extend: bool, out) -> List[dict]:
    """The folder's grids once ``spec`` runs in it: the same grid gets the union of the components,
    another grid is appended when ``extend``.

    Raises:
        SweepFolderError: another grid, not ``extend``; names every key that differs from the
            nearest recorded grid.
    """
    mine = spec.to_dict()
    for i, g in enumerate(grids):
        if _grid(g) == _grid(mine):
            what = [w for w in WHAT if w in set(g["what"]) | set(mine["what"])]
            return grids[:i] + [{**g, "what": what}] + grids[i + 1:]
    if grids and not extend:
        nearest = min(grids, key=lambda g: len(_differences(g, mine)))
        raise SweepFolderError(f"{out} holds a sweep of another grid ({'; '.join(_differences(nearest, mine))}): "
                               "use another folder, or --extend (extend=True) to add this grid to it", out)
    return grids + [mine]


def point_needs(grids: List[dict]) -> Dict[str, set]:
    """Point key -> the components its grids ask for (the union over the grids holding it)."""
    needs: Dict[str, set] = {}
    for g in grids:
        what = set(g["what"])
        for key in SweepSpec(**g).table().keys:
            needs.setdefault(key, set()).update(what)
    return needs


def check_sweep_folder(out: Path) -> None:
    """Refuse a folder with no sweep store that holds files no sweep writes (hidden files aside).

    Raises:
        SweepFolderError: naming up to three of those files.
    """
    if not out.is_dir() or (out / "sweep.sqlite").is_file():
        return
    other = sorted(p.name for p in out.iterdir() if p.name not in SWEEP_FILES and not p.name.startswith("."))
    if other:
        raise SweepFolderError(f"{out} holds other work ({', '.join(other[:3])}{', ...' if len(other) > 3 else ''}) "
                               "and no sweep: use an empty or new folder", out)
