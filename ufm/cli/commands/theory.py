"""``ufm derive``: the symbolic derivation of the minimizer (or of the Hessian spectra), as text or
Markdown, from ``ufm.theory.symbolic``."""
from __future__ import annotations

from ufm.cli.parser import Commands, Parser

__all__ = ["add_parser"]


def _derive_flags(p: Parser) -> None:
    p.add_argument("--markdown", action="store_true", help="print it as Markdown with LaTeX")
    p.add_argument("--hessian", action="store_true", help="the Hessian spectra instead (takes about a minute)")


def derive_command(args) -> int:
    if args.hessian:
        from ufm.theory.symbolic.hessian import derive_hessian, hessian_to_markdown, hessian_to_text

        print((hessian_to_markdown if args.markdown else hessian_to_text)(derive_hessian()), end="")
        return 0
    from ufm.theory.symbolic.minimizer import derive_minimizer, to_markdown, to_text

    print((to_markdown if args.markdown else to_text)(derive_minimizer()), end="")
    return 0


def add_parser(commands: Commands) -> None:
    commands.add("derive", "print the symbolic derivation of the minimizer (or of the Hessian spectra)",
                 _derive_flags, derive_command)
