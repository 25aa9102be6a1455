"""The commands of ``ufm``, one module per family; each module's ``add_parser(commands)`` adds its
commands (name, help, flags, function) to a :class:`ufm.cli.parser.Commands`.

``MODULES`` is in the order ``ufm --help`` lists the commands.
"""
from ufm.cli.commands import claims, data, demo, networks, problems, sweeps, theory

#: the command modules, in the order of ``ufm --help``
MODULES = (problems, sweeps, theory, networks, data, claims, demo)

__all__ = ["MODULES"]
