"""A sweep specification: lists of values per parameter, expanded into points with stable keys.

The same keys come from command-line flags (``--alphas 0,0.1 --classes 3,10 ...``) and from a
TOML file (``alphas = [0, 0.1]``, ``classes = [3, 10]``, ...); an unknown key is an error.
``dims`` holds ints or expressions in K: ``"K"``, ``"K-1"``, ``"2K"``, ``"K+3"``.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import List, Union

from ufm._core.io import read_toml
from ufm._core.validation import Interval, InvalidParameterError, check_param
from ufm.problem import UFMProblem

__all__ = ["SweepSpec", "point_key", "KEYS", "WHAT"]

#: the computations a sweep can make per point (run by ``ufm.sweep.runner``)
WHAT = ("closed-form", "solve", "conditioning", "convergence")

#: the keys of a sweep file and of the flags (``--per-class`` for ``per_class``, ...)
KEYS = ("alphas", "classes", "dims", "per_class", "lambda_w", "lambda_h", "lambda_b", "seeds", "what")

_DIM = re.compile(r"^\s*(?:(\d+)\s*\*?\s*)?K\s*(?:([+-])\s*(\d+))?\s*$")


def _dim_of(expr: Union[int, str], K: int) -> int:
    """An int, or an expression ``[a]K[+-b]`` evaluated at K."""
    if isinstance(expr, int) and not isinstance(expr, bool):
        return expr
    m = _DIM.match(str(expr))
    if not m:
        raise InvalidParameterError(f"The 'dims' parameter of SweepSpec must hold ints or expressions like K, "
                                    f"K-1, 2K, K+3. Got {expr!r} instead.", param="dims", value=expr,
                                    expected="ints or expressions like K, K-1, 2K")
    a = int(m.group(1) or 1)
    b = int(m.group(3) or 0) * (-1 if m.group(2) == "-" else 1)
    return a * K + b


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


#: the canonical JSON of a point (keys sorted; floats by repr, as json.dumps writes them)
_CANONICAL = ('{{"alpha": {alpha!r}, "dim": {dim}, "lambda_b": {lambda_b!r}, "lambda_h": {lambda_h!r}, '
              '"lambda_w": {lambda_w!r}, "loss": "{loss}", "num_classes": {num_classes}, "per_class": {per_class}, '
              '"seed": {seed}}}')


def point_key(config: dict) -> str:
    """A stable key of a point: the first 16 hex digits of the SHA-256 of its canonical JSON."""
    return _key(json.dumps(config, sort_keys=True))


def _key(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class SweepSpec:
    """Lists of values; the sweep is their Cartesian product (``seeds`` is a count: seeds 0..seeds-1).

    ``what`` selects the computations per point (``ufm.sweep.WHAT``).
    """

    alphas: List[float] = field(default_factory=lambda: [0.0, 0.05, 0.1])
    classes: List[int] = field(default_factory=lambda: [10])
    dims: List[Union[int, str]] = field(default_factory=lambda: ["K"])
    per_class: List[int] = field(default_factory=lambda: [10])
    lambda_w: List[float] = field(default_factory=lambda: [5e-3])
    lambda_h: List[float] = field(default_factory=lambda: [5e-3])
    lambda_b: List[float] = field(default_factory=lambda: [0.0])
    seeds: int = 1
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
        check_param("seeds", self.seeds, Interval("int", 1, None, "left"), "SweepSpec")
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
        # Every value is checked once, as part of a UFMProblem (the constraints are per parameter),
        # instead of once per point: a sweep of 10^5 points expands in well under a second.
        first = dict(lambda_w=self.lambda_w[0], lambda_h=self.lambda_h[0], lambda_b=self.lambda_b[0],
                     alpha=self.alphas[0])
        with _spec_names():
            for name, values in (("lambda_w", self.lambda_w), ("lambda_h", self.lambda_h),
                                 ("lambda_b", self.lambda_b), ("alpha", self.alphas)):
                for v in values:
                    UFMProblem(self.classes[0], self.per_class[0], _dim_of(self.dims[0], self.classes[0]),
                               **{**first, name: v})
            shapes = []
            for K, dim, n in itertools.product(self.classes, self.dims, self.per_class):
                p = UFMProblem(K, n, _dim_of(dim, K), **first)
                shapes.append((p.K, p.d, p.n))
        loss = UFMProblem(3, 1, 3).loss
        out, seen = [], set()
        for (K, d, n), lw, lh, lb, alpha, seed in itertools.product(
                shapes, self.lambda_w, self.lambda_h, self.lambda_b, self.alphas, range(self.seeds)):
            config = {"num_classes": K, "per_class": n, "dim": d, "lambda_w": float(lw), "lambda_h": float(lh),
                      "lambda_b": float(lb), "alpha": float(alpha), "loss": loss, "seed": seed}
            # json.dumps(config, sort_keys=True), written out (3x faster; a test checks it is the same);
            # kept in the point: the store writes it as the configuration
            canonical = _CANONICAL.format(**config)
            key = _key(canonical)
            if key in seen:
                continue
            seen.add(key)
            out.append({**config, "key": key, "config_json": canonical})
        return out
