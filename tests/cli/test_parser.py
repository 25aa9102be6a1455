"""The command line's flags are built from the API's constraints: each enforces exactly the range
its constraint describes, and the train flags are exactly the fields of TrainConfig."""
import dataclasses
import math
import re
import subprocess
import sys

import pytest

from ufm._core.validation import Interval, ListOf, Options, OrNone
from ufm.cli import build_parser, main
from ufm.cli.parser import UsageError

PARSER = build_parser()
#: what a command needs besides the flag under test to parse (train's --out is required)
REQUIRED = {"train": ["--out", "unused"], "plot": ["unused"]}


def _checked(constraint):
    """The constraint a flag checks: an OrNone flag is None only when it is not given."""
    return constraint.constraint if isinstance(constraint, OrNone) else constraint


def _flags():
    """(command, flag, the constraint it checks, one value's constraint, whether a list)."""
    for command, sub in PARSER.commands.items():
        for flag in sub.flags.values():
            c = _checked(flag.constraint)
            if c is not None:
                item = c.item if isinstance(c, ListOf) else c
                yield command, flag, c, item, isinstance(c, ListOf)


def _ends(c: Interval):
    """(invalid, valid) words at each finite end of an interval: just outside and just inside."""
    step = (lambda x, d: x + d) if c.kind == "int" else (lambda x, d: math.nextafter(x, d * math.inf))
    bad, good = [], []
    for end, outward, closed in ((c.left, -1, c.closed in ("left", "both")), (c.right, 1, c.closed in ("right", "both"))):
        if end is None:
            if c.kind == "float":
                bad.append(repr(outward * math.inf))  # non-finite values are outside every interval
            continue
        end = int(end) if c.kind == "int" else float(end)
        bad.append(repr(step(end, outward) if closed else end))
        good.append(repr(end if closed else step(end, -outward)))
    if c.kind == "float":
        bad.append("nan")
    return bad, good


def _cases():
    """(command, flag, invalid word, expected message) for every generated flag."""
    for command, flag, c, item, _ in _flags():
        if isinstance(item, Interval):
            for word in _ends(item)[0]:
                got = repr(int(word) if item.kind == "int" else float(word))
                yield command, flag, word, f"{flag.name} must be {item.describe()}. Got {got} instead."
        elif isinstance(item, Options):
            yield command, flag, "no-such-name", flag.name


CASES = list(_cases())


def _long(flag) -> str:
    return [n for n in flag.names if n.startswith("--")][0]


def test_every_command_with_constraints_has_generated_flags():
    commands = {command for command, *_ in _flags()}
    assert commands == {"closed-form", "solve", "verify", "conditioning", "convergence", "sweep", "plot", "train",
                        "experiment"}
    assert len(CASES) > 100


@pytest.mark.parametrize("command, flag, word, message", CASES,
                         ids=[f"{c[0]} {_long(c[1])}={c[2]}" for c in CASES])
def test_a_value_outside_the_constraint_exits_2_naming_the_flag(capsys, command, flag, word, message):
    with pytest.raises(UsageError, match=re.escape(message)):  # refused by the flag itself, not later
        PARSER.commands[command].parse_known_args([*REQUIRED.get(command, []), f"{_long(flag)}={word}"])
    code = main([command, *REQUIRED.get(command, []), f"{_long(flag)}={word}"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err


@pytest.mark.parametrize("command, flag", [(c, f) for c, f, _, item, _ in _flags() if isinstance(item, Interval)],
                         ids=lambda x: x if isinstance(x, str) else _long(x))
def test_the_ends_of_each_range_are_accepted_as_the_constraint_says(command, flag):
    c = _checked(flag.constraint)
    item = c.item if isinstance(c, ListOf) else c
    sub = PARSER.commands[command]
    for word in _ends(item)[1]:
        ns, _ = sub.parse_known_args([*REQUIRED.get(command, []), f"{_long(flag)}={word}"])
        value = getattr(ns, flag.param)
        assert (value[0] if isinstance(c, ListOf) else value) == item.parse(word)


@pytest.mark.parametrize("command, flag", [(c, f) for c, f, _, item, _ in _flags() if isinstance(item, Options)],
                         ids=lambda x: x if isinstance(x, str) else _long(x))
def test_every_name_of_an_options_flag_is_accepted(command, flag):
    c = _checked(flag.constraint)
    item = c.item if isinstance(c, ListOf) else c
    sub = PARSER.commands[command]
    for name in item.names:
        ns, _ = sub.parse_known_args([*REQUIRED.get(command, []), f"{_long(flag)}={name}"])
        assert getattr(ns, flag.param) == ([name] if isinstance(c, ListOf) else name)


@pytest.mark.parametrize("command, flag", [(c, f) for c, f, lc, _, is_list in _flags() if is_list and lc.min_len],
                         ids=lambda x: x if isinstance(x, str) else _long(x))
def test_an_empty_list_is_refused_where_the_constraint_needs_items(capsys, command, flag):
    code = main([command, *REQUIRED.get(command, []), f"{_long(flag)}="])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and f"{flag.name} must" in err


def test_an_int_flag_given_a_fraction_is_refused_in_argparse_form(capsys):
    for command, flag, c, item, is_list in _flags():
        if isinstance(item, Interval) and item.kind == "int" and not is_list:
            code = main([command, *REQUIRED.get(command, []), f"{_long(flag)}=2.5"])
            _, err = capsys.readouterr()
            assert code == 2 and f"argument {flag.name}: must be an int" in err and err.count("\n") == 1, err


def test_train_flags_are_the_fields_of_train_config():
    from ufm.dnn.config import CONSTRAINTS, TrainConfig

    sub = PARSER.commands["train"]
    options = {"dataset_options", "model_options"}
    fields = [f for f in dataclasses.fields(TrainConfig) if f.name not in options]
    flags = {s for a in sub._actions for s in a.option_strings if s.startswith("--")}  # every flag of train
    assert flags == {"--" + f.name.replace("_", "-") for f in fields} | {
        "--dataset-option", "--model-option", "--download", "--config", "--out", "--quiet", "--help"}
    for f in fields:  # each typed and explained by its field
        flag = sub.flags[f.name]
        assert flag.names == ("--" + f.name.replace("_", "-"),) and flag.constraint is CONSTRAINTS[f.name]
        assert f.metadata["help"] in sub.format_help().replace("\n" + " " * 24, " ")


def test_train_flags_override_the_config_file(tmp_path):
    from ufm.cli.commands.networks import _overrides
    from ufm.dnn.config import TrainConfig

    toml = tmp_path / "run.toml"
    toml.write_text('epochs = 7\nlr = 0.2\nmodel_options = { width = 8 }\n')
    args = PARSER.commands["train"].parse_args(["--out", "x", "--lr", "0.3", "--milestones", "2,1",
                                                "--model-option", "depth=2", "--download"])
    config = TrainConfig.from_toml(toml, _overrides(args))
    assert (config.epochs, config.lr, config.milestones) == (7, 0.3, (1, 2))
    assert config.model_options == {"width": 8, "depth": 2} and config.dataset_options == {"download": True}


@pytest.mark.parametrize("flags", [[], ["--json"], ["--latex"]])
def test_closed_form_imports_no_torch(flags):
    """The light command prints a formula's value: neither torch nor sympy is imported for it."""
    code = ("import sys\nfrom ufm.cli import main\n"
            f"code = main(['closed-form', '-K', '10', '--alpha', '0.1'] + {flags!r})\n"
            "print(code, sorted(m for m in ('torch', 'sympy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 []"


def test_help_imports_neither_torch_nor_numpy():
    code = ("import sys\nfrom ufm.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("argv, message", [
    (["closed-form", "--lambda-h", "-1e-3"], "--lambda-h must be a float in the range (0, inf). Got -0.001 instead."),
    (["closed-form", "--lambda-w", "-2.5E+1"], "--lambda-w must be a float in the range (0, inf). Got -25.0 instead."),
    (["closed-form", "--alpha", "-inf"], "--alpha/--alphas must be a float in the range [0, 1). Got -inf instead."),
    (["conditioning", "--alphas", "-0.1,0.2"], "--alphas must be a float in the range [0, 1). Got -0.1 instead."),
    (["solve", "--max-steps", "0"], "--max-steps must be an int in the range [1, inf). Got 0 instead."),
])
def test_negative_numbers_and_zero_steps_reach_the_range_message(cli, argv, message):
    code, out, err = cli(*argv)
    assert code == 2 and out == "" and err.strip().endswith(message) and err.count("\n") == 1, err


@pytest.mark.parametrize("argv", [["sweep", "--classes", "3"], ["train"], ["experiment", "mnist1d-mlp"], ["demo"]])
def test_out_naming_a_file_is_one_line_and_the_file_is_untouched(cli, tmp_path, argv):
    afile = tmp_path / "afile"
    afile.write_text("someone's notes")
    code, out, err = cli(*argv, "--out", afile)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.strip().endswith(f"argument --out: must be a folder; {str(afile)!r} is a file")
    assert afile.read_text() == "someone's notes" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
