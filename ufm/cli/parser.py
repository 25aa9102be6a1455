"""The ``ufm`` parser: one-line errors, and flags built from the constraints the API declares.

A flag that feeds an API parameter is declared with :func:`add_flag`, naming the parameter and
the constraint it carries (``ufm.problem.CONSTRAINTS["alpha"]``, ``solve.constraints["tol"]``,
...). Its argparse ``type`` parses a word with ``constraint.parse`` and checks
``constraint.contains``, so the range a message states is the range enforced, once, when the
command line is read. The messages::

    ufm solve: error: --alpha must be a float in the range [0, 1). Got 1.5 instead.
    ufm closed-form: error: argument -K/--num-classes: must be an int in the range [2, inf). Got '2.5' instead.
    ufm conditioning: error: --alphas must be comma-separated numbers. Got '0,x' instead.

A value that parses but lies outside the constraint is reported as ``FLAG must be ...``; a word
that does not parse, in argparse's own form (``argument FLAG: ...``). Each command's parser also
knows which flag feeds which parameter, so that an error the API raises later (for example
``d >= K - 1`` for the closed form) names the flag. The flags of a command are built only when
that command runs (:class:`Commands`): they import the API modules whose constraints they use.
``device_of`` and ``dtype_of`` turn the words of ``--device`` and ``--dtype`` into torch objects.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import re
import sys
from typing import Any, Callable, Dict, Iterable, NamedTuple, Optional

from ufm._core.validation import SEED as _SEED
from ufm._core.validation import Interval, InvalidParameterError, ListOf, Options, OrNone

__all__ = ["UsageError", "Interrupted", "config_file_errors", "resolved_line", "Parser", "Commands", "Flag", "add_flag", "add_fields", "allow_list", "option_pair",
           "out_folder", "device_of", "dtype_of", "COUNT", "SEED", "WORKERS", "CLUSTER"]


class UsageError(Exception):
    """Bad input: printed as the one line ``PROG: error: MESSAGE``, exit code 2.

    ``prog`` is the command's program name (``ufm sweep``); None: the command that is running.
    """

    def __init__(self, message: str, prog: Optional[str] = None):
        super().__init__(message)
        self.message, self.prog = message, prog


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during long work: printed as ``PROG: interrupted: MESSAGE`` (what was kept, how to
    resume), exit code 130."""


class Flag(NamedTuple):
    """A flag that feeds an API parameter: its names, the parameter, and the constraint checked
    when it is parsed (None: a word the API checks itself, such as a device name)."""

    names: tuple
    param: str
    constraint: Any

    @property
    def name(self) -> str:
        """The flag as messages name it: ``-K/--num-classes``."""
        return "/".join(self.names)


_NUMBER = r"((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|inf|infinity|nan)"
#: a negative number, or a comma-separated list of numbers starting with one (--alphas -0.1,0.2)
_NEGATIVE_NUMBER = re.compile(rf"^-{_NUMBER}(,\s*[-+]?{_NUMBER})*$", re.IGNORECASE)


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (:class:`UsageError`, no usage dump).

    ``flags`` holds the flags declared with :func:`add_flag`, by API parameter; ``commands``,
    on the top-level parser, each subcommand's parser.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.flags: Dict[str, Flag] = {}
        self.commands: Dict[str, "Parser"] = {}
        # a negative number in any notation (or a list starting with one) is a value, not an option:
        # --lambda-h -1e-3 reaches the range check (argparse's own pattern knows -1 and -.5 only)
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message):
        raise UsageError(message, prog=self.prog)

    def parse_known_args(self, args=None, namespace=None):
        """argparse's, and ``given``: the dests of the options written on the command line (in any
        form argparse takes: ``--alphas 0.1``, ``--alphas=0.1``, an abbreviation ``--alpha``), which
        ``--config`` files yield to. Found by parsing once more with every default suppressed: the
        dests that appear then are exactly those argparse set from the words."""
        args = sys.argv[1:] if args is None else list(args)
        namespace, rest = super().parse_known_args(args, namespace)
        options = [a for a in self._actions if a.option_strings and a.default is not argparse.SUPPRESS]
        if not options:  # the top-level parser (--help, --version): its subcommand's parser records them
            namespace.given = getattr(namespace, "given", set())
            return namespace, rest
        saved, defaults = [a.default for a in options], self._defaults
        try:
            for a in options:
                a.default = argparse.SUPPRESS
            self._defaults = {}
            bare, _ = super().parse_known_args(args, argparse.Namespace())
        finally:
            for a, default in zip(options, saved):
                a.default = default
            self._defaults = defaults
        given = {a.dest for a in options if hasattr(bare, a.dest)}
        namespace.given = getattr(namespace, "given", set()) | getattr(bare, "given", set()) | given
        return namespace, rest

    def flag_name(self, param: str) -> Optional[str]:
        """The flag that feeds API parameter ``param`` (None: no flag of this command does)."""
        flag = self.flags.get(param)
        return flag.name if flag else None


@contextlib.contextmanager
def config_file_errors(path, from_file: Iterable[str], known: Iterable[str]):
    """An error about a key that the TOML file ``path`` gave (``from_file``; not a flag) is one line
    naming the file, the key and the valid range: ``a.toml: key 'alphas' must be ...``; a key
    that is not one of ``known`` keeps the API's message (which names the file and lists them)."""
    from_file, known = set(from_file), set(known)
    try:
        yield
    except InvalidParameterError as e:
        if e.param in from_file and e.param not in known:
            raise UsageError(str(e)) from None
        if e.param not in from_file or not e.expected:
            raise
        raise UsageError(f"{path}: key {e.param!r} must be {e.expected}. Got {e.value!r} instead.") from None


def resolved_line(path, flags: Iterable[str], config: dict) -> str:
    """The one line a command prints (stderr) when flags override its ``--config`` file."""
    import json

    return (f"{path} with {', '.join(sorted(flags))} from the command line: "
            f"{json.dumps(config, sort_keys=True, default=str)}")


class Commands:
    """The subcommands of a parser, each added with its help, its flags and its function.

    ``flags(parser)`` declares a command's flags; it runs only for the command named ``only``
    (None: for every command), so that ``ufm --help`` and the light commands do not import the
    heavy API modules (torch) whose constraints other commands' flags are built from.
    """

    def __init__(self, parser: Parser, only: Optional[str] = None):
        self.parser, self.only = parser, only
        self.subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
        self.subparsers.required = True

    def add(self, name: str, help: str, flags: Callable[[Parser], None], run: Callable) -> None:
        p = self.subparsers.add_parser(name, help=help)
        p.set_defaults(run=run)
        self.parser.commands[name] = p
        if self.only is None or self.only == name:
            flags(p)


def _cli_constraint(constraint):
    """The constraint a flag checks: an ``OrNone`` flag is None when it is not given, so a given
    value must satisfy the inner constraint."""
    return constraint.constraint if isinstance(constraint, OrNone) else constraint


def _kind(constraint) -> str:
    """What a word must be, without its range: ``an int``, ``a float``."""
    if isinstance(constraint, Interval):
        return "an int" if constraint.kind == "int" else "a float"
    return constraint.describe()


class _Value:
    """The argparse type of a one-value flag: parse, then check the constraint."""

    def __init__(self, flag: Flag, prog: str, kind_only: bool):
        self.flag, self.prog, self.kind_only = flag, prog, kind_only
        self.constraint = _cli_constraint(flag.constraint)

    def __call__(self, text: str):
        c = self.constraint
        try:
            value = c.parse(text)
        except ValueError:  # argparse's form: "argument FLAG: must be ..."
            what = _kind(c) if self.kind_only else c.describe()
            raise argparse.ArgumentTypeError(f"must be {what}. Got {text!r} instead.") from None
        if not c.contains(value):
            raise UsageError(f"{self.flag.name} must be {c.describe()}. Got {value!r} instead.", prog=self.prog)
        return value


def _list_words(item) -> tuple:
    """How list messages name the items: (plural, singular); singular None for names."""
    if isinstance(item, Interval):
        return ("ints", "int") if item.kind == "int" else ("numbers", "number")
    if isinstance(item, Options):
        return f"names among {', '.join(item.names)}", None
    return "values", "value"


class _List:
    """The argparse type of a comma-separated flag (a ``ListOf`` constraint): parse each item,
    then check the count and each item."""

    def __init__(self, flag: Flag, prog: str):
        self.flag, self.prog, self.constraint = flag, prog, _cli_constraint(flag.constraint)

    def _fail(self, message: str):
        return UsageError(f"{self.flag.name} {message}", prog=self.prog)

    def __call__(self, text: str) -> list:
        item = self.constraint.item
        plural, singular = _list_words(item)
        try:
            values = self.constraint.parse(text)
        except ValueError:
            raise self._fail(f"must be comma-separated {plural}. Got {text!r} instead.") from None
        if isinstance(item, Options) and not (values and all(item.contains(v) for v in values)):
            raise self._fail(f"must be comma-separated {plural}. Got {text!r} instead.")
        need = self.constraint.min_len
        if len(values) < need:
            raise self._fail(f"must hold at least one {singular}. Got {text!r} instead." if need == 1 else
                             f"must hold at least {need} {plural}. Got {text!r} instead.")
        for v in values:
            if not item.contains(v):
                raise self._fail(f"must be {item.describe()}. Got {v!r} instead.")
        return values


def add_flag(parser: Parser, *names: str, param: str, constraint=None, group=None, kind_only: bool = False,
             **kwargs) -> argparse.Action:
    """Declare the flag ``names`` of ``parser`` (in ``group``, an argument group of it) that feeds
    the API parameter ``param`` (its ``dest``).

    ``constraint`` (None: a word passed as it is, which the API checks) gives the flag's type:
    a ``ListOf`` a comma-separated list, an ``Options`` a name shown as ``{a,b,c}``, any other
    constraint one value. ``kind_only``: the message for a word that does not parse names only
    its kind ("an int"), not its range. Other keywords go to ``add_argument``.
    """
    flag = Flag(tuple(names), param, constraint)
    parser.flags[param] = flag
    c = _cli_constraint(constraint)
    if isinstance(c, ListOf):
        kwargs["type"] = _List(flag, parser.prog)
    elif c is not None:
        kwargs["type"] = _Value(flag, parser.prog, kind_only)
    if isinstance(c, Options):
        kwargs.setdefault("metavar", "{" + ",".join(c.names) + "}")
    return (group or parser).add_argument(*names, dest=param, **kwargs)


class _ValueOrList:
    """The argparse type of a one-value flag that also takes a comma-separated list (each item
    checked against the same constraint): one word without a comma parses as before."""

    def __init__(self, flag: Flag, prog: str):
        self.one = _Value(flag, prog, False)
        self.many = _List(Flag(flag.names, flag.param, ListOf(flag.constraint)), prog)

    def __call__(self, text: str):
        return self.many(text) if "," in text else self.one(text)


def allow_list(parser: Parser, param: str) -> None:
    """Let the one-value flag that feeds ``param`` also take a comma-separated list (``-K 3,5,10``):
    the command decides when a list is allowed. Its messages and its one-value form are unchanged."""
    flag = parser.flags[param]
    action = next(a for a in parser._actions if a.dest == param)
    action.type = _ValueOrList(flag, parser.prog)


def _default_text(field: dataclasses.Field) -> Optional[str]:
    """A field's default as help states it (None: no default worth stating)."""
    value = field.default_factory() if field.default is dataclasses.MISSING else field.default
    if value is None or value in ((), [], {}):
        return None
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return format(value, "g") if isinstance(value, float) else str(value)


def add_fields(parser: Parser, cls, constraints: Dict[str, Any], group=None, skip=()) -> None:
    """One flag per field of the dataclass ``cls`` (except ``skip``): ``--name-with-dashes``, its
    type from ``constraints[name]``, its help the field's ``metadata["help"]`` and its default.

    The flags default to None (not given), so that what is given can override another source
    (a TOML file); a word that does not parse is reported with its kind only.
    """
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = _default_text(f)
        help_ = f.metadata.get("help", "") + (f" (default {default})" if default is not None else "")
        add_flag(parser, "--" + f.name.replace("_", "-"), param=f.name, constraint=constraints[f.name],
                 group=group, kind_only=True, default=None, help=help_)


def out_folder(text: str) -> str:
    """The argparse type of ``--out``: a folder, existing or not; an existing file is refused (one
    line, before any work starts)."""
    import os

    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"must be a folder; {text!r} is a file")
    return text


def option_pair(text: str) -> tuple:
    """The argparse type of ``KEY=VALUE`` (repeatable options): VALUE an int, a float,
    true/false, or a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE. Got {text!r} instead.")
    key, value = text.split("=", 1)
    low = value.strip().lower()
    if low in ("true", "false"):
        return key.strip(), low == "true"
    for kind in (int, float):
        try:
            return key.strip(), kind(value)
        except ValueError:
            pass
    return key.strip(), value


class ClusterAddress:
    """Where ``--cluster`` sends work: ``local-dask`` (a LocalCluster) or ``dask://HOST:PORT``
    (an existing scheduler), as ``ufm._core.executors.dask_executor`` takes it."""

    def describe(self) -> str:
        return "local-dask or dask://HOST:PORT"

    def contains(self, value) -> bool:
        return isinstance(value, str) and (value == "local-dask" or value.startswith("dask://"))

    def parse(self, text: str) -> str:
        return text


#: a count of seeds, ``--seeds N`` giving seeds 0..N-1 (the API takes the seeds themselves)
COUNT = Interval("int", 1, None, "left")
#: a seed of a random start (that of the API)
SEED = _SEED
#: worker processes of a sweep or an experiment (0: in this process)
WORKERS = Interval("int", 0, None, "left")
CLUSTER = ClusterAddress()


def device_of(name: Optional[str]):
    """The torch device of ``--device`` by the one device policy (None: the API's default)."""
    if name is None:
        return None
    from ufm._core.device import resolve_device

    return resolve_device(name)


def dtype_of(name: str):
    """The torch dtype of ``--dtype`` (``float64`` or ``float32``)."""
    import torch

    return {"float64": torch.float64, "float32": torch.float32}[name]
