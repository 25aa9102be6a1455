"""Commands on datasets: ``ufm data ACTION``; ``ufm data download NAME`` fetches a dataset's
official files (``ufm.dnn.data.download``), verifies their published checksums, places its folder
under the data root and prints that folder.

``NAME`` is checked by ``download_dataset`` itself (the names of ``SOURCES``), so that a wrong
name is refused with the API's own message, naming ``NAME`` and the valid names.
"""
from __future__ import annotations

import sys

from ufm.cli.parser import Commands, Flag, Parser, UsageError, add_flag

__all__ = ["add_parser", "ACTIONS"]

#: the actions of ``ufm data``, in the order its help lists them
ACTIONS = ("download",)


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _names() -> str:
    from ufm.dnn.data.download import SOURCES

    return ", ".join(SOURCES)


def _data_flags(p: Parser) -> None:
    p.add_argument("action", choices=list(ACTIONS), metavar="ACTION",
                   help="download: fetch a dataset's official files, verify their checksums, place its folder")
    p.add_argument("name", nargs="?", metavar="NAME",
                   help=f"the dataset: {_names()}")
    p.flags["name"] = Flag(("NAME",), "name", None)  # the API's errors about `name` name NAME
    add_flag(p, "--data-dir", param="data_dir", default=None, metavar="DIR",
             help="the data root (default $UFM_DATA, then ~/.cache/ufm); the dataset goes in a folder of it")
    add_flag(p, "--mirror", param="mirror", default=None, metavar="URL",
             help="a base URL serving the same files (each official URL up to its last / replaced); "
                  "the checksums stay the published ones")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no step lines (errors still print)")


def _download(args) -> int:
    from ufm.dnn.data.download import download_dataset

    if args.name is None:
        raise UsageError(f"download needs NAME, one of {_names()}.")
    # the step lines: as they happen on a terminal; else after success, so that a failure is one line
    live, steps = sys.stderr.isatty(), []
    log = None if args.quiet else _log if live else steps.append
    folder = download_dataset(args.name, args.data_dir, mirror=args.mirror, progress=not args.quiet and live, log=log)
    for line in steps:
        _log(line)
    print(folder)
    return 0


#: action -> the function that runs it
_RUN = {"download": _download}


def data_command(args) -> int:
    return _RUN[args.action](args)


def add_parser(commands: Commands) -> None:
    commands.add("data", "download a dataset's official files, verified, into the data folder (ufm data download "
                         "NAME)", _data_flags, data_command)
