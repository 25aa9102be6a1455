"""Invalid values generated from the constraints the API declares, for every public entry point.

For each declared parameter, values just outside each end of an interval, non-finite and
wrong-typed values, an unknown name, an empty list: each must raise InvalidParameterError naming
that parameter, before any work is done.
"""
import math
import os

import pytest

import ufm
from ufm._core.validation import Boolean, InstanceOf, Interval, InvalidParameterError, ListOf, Options, OrNone


def invalid_values(c):
    """Values that ``c`` must refuse (it is checked that it does)."""
    if isinstance(c, OrNone):
        return invalid_values(c.constraint)
    if isinstance(c, Interval):
        out = [math.nan, "1", True]
        for end, closed, step in ((c.left, c.closed in ("left", "both"), -1), (c.right, c.closed in ("right", "both"), 1)):
            if end is not None:
                out.append(end + step * (1 if c.kind == "int" else max(1e-9, abs(end) * 1e-9)) if closed else end)
            else:
                out.append(math.inf * step)
        if c.kind == "int":
            out.append(2.5)
        return out
    if isinstance(c, Options):
        return ["no-such-name", 3]
    if isinstance(c, Boolean):
        return [1, "true"]
    if isinstance(c, InstanceOf):
        return [object()]
    if isinstance(c, ListOf):
        bad = [v for v in invalid_values(c.item) if not isinstance(v, (str, bool))]
        return ([[]] if c.min_len else []) + [[bad[0]]] + ["a string"]
    return [v for v in (3, object(), "no-such-value") if not c.contains(v)]  # paths, device names, ...


def _entry_points():
    import torch

    from ufm.dnn.config import CONSTRAINTS as TRAIN, TrainConfig
    from ufm.dnn.track import CONSTRAINTS as TRACK
    from ufm.problem import CONSTRAINTS as PROBLEM

    p = ufm.UFMProblem(3, 2, 3)
    yield "UFMProblem", PROBLEM, lambda **kw: ufm.UFMProblem(**{"num_classes": 3, "per_class": 2, "dim": 3, **kw})
    yield "TrainConfig", TRAIN, lambda **kw: TrainConfig(**kw)
    yield "solve", ufm.solve.constraints, lambda **kw: ufm.solve(p, **kw)
    yield "verify", ufm.verify.constraints, lambda **kw: ufm.verify([(p, 0)], **kw)
    yield "conditioning", ufm.conditioning.constraints, lambda **kw: ufm.conditioning(**{"problem": p, **kw})
    yield "convergence", ufm.convergence.constraints, lambda **kw: ufm.convergence(**{"problem": p, **kw})
    x, y = torch.randn(6, 2, dtype=torch.float64), torch.arange(6) % 3
    yield "nc_metrics", ufm.nc_metrics.constraints, lambda **kw: ufm.nc_metrics(x, y, **kw)
    yield "Tracker", TRACK, lambda **kw: ufm.Tracker(torch.nn.Linear(2, 3), _tracker_folder(), train=(x.float(), y),
                                                      **kw)


def _tracker_folder():
    """A folder the Tracker must never create: its settings are checked before anything is written."""
    import os
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"ufm-tracker-never-written-{os.getpid()}")


CASES = [(where, name, value, call) for where, table, call in _entry_points() for name, c in table.items()
         for value in invalid_values(c)]


def test_every_declared_constraint_yields_invalid_values():
    for where, table, _ in _entry_points():
        for name, c in table.items():
            assert invalid_values(c) and not any(c.contains(v) for v in invalid_values(c)), (where, name)


@pytest.mark.parametrize("where, name, value, call", CASES,
                         ids=[f"{w}-{n}-{v!r}"[:60] for w, n, v, _ in CASES])
def test_an_invalid_value_is_refused_naming_the_parameter(where, name, value, call):
    with pytest.raises(InvalidParameterError) as e:
        call(**{name: value})
    assert e.value.param == name and f"'{name}'" in str(e.value)
    assert not os.path.exists(_tracker_folder())
