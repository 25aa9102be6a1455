"""The grid flags of ``sweep`` and ``verify``: lists of UFMProblem values (``ufm.problem.CONSTRAINTS``,
checked item by item), ``--dims`` (ints or expressions in K, which ``SweepSpec`` checks), ``--seeds``
and ``--config``, a TOML file with the same keys.

The rule for ``--config`` (every command that takes one): flags written beside it override the
file's keys, and the command prints the resolved configuration on stderr, one line. An error about
a key the file gave names the file and the key; one about a flag names the flag.
"""
from __future__ import annotations

import sys
from typing import Dict, Optional

from ufm._core.validation import ListOf
from ufm.cli.parser import COUNT, Parser, add_flag, config_file_errors, resolved_line

__all__ = ["GRID_KEYS", "grid_flags", "grid_spec"]


class _DimWord:
    """A ``--dims`` item: an int, or an expression in K (``K``, ``K-1``, ``2K``) that
    ``SweepSpec`` evaluates and checks."""

    def describe(self) -> str:
        return "an int or an expression like K, K-1, 2K"

    def contains(self, value) -> bool:
        return isinstance(value, (int, str))

    def parse(self, text: str):
        return int(text) if text.lstrip("-").isdigit() else text


_LISTS = (  # (flag, UFMProblem parameter, SweepSpec key, help)
    ("--alphas", "alpha", "alphas", "comma-separated smoothing factors"),
    ("--classes", "num_classes", "classes", "comma-separated K values"),
    ("--dims", None, "dims", "comma-separated d values: ints or K, K-1, 2K, K+3"),
    ("--per-class", "per_class", "per_class", "comma-separated n values"),
    ("--lambda-w", "lambda_w", "lambda_w", "comma-separated values"),
    ("--lambda-h", "lambda_h", "lambda_h", "comma-separated values"),
    ("--lambda-b", "lambda_b", "lambda_b", "comma-separated values"),
)
#: the keys of a grid, as ``SweepSpec`` and its TOML files name them
GRID_KEYS = tuple(key for _, _, key, _ in _LISTS) + ("seeds",)


def grid_flags(p: Parser, defaults: Dict[str, str], config_help: str) -> None:
    """The grid flags, with ``defaults`` (key -> the default as it would be written; a key without
    one defaults to None) and ``--config``."""
    from ufm.problem import CONSTRAINTS

    p.add_argument("--config", default=None, help=config_help)
    for flag, param, key, help_ in _LISTS:
        item = _DimWord() if param is None else CONSTRAINTS[param]
        default = defaults.get(key)
        add_flag(p, flag, param=key, constraint=ListOf(item), default=default,
                 help=help_ + (f" (default {default})" if default is not None else ""))
    add_flag(p, "--seeds", param="seeds", constraint=COUNT, default=int(defaults.get("seeds", 1)),
             help=f"seeds per configuration: 0..N-1 (default {defaults.get('seeds', 1)})")


def grid_spec(args, keys=GRID_KEYS, extra: Optional[dict] = None):
    """The SweepSpec of the flags ``keys`` (and ``extra``, other SweepSpec keys) and of ``--config``:
    the file's keys, overridden by the flags written beside it (the resolved spec printed on
    stderr), the flags' defaults for the keys neither gives. Every value is checked here."""
    from ufm._core.io import read_toml
    from ufm.sweep import SweepSpec
    from ufm.sweep.spec import KEYS

    flags = {key: getattr(args, key) for key in keys}
    flags.update(extra or {})
    if not args.config:
        spec = SweepSpec(**flags)
        spec.shapes()
        return spec
    data = read_toml(args.config, "sweep file", "config")
    written = {k for k in flags if k in args.given}
    merged = {**{k: v for k, v in flags.items() if v is not None}, **data,
              **{k: flags[k] for k in written}}
    with config_file_errors(args.config, set(data) - written, KEYS):
        spec = SweepSpec.from_mapping(merged, source=f"sweep file {str(args.config)!r}")
        spec.shapes()  # validates every value
    if written:
        flag_names = ["--" + k.replace("_", "-") for k in written]
        print(f"ufm {args.command}: {resolved_line(args.config, flag_names, spec.to_dict())}", file=sys.stderr)
    return spec
