"""The ``ufm`` command line: thin over the API (parse, call, render).

``main`` is the entry point (exit codes, one-line errors); ``parser`` builds the flags from the
constraints the API declares; ``commands`` holds one module per family of commands; what they
print is rendered by ``ufm.report.text``.
"""
from ufm.cli.main import build_parser, main

__all__ = ["main", "build_parser"]
