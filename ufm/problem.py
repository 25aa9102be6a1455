"""The validated UFM problem specification.

Unconstrained feature model with K balanced classes, n samples per class,
N = nK, feature dimension d (Zhu et al. 2021; Guo et al. 2025)::

    f(W, H, b) = (1/N) sum_i L(W h_i + b, y_i)
                 + (lambda_W/2)||W||_F^2 + (lambda_H/2)||H||_F^2 + (lambda_b/2)||b||^2

W is K x d, H is d x N (all N columns, not class means; column i has label
y_i = i // n), b in R^K. L is cross-entropy against the label-smoothed target
(1 - alpha) e_y + (alpha/K) 1; alpha = 0 is plain cross-entropy.

Its constraints (``CONSTRAINTS``) are the ones the command line's problem flags are built from.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Dict, Iterable, List, Tuple

from ufm._core.validation import Interval, Options, check_all

__all__ = ["UFMProblem", "LOSS_NAMES", "group_by_shape"]

#: Losses the toolkit knows, symbolically (theory) and numerically (losses.py).
#: ``label_smoothing`` with alpha = 0 is cross-entropy.
LOSS_NAMES = ("label_smoothing",)

CONSTRAINTS = {
    "num_classes": Interval("int", 2, None, "left"),
    "per_class": Interval("int", 1, None, "left"),
    "dim": Interval("int", 1, None, "left"),
    # The UFM has no minimizer when lambda_W or lambda_H is 0 (the norms can be
    # traded against each other for free), so both must be strictly positive.
    "lambda_w": Interval("float", 0, None, "neither"),
    "lambda_h": Interval("float", 0, None, "neither"),
    "lambda_b": Interval("float", 0, None, "left"),
    "alpha": Interval("float", 0, 1, "left"),
    "loss": Options(LOSS_NAMES),
}


@dataclass(frozen=True)
class UFMProblem:
    """One UFM configuration; validated on construction.

    Args:
        num_classes: K >= 2.
        per_class: n >= 1 samples per class (N = nK).
        dim: feature dimension d >= 1 (the closed form needs d >= K - 1).
        lambda_w: weight decay on the classifier W, > 0.
        lambda_h: weight decay on the features H, > 0.
        lambda_b: weight decay on the bias b, >= 0 (0: unregularized bias).
        alpha: label-smoothing factor in [0, 1); 0 is cross-entropy.
        loss: loss family, one of ``LOSS_NAMES``.

    Raises:
        InvalidParameterError: a parameter out of range, naming it, its value
            and the valid range.
    """

    num_classes: int
    per_class: int
    dim: int
    lambda_w: float = 5e-3
    lambda_h: float = 5e-3
    lambda_b: float = 0.0
    alpha: float = 0.0
    loss: str = "label_smoothing"

    def __post_init__(self):
        check_all(((name, getattr(self, name), c) for name, c in CONSTRAINTS.items()), "UFMProblem")
        for name in ("lambda_w", "lambda_h", "lambda_b", "alpha"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("num_classes", "per_class", "dim"):
            object.__setattr__(self, name, int(getattr(self, name)))

    # Short names, as in the paper.
    @property
    def K(self) -> int:
        return self.num_classes

    @property
    def n(self) -> int:
        return self.per_class

    @property
    def d(self) -> int:
        return self.dim

    @property
    def N(self) -> int:
        return self.num_classes * self.per_class

    @property
    def shape(self) -> tuple:
        """(K, d, n, loss): problems with the same shape are solved as one batch."""
        return (self.num_classes, self.dim, self.per_class, self.loss)

    @property
    def closed_form_applies(self) -> bool:
        """True when d >= K - 1, so a simplex ETF fits in R^d."""
        return self.dim >= self.num_classes - 1

    @classmethod
    def from_config(cls, config, **changes) -> "UFMProblem":
        """The problem described by the fields of ``config`` (a mapping that may hold other keys
        too, such as a sweep point's seed or a stage's solver options), with ``changes`` applied;
        absent fields take their defaults."""
        names = [f.name for f in fields(cls)]
        return cls(**{**{k: config[k] for k in names if k in config}, **changes})

    def replace(self, **changes) -> "UFMProblem":
        return UFMProblem(**{**asdict(self), **changes})

    def to_dict(self) -> dict:
        return asdict(self)


def group_by_shape(items: Iterable, shape: Callable = lambda item: item[0].shape) -> Dict[tuple, List[Tuple[int, Any]]]:
    """{shape: [(index, item), ...]} in input order within each group: the items that can be solved
    as one batch (the same (K, d, n, loss)). ``shape(item)`` gives an item's shape; by default items
    are (UFMProblem, seed) pairs."""
    groups: Dict[tuple, List[Tuple[int, object]]] = {}
    for i, item in enumerate(items):
        groups.setdefault(shape(item), []).append((i, item))
    return groups
