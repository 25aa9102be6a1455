"""A sweep specification: lists of values per parameter, expanded into points with stable keys.

The same keys come from command-line flags (``--alphas 0,0.1 --classes 3,10 ...``) and from a
TOML file (``alphas = [0, 0.1]``, ``classes = [3, 10]``, ...); an unknown key is an error.
``dims`` holds ints or expressions in K: ``"K"``, ``"K-1"``, ``"2K"``, ``"K+3"``.
"""
from __future__ import annotations

import gc
import hashlib
import itertools
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ufm._core.io import read_toml
from ufm._core.validation import SEED, Interval, InvalidParameterError, ListOf, check_param
from ufm.problem import UFMProblem
from ufm.records.schema import CONFIG_COLUMNS, dim_of

__all__ = ["SweepSpec", "PointTable", "point_key", "KEYS", "WHAT"]

#: the computations a sweep can make per point (run by ``ufm.sweep.runner``)
WHAT = ("closed-form", "solve", "conditioning", "convergence")

#: the keys of a sweep file and of the flags (``--per-class`` for ``per_class``, ...)
KEYS = ("alphas", "classes", "dims", "per_class", "lambda_w", "lambda_h", "lambda_b", "seeds", "what")

#: a UFMProblem parameter -> the sweep key that lists its values
_SPEC_NAMES = {"alpha": "alphas", "num_classes": "classes", "dim": "dims"}


@contextmanager
def _spec_names():
    """Re-raise a UFMProblem error under the sweep's key (``alphas`` for ``alpha``, ...)."""
    try:
        yield
    except InvalidParameterError as e:
        name = _SPEC_NAMES.get(e.param, e.param)
        raise InvalidParameterError(f"The {name!r} parameter of SweepSpec must hold values that are "
                                    f"{e.expected}. Got {e.value!r} instead.", param=name, value=e.value,
                                    expected=e.expected) from None


def point_key(config: dict) -> str:
    """A stable key of a point: the first 16 hex digits of the SHA-256 of its canonical JSON."""
    return _key(json.dumps(config, sort_keys=True))


def _key(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


_SEED_COUNT = Interval("int", 1, None, "left")
#: a list of seeds (non-empty, each an int >= 0); a count is the other accepted form
_SEED_LIST = ListOf(SEED)


@dataclass
class SweepSpec:
    """Lists of values; the sweep is their Cartesian product. ``seeds``: a count N (seeds 0..N-1, as
    ``--seeds N`` gives) or a list of distinct seeds (as ``ufm.solve`` takes them); a list 0..N-1
    is stored as the count N, so both spell one grid.

    ``what`` selects the computations per point (``ufm.sweep.WHAT``).
    """

    alphas: List[float] = field(default_factory=lambda: [0.0, 0.05, 0.1])
    classes: List[int] = field(default_factory=lambda: [10])
    dims: List[Union[int, str]] = field(default_factory=lambda: ["K"])
    per_class: List[int] = field(default_factory=lambda: [10])
    lambda_w: List[float] = field(default_factory=lambda: [5e-3])
    lambda_h: List[float] = field(default_factory=lambda: [5e-3])
    lambda_b: List[float] = field(default_factory=lambda: [0.0])
    seeds: Union[int, List[int]] = 1
    what: List[str] = field(default_factory=lambda: ["closed-form"])

    def __post_init__(self):

        for name in ("alphas", "classes", "dims", "per_class", "lambda_w", "lambda_h", "lambda_b", "what"):
            value = getattr(self, name)
            if isinstance(value, (str, int, float)):
                value = [value]
            if not isinstance(value, (list, tuple)) or not value:
                raise InvalidParameterError(f"The {name!r} parameter of SweepSpec must be a non-empty list. "
                                            f"Got {value!r} instead.", param=name, value=value,
                                            expected="a non-empty list")
            setattr(self, name, list(value))
        if isinstance(self.seeds, (list, tuple)):
            check_param("seeds", list(self.seeds), _SEED_LIST, "SweepSpec")
            if len(set(self.seeds)) != len(self.seeds):
                raise InvalidParameterError(f"The 'seeds' parameter of SweepSpec must hold distinct seeds. Got "
                                            f"{list(self.seeds)!r} instead.", param="seeds", value=list(self.seeds),
                                            expected="a count >= 1 or a list of distinct ints >= 0")
            seeds = sorted(self.seeds)  # a set of seeds: the order does not make another grid
            self.seeds = len(seeds) if seeds == list(range(len(seeds))) else seeds
        else:
            check_param("seeds", self.seeds, _SEED_COUNT, "SweepSpec")
        for w in self.what:
            if w not in WHAT:
                raise InvalidParameterError(f"The 'what' parameter of SweepSpec must hold names among "
                                            f"{', '.join(WHAT)}. Got {w!r} instead.", param="what", value=w,
                                            expected=f"names among {', '.join(WHAT)}")

    @classmethod
    def from_mapping(cls, data: dict, source: str = "sweep file") -> "SweepSpec":
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise InvalidParameterError(f"Unknown key {unknown[0]!r} in the {source}; valid keys: {', '.join(KEYS)}.",
                                        param=unknown[0], value=data[unknown[0]], expected=", ".join(KEYS))
        return cls(**data)

    @classmethod
    def from_toml(cls, path) -> "SweepSpec":
        data = read_toml(path, "sweep file", "config")
        return cls.from_mapping(data, source=f"sweep file {str(path)!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def points(self) -> List[dict]:
        """The expanded points, in a fixed order; each a dict of UFMProblem fields, ``seed``,
        ``key`` and ``config_json`` (the canonical JSON the key hashes). Each point is validated as a UFMProblem (bad values raise, naming the parameter)."""
        return self.table().points()

    def shapes(self) -> List[tuple]:
        """The (K, d, n) of the grid, every value of the grid checked once as part of a UFMProblem
        (the constraints are per parameter; bad values raise, naming the sweep's key)."""
        first = dict(lambda_w=self.lambda_w[0], lambda_h=self.lambda_h[0], lambda_b=self.lambda_b[0],
                     alpha=self.alphas[0])
        with _spec_names():
            for name, values in (("lambda_w", self.lambda_w), ("lambda_h", self.lambda_h),
                                 ("lambda_b", self.lambda_b), ("alpha", self.alphas)):
                for v in values:
                    UFMProblem(self.classes[0], self.per_class[0], dim_of(self.dims[0], self.classes[0]),
                               **{**first, name: v})
            shapes = []
            for K, dim, n in itertools.product(self.classes, self.dims, self.per_class):
                p = UFMProblem(K, n, dim_of(dim, K), **first)
                shapes.append((p.K, p.d, p.n))
        return shapes

    def table(self, shapes: Optional[List[tuple]] = None) -> "PointTable":
        """The points of :meth:`points` as columns (validated the same way, in the same order;
        ``shapes``: those of :meth:`shapes`, when the caller has them)."""
        shapes = self.shapes() if shapes is None else shapes
        with paused_gc():
            return PointTable.expand(shapes, [float(v) for v in self.lambda_w], [float(v) for v in self.lambda_h],
                                     [float(v) for v in self.lambda_b], [float(v) for v in self.alphas],
                                     self.seed_list(), UFMProblem(3, 1, 3).loss)

    def seed_list(self) -> List[int]:
        """The seeds of every configuration: 0..seeds-1 for a count, else the list."""
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


@contextmanager
def paused_gc():
    """Millions of strings and tuples, none in a reference cycle: the cyclic garbage collector, which
    would scan them again and again as they accumulate, is paused meanwhile (and restored after)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class PointTable:
    """Expanded points as columns, in the grid's order (shape, lambda_W, lambda_H, lambda_b, alpha,
    seed), a point equal to an earlier one dropped: ``columns`` (``CONFIG_COLUMNS`` -> (N,) arrays:
    ints for K, n, d and the seed, floats else), ``keys``, ``configs`` (the canonical JSON each key
    hashes), and each point's ``index`` (6, N) into the grid's ``levels``: per axis, its values as
    JSON and CSV write them (``repr`` of a float, ``str`` of an int; the shape as ``K,n,d``)."""

    columns: Dict[str, np.ndarray]
    keys: List[str]
    configs: List[str]
    index: np.ndarray
    levels: List[List[str]]
    loss: str

    def __len__(self) -> int:
        return len(self.keys)

    def points(self, rows: Optional[Sequence[int]] = None) -> List[dict]:
        """The points ``rows`` (default all) as dicts: UFMProblem fields, ``seed``, ``key``, ``config_json``."""
        rows = list(range(len(self))) if rows is None else list(rows)
        cols = [self.columns[k][rows].tolist() for k in CONFIG_COLUMNS]
        return [{"num_classes": K, "per_class": n, "dim": d, "lambda_w": lw, "lambda_h": lh, "lambda_b": lb,
                 "alpha": a, "loss": self.loss, "seed": seed, "key": self.keys[i], "config_json": self.configs[i]}
                for i, K, n, d, lw, lh, lb, a, seed in zip(rows, *cols)]

    @classmethod
    def expand(cls, shapes, lambda_w, lambda_h, lambda_b, alphas, seeds, loss) -> "PointTable":
        """The product of the axes (``shapes``: (K, d, n) triples; lists of floats; seeds: ints)."""
        dims = [f'"dim": {d}' for K, d, n in shapes]
        kns = [f'"num_classes": {K}, "per_class": {n}' for K, d, n in shapes]
        texts = [[repr(v) for v in vs] for vs in (lambda_w, lambda_h, lambda_b, alphas)] + [[str(s) for s in seeds]]
        lw_t, lh_t, lb_t, a_t, seed_t = texts
        # json.dumps(config, sort_keys=True), written out (3x faster; a test checks it is the same)
        configs = [f'{{"alpha": {a}, {dims[i]}, "lambda_b": {lb}, "lambda_h": {lh}, "lambda_w": {lw}, "loss": "{loss}", '
                   f'{kns[i]}, "seed": {seed}}}'
                   for i, lw, lh, lb, a, seed in itertools.product(range(len(shapes)), lw_t, lh_t, lb_t, a_t, seed_t)]
        keys = [_key(c) for c in configs]
        sizes = (len(shapes), len(lambda_w), len(lambda_h), len(lambda_b), len(alphas), len(seeds))
        index = np.indices(sizes).reshape(len(sizes), -1)  # C order: the order of itertools.product
        if len(set(keys)) < len(keys):  # repeated values in a list, or two dims equal at some K
            seen, keep = set(), []
            for i, k in enumerate(keys):
                if k not in seen:
                    seen.add(k)
                    keep.append(i)
            index, keys, configs = index[:, keep], [keys[i] for i in keep], [configs[i] for i in keep]
        sh = np.array(shapes, dtype=np.int64).reshape(-1, 3)[index[0]]
        columns = {"num_classes": sh[:, 0], "per_class": sh[:, 2], "dim": sh[:, 1],
                   **{name: np.array(values, dtype=float)[index[axis]] for axis, (name, values) in
                      enumerate((("lambda_w", lambda_w), ("lambda_h", lambda_h), ("lambda_b", lambda_b),
                                 ("alpha", alphas)), start=1)},
                   "seed": np.array(seeds, dtype=np.int64)[index[5]]}
        levels = [[f"{K},{n},{d}" for K, d, n in shapes]] + texts
        return cls(columns=columns, keys=keys, configs=configs, index=index, levels=levels, loss=loss)
