"""The ``ufm`` entry point: build the parser, run the command, turn its outcome into an exit code.

Exit codes: 0 done; 1 a finding (``ufm verify``: a point disagrees with the closed form; ``ufm
validate``: a check does not hold; ``ufm claims --strict``: a claim fails), a divergence (solver,
training) or a linear-algebra routine failing on extreme values; 2 bad input (a flag, a file, a truncated or corrupted data file, a
dataset that is missing or fails to download), printed as one line on stderr without a traceback;
130 interrupted. An error the API raises about a parameter that one of the command's flags
feeds is phrased with that flag's name (``-K/--num-classes must be ...``). The warnings ufm
emits (``UFMWarning``) are printed, one line each, when the command succeeds.
"""
from __future__ import annotations

import errno
import sys
import warnings
from typing import List, Optional

from ufm._core.validation import DataFileError, InvalidParameterError, MissingPackageError, UFMWarning
from ufm._version import __version__
from ufm.cli.commands import MODULES
from ufm.cli.parser import Commands, Parser, UsageError

__all__ = ["main", "build_parser"]

_DESCRIPTION = ("Unconstrained feature model of neural collapse: closed forms, numerical solutions and NC "
                "metrics under CE and label smoothing.")


def build_parser(command: Optional[str] = None) -> Parser:
    """The ``ufm`` parser. ``command``: declare the flags of that command only (the others keep
    their name and help), so that ``ufm --help`` and light commands import no heavy module; None
    declares every command's flags."""
    parser = Parser(prog="ufm", description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"ufm {__version__}")
    commands = Commands(parser, only=command)
    for module in MODULES:
        module.add_parser(commands)
    return parser


def _command_word(argv: List[str]) -> str:
    """The command of ``argv``: its first word that is not an option (the top-level options,
    --help and --version, take no value); "" if there is none."""
    return next((a for a in argv if not a.startswith("-")), "")


def _run(args) -> int:
    """Run the command; print the ufm warnings it emitted if it succeeds (an error stays one line,
    and other libraries' notices are dropped)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = args.run(args)
    for w in caught:
        if issubclass(w.category, UFMWarning):
            print(f"ufm: warning: {w.message}", file=sys.stderr)
    return code


def _one_line(err: InvalidParameterError, flag: Optional[str]) -> str:
    """An API error, phrased with the flag that feeds its parameter where there is one."""
    if flag and err.expected:
        return f"{flag} must be {err.expected}. Got {err.value!r} instead."
    return str(err)


def _diverged(err: Exception) -> bool:
    """True for a solver's or a training run's divergence (exit code 1)."""
    from ufm.dnn.training import TrainingDivergedError
    from ufm.numerics.solve import SolverDivergedError

    return isinstance(err, (SolverDivergedError, TrainingDivergedError))


def _os_line(err: OSError) -> str:
    """An operating-system error as one line: a read-only file system is named as such."""
    if err.errno == errno.EROFS and err.filename:
        return f"cannot write to {err.filename}: read-only file system"
    if err.filename and err.strerror:
        return f"{err.filename}: {err.strerror.lower()}"
    return str(err)


def _numerical_failure(err: Exception) -> Optional[str]:
    """A linear-algebra routine that failed on extreme (valid) values, as one line; None otherwise."""
    kinds = []
    if "torch" in sys.modules:
        kinds.append(sys.modules["torch"].linalg.LinAlgError)
    if "scipy.sparse.linalg" in sys.modules:
        kinds.append(sys.modules["scipy.sparse.linalg"].ArpackError)
    if not kinds or not isinstance(err, tuple(kinds)):
        return None
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    name = type(err).__name__.lstrip("_")
    return (f"numerical failure in {name}: {first} (values this extreme, e.g. of --init-scale or the lambdas, are "
            "beyond what the linear algebra resolves in this dtype)")


def _error(prog: str, message: str, code: int) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_word(argv))
    prog, command = "ufm", None
    try:
        args = parser.parse_args(argv)
        command = parser.commands[args.command]
        prog = command.prog
        return _run(args)
    except UsageError as e:
        return _error(e.prog or prog, e.message, 2)
    except InvalidParameterError as e:
        return _error(prog, _one_line(e, command.flag_name(e.param) if command else None), 2)
    except (DataFileError, MissingPackageError) as e:  # a bad data file; an optional package absent
        return _error(prog, str(e), 2)
    except BrokenPipeError:  # e.g. `ufm derive | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as e:  # an Interrupted says what was kept and how to resume
        print(f"{prog}: interrupted" + (f": {e}" if str(e) else ""), file=sys.stderr)
        return 130
    except OSError as e:  # e.g. an output folder that cannot be created
        return _error(prog, _os_line(e), 2)
    except Exception as e:  # a divergence or a numerical failure: a finding, one line, no traceback
        if _diverged(e):
            return _error(prog, str(e), 1)
        numerical = _numerical_failure(e)
        if numerical is not None:
            return _error(prog, numerical, 1)
        raise


if __name__ == "__main__":
    sys.exit(main())
