"""The command line fuzzed: argument lists drawn from the parser's own grammar, every outcome checked.

The grammar is read from ``ufm.cli.main.build_parser()``: every command, every action (its option
strings, ``nargs``, ``choices``) and the constraint each flag checks (``Parser.flags``), so a flag
added later is drawn without a change here. Each flag gets valid words (from its constraint:
small sizes, edges of its range, numbers in several notations) and invalid ones (outside the
range, nan, inf, 1e400, '', ',', '1,,2', unknown names, unicode, an undecodable byte), and the paths of a
fresh folder (a file, an empty folder, a missing path, malformed records, a read-only folder).

Every case runs in this process in a fresh working directory (``$HOME`` inside it, no dataset
anywhere), and must end with exit code 0, 1 or 2, no traceback on stderr; with exit code 2, exactly
one line on stderr and nothing written (the names, sizes and times of the files of the case folder,
the read-only folder and ``$HOME``, before and after).

Cost and safety by construction (``CHEAP``, ``AFTER``, ``NEVER``, ``COSTLY``, ``ONLY``): each
command gets small problem sizes before the drawn words (which override them), the network is
never reached (no ``--download``, ``ufm data`` only ever given loopback mirrors), and valid
values that start long work (a Dask cluster, worker processes, ResNets, the demo, the Hessian
derivation) are not drawn. Torch runs on one thread (tiny problems; threads only wait).

``UFM_FUZZ_EXAMPLES`` sets the number of cases (default about a minute on two cores; ``make fuzz``
runs more); the cases are the same on every run (``derandomize``) unless ``UFM_FUZZ_SEED`` is set.
"""
import argparse
import contextlib
import io
import os
import shutil
import subprocess
import tempfile
import traceback
from typing import Any, NamedTuple

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings, strategies as st  # noqa: E402

from ufm._core.validation import Interval, ListOf, Options, OrNone, PathLike  # noqa: E402

EXAMPLES = int(os.environ.get("UFM_FUZZ_EXAMPLES", "1000"))
SEED = os.environ.get("UFM_FUZZ_SEED")

# -- what a case may draw: small work, no network ----------------------------------------------

#: words put before the drawn ones (a drawn flag comes later and overrides them): small problems
CHEAP = {
    "solve": "-K 3 -n 2 --max-steps 50",
    "verify": "--classes 2 --per-class 1 --seeds 1 --max-steps 5",
    "conditioning": "-K 3 -n 2 --solver-tol 1e-6",
    "convergence": "-K 2 -n 1 --seeds 1 --max-steps 20 --alphas 0 --eps 1e-3 --rules local",
    "sweep": "--out out --workers 0 --classes 2 --per-class 1 --alphas 0",
    "train": "--dataset gaussian --epochs 1 --train-per-class 2 --test-per-class 2",
    "experiment": "--workers 0 --epochs 1 --seeds 1",
    "data": "--mirror http://127.0.0.1:9/",  # a closed port on this machine
    "demo": "--quick --out file.txt",  # the demo runs minutes: it only gets outputs that fail at once
    "claims": "empty",  # without a folder it computes the claims (half a minute)
}
#: words put before the drawn ones when a word is drawn (``--map`` over every ratio takes seconds)
CHEAP_WITH = {("conditioning", "--map"): "--lambda-ratio 1 --definitions logits"}
#: words put after the drawn ones: an experiment's data is never found, so nothing is trained or timed
AFTER = {"experiment": "--set dataset=mnist"}
#: flags never drawn: a minute of sympy (derive --hessian); the network (train --download)
NEVER = {("derive", "--hessian"), ("train", "--download")}
#: valid values not drawn (seconds to minutes each): (command, dest) -> words
COSTLY = {
    ("sweep", "what"): {"convergence"},
    ("train", "dataset"): {"mnist1d"},
    ("train", "model"): {"resnet18", "resnet50"},
}
#: the only words drawn for these (command, dest): a valid one would start processes or long work
ONLY = {
    ("sweep", "workers"): ["0", "-1", "x", "1e400"],
    ("experiment", "workers"): ["0", "-1", "nan"],
    ("demo", "out"): ["file.txt", "@RO@", "@RO@/demo", "bad.toml/below"],
}

# -- words --------------------------------------------------------------------------------------

#: the fresh folder of every case (relative to its working directory); @RO@ is the read-only folder
PATHS = ["file.txt", "bad.toml", "keys.toml", "grid.toml", "run.toml", "finished", "empty", "empty/", "run", "demo",
         "sweep", "missing",
         "missing/deeper", "file.txt/below", ".", "home", "~", "~/missing", "@CASE@/empty", "@CASE@/missing",
         "@RO@", "@RO@/new", "@RO@/file.txt", "@RO@/sub"]
JUNK = ["", " ", ",", "1,,2", ",1", "1,", "x", "-", "--", "ü", "名前", "\udcff", "a\udcffb", "K", "None",
        "true", "0x10", "1_0", "٣", "３", "1e", "e3", "+", "--x", "-1e-3", "-0", "1e400", "-1e400", "nan", "inf",
        "-inf", "NaN", "Infinity"]
NAMES = ["cpu", "cuda", "cuda:0", "cuda:99", "cuda:x", "cuda:-1", "auto", "mps", "meta", "CPU", "gaussian", "mnist",
         "mnist1d-mlp", "bogus", "http://127.0.0.1:9/", "http://127.0.0.1:9", "ftp://127.0.0.1:9/",
         "file:///nonexistent/", "127.0.0.1:9", "http://", "http://[::1]:9/"]
#: the keys of KEY=VALUE flags (never ``download``: the network)
KEYS = ["epochs", "alpha", "lr", "dataset", "model", "seed", "batch_size", "milestones", "bogus", "", "a.b",
        "model_options.width", "model_options.bogus", "dataset_options.num_classes", "dataset_options.dim",
        "num_classes", "dim", "train_size_per_class", "noise", "separation", "num_samples", "width", "depth",
        "batchnorm", "channels", "feature_relu"]
VALUES = ["1", "2", "0", "-1", "true", "false", "nan", "1e400", "x", "", "2.5", "[1]", "3,4"]


def _formats(x: float) -> list:
    """Notations of one number."""
    if x != x or x in (float("inf"), float("-inf")):
        return [repr(x)]
    out = [repr(x), f"{x:e}", f"{x:g}", f"{x:.3E}"]
    if float(x).is_integer() and abs(x) < 1e16:
        out += [str(int(x)), f"{int(x)}.0", f"+{int(x)}" if x >= 0 else str(int(x))]
    return out


def _outside(c: Interval) -> list:
    """Numbers just outside the range of ``c`` (and its open ends)."""
    out = []
    for end, step in ((c.left, -1), (c.right, 1)):
        if end is None:
            continue
        out += [end + step, end + step * 1e-3, end + step * 1e6]
        if c.closed not in ("both", "left" if step < 0 else "right"):
            out.append(end)
    return out


class Words(NamedTuple):
    """The words of a value: ``valid`` ones (its constraint holds) and ``invalid`` ones."""

    valid: Any
    invalid: Any

    def mixed(self):
        """Valid words three times in four: a case then often gets past the parser."""
        return st.one_of(self.valid, self.valid, self.valid, self.invalid)


#: seeds at the edges of the integer types (a seed costs nothing, so any size is drawn)
BIG = [2 ** 31, 2 ** 32, 2 ** 63 - 1, 2 ** 63, 2 ** 64, 10 ** 30, -(2 ** 63) - 1, -(2 ** 70)]


def _numbers(c: Interval, dest: str) -> Words:
    """An Interval flag: small valid values, edges, and words that are not numbers."""
    bad = [w for x in _outside(c) for w in _formats(x)] + JUNK
    if c.kind == "int":
        start = -2 if c.left is None else int(c.left) + (c.closed not in ("left", "both"))
        stop = start + 1 if c.right is None else min(start + 1, int(c.right))
        valid = st.integers(start, stop).map(str)
        if "seed" in dest and not dest.endswith("seeds"):
            valid |= st.sampled_from([str(b) for b in BIG if c.contains(b)])
        bad += ["2.5", "3.0", "1e3"]
    else:
        valid = st.floats(c.left, 1e300 if c.right is None else c.right, allow_nan=False, allow_infinity=False,
                          exclude_min=c.closed not in ("left", "both") and c.left is not None,
                          exclude_max=c.closed not in ("right", "both") or c.right is None
                          ).flatmap(lambda x: st.sampled_from(_formats(x)))
    return Words(valid, st.sampled_from(bad))


def _names(c: Options, cmd: str, dest: str) -> Words:
    good = [n for n in c.names if n not in COSTLY.get((cmd, dest), ())]
    bad = ["bogus", "", " "] + [n.upper() for n in c.names] + [n + " " for n in c.names[:1]]
    return Words(st.sampled_from(good) if good else st.nothing(), st.sampled_from(bad))


def _list(c: ListOf, cmd: str, dest: str) -> Words:
    item = _words(c.item, cmd, dest)

    def joined(items):
        return st.tuples(st.lists(items, min_size=max(1, c.min_len), max_size=3),
                         st.sampled_from([",", ", "])).map(lambda t: t[1].join(t[0]))

    return Words(joined(item.valid), joined(item.mixed()) | st.sampled_from(["", ",", "1,,2", ",1", "1,", " , "]))


#: words for a value of no known kind: paths, names, junk
GENERIC = Words(st.sampled_from(PATHS + NAMES + ["0", "1", "2", "-1", "0.5"]), st.sampled_from(JUNK))


#: words for a value that names a file or folder: mostly the paths of the case
PATHISH = Words(st.one_of(st.sampled_from(PATHS), st.sampled_from(PATHS), GENERIC.valid), GENERIC.invalid)


def _pathish(action) -> bool:
    """Whether a free word of ``action`` likely names a file or folder: a positional, a DIR or
    FILE metavar, or a dest naming one."""
    return (not action.option_strings or str(action.metavar).upper() in ("DIR", "FILE", "PATH")
            or any(k in action.dest for k in ("out", "dir", "config", "status", "file", "folder", "path")))


def _words(c, cmd: str, dest: str) -> Words:
    """The words of a value of constraint ``c``."""
    c = c.constraint if isinstance(c, OrNone) else c
    if isinstance(c, Interval):
        return _numbers(c, dest)
    if isinstance(c, Options):
        return _names(c, cmd, dest)
    if isinstance(c, ListOf):
        return _list(c, cmd, dest)
    if isinstance(c, PathLike):
        return PATHISH
    return GENERIC  # a word the API checks (a device, a cluster address, an expression in K)


def _value_words(cmd: str, parser, action) -> Words:
    """The words of the value of ``action``."""
    from ufm.cli.parser import option_pair, out_folder

    dest = action.dest
    if (cmd, dest) in ONLY:
        return Words(st.sampled_from(ONLY[(cmd, dest)]), st.nothing())
    if action.choices:
        return Words(st.sampled_from(list(action.choices)), st.sampled_from(["bogus", "", "FLOAT64"]))
    if action.type is option_pair:
        pairs = st.tuples(st.sampled_from(KEYS), st.sampled_from(VALUES)).map("=".join)
        return Words(pairs, st.sampled_from(JUNK))
    if action.type is out_folder:
        return Words(st.sampled_from(PATHS), st.nothing())
    flag = parser.flags.get(dest)
    if not (flag and flag.constraint is not None):
        return PATHISH if _pathish(action) else GENERIC
    words = _words(flag.constraint, cmd, dest)
    if type(action.type).__name__ == "_ValueOrList":  # one value or a list (allow_list)
        many = _list(ListOf(flag.constraint), cmd, dest)
        words = Words(words.valid | many.valid, words.invalid | many.invalid)
    return words


def _action_words(action, value):
    """A strategy of the words of one occurrence of ``action`` (its flag and value(s)), the value
    drawn from ``value``."""
    if not action.option_strings:  # a positional
        low, high = {None: (1, 1), "?": (0, 1), "*": (0, 3), "+": (1, 3)}.get(action.nargs, (1, 2))
        return st.lists(value, min_size=low, max_size=high)
    names = st.sampled_from(action.option_strings)
    if action.nargs == 0:
        return names.map(lambda n: [n])
    long_ = [n for n in action.option_strings if n.startswith("--")]
    forms = [st.tuples(names, value).map(list)] * 4
    if long_:  # --flag=value, and an abbreviation of the flag
        forms.append(st.tuples(st.sampled_from(long_), value).map(lambda t: [f"{t[0]}={t[1]}"]))
        forms.append(st.tuples(st.sampled_from([n[:max(3, len(n) - 2)] for n in long_]), value).map(list))
    return st.one_of(forms)


def grammar() -> dict:
    """command -> [(action, its words, its valid words)] for every action of every command but
    --help and the ``NEVER`` flags."""
    from ufm.cli.main import build_parser

    parser = build_parser()
    out = {}
    for cmd, sub in parser.commands.items():
        actions = [a for a in sub._actions if not isinstance(a, argparse._HelpAction)
                   and not any((cmd, n) in NEVER for n in a.option_strings)]
        values = [_value_words(cmd, sub, a) for a in actions]
        out[cmd] = [(a, _action_words(a, v.mixed()), _action_words(a, v.valid)) for a, v in zip(actions, values)]
    return out


def _known_names() -> list:
    """The names of datasets, downloadable datasets and bundled experiments."""
    from ufm.dnn.data import DATASETS
    from ufm.dnn.data.download import SOURCES
    from ufm.dnn.experiment import BUNDLED

    return sorted(set(DATASETS) | set(SOURCES) | set(BUNDLED))


NAMES += _known_names()
GRAMMAR = grammar()
TOP = [[], ["--version"], ["-h"], ["--help"], ["bogus"], ["--bogus"], ["-K", "3"], ["--", "solve"], ["SOLVE"],
       [""], ["\udcff"]]
EXTRA = [["--bogus"], ["-Z"], ["--bogus=1"], ["extra"], ["--"], ["-h"], ["-K"], ["--json", "--json"]]


def _sometimes(draw, one_in: int) -> bool:
    """True once in about ``one_in`` draws (hypothesis leans to the first of a list)."""
    return draw(st.sampled_from([False] * (one_in - 1) + [True]))


@st.composite
def command_lines(draw):
    """An argument list: a command, its cheap words, its positionals in order and its required
    flags (nearly always), some of its other flags, in a drawn order; now and then a stray word or
    a flag missing its value. One case in three is clean: valid words only, so that it runs."""
    if _sometimes(draw, 20):
        return draw(st.sampled_from(TOP))
    cmd = draw(st.sampled_from(sorted(GRAMMAR)))
    clean = _sometimes(draw, 3)
    actions = [(a, valid if clean else mixed) for a, mixed, valid in GRAMMAR[cmd]]
    positional = [draw(w) for a, w in actions if not a.option_strings and not (a.required and _sometimes(draw, 10))]
    required = [w for a, w in actions if a.option_strings and a.required and not _sometimes(draw, 10)]
    optional = [w for a, w in actions if a.option_strings]
    groups = [draw(w) for w in required + (draw(st.lists(st.sampled_from(optional), max_size=4)) if optional else [])]
    if not clean and _sometimes(draw, 8):
        groups.append(draw(st.sampled_from(EXTRA)))
    groups = draw(st.permutations(groups))
    groups = groups + positional if _sometimes(draw, 4) else positional + groups
    words = [w for g in groups for w in g]
    if words and not clean and _sometimes(draw, 10):
        words = words[:-1]
    before = CHEAP.get(cmd, "").split()
    for (c, flag), extra in CHEAP_WITH.items():
        if c == cmd and flag in words:
            before += extra.split()
    return [cmd] + before + words + AFTER.get(cmd, "").split()


# -- one case -----------------------------------------------------------------------------------

def _layout(case: str) -> None:
    """The files every case may name: a text file, TOML files, an empty folder, malformed records."""
    for name, text in (("file.txt", "not a ufm file\n"), ("bad.toml", "= not toml\n"),
                       ("keys.toml", "unknown = 1\nepochs = 0\n"), ("run/config.json", "{}"),
                       ("demo/records/claims.json", "["), ("sweep/sweep.sqlite", "not a database"),
                       ("grid.toml", "classes = [3]\nalphas = [0.0, 0.2]\nper_class = [2]\n"),
                       ("run.toml", 'dataset = "gaussian"\nepochs = 1\ntrain_per_class = 4\ntest_per_class = 2\n')):
        os.makedirs(os.path.dirname(os.path.join(case, name)) or case, exist_ok=True)
        with open(os.path.join(case, name), "w") as f:
            f.write(text)
    if FINISHED is not None:  # a real, finished sweep (another grid than grid.toml's): mixing, refusals
        shutil.copytree(FINISHED, os.path.join(case, "finished"))
    os.makedirs(os.path.join(case, "empty"))
    os.makedirs(os.path.join(case, "home"))


def _snapshot(*roots) -> dict:
    """path -> (size, mtime) of every file under ``roots``; path -> None for every folder."""
    out = {}
    for root in roots:
        for where, _, files in os.walk(root):
            out[where] = None
            for f in files:
                s = os.lstat(os.path.join(where, f))
                out[os.path.join(where, f)] = (s.st_size, s.st_mtime_ns)
    return out


class _Stream(io.StringIO):
    def close(self):  # main closes stderr on a broken pipe; keep what was written
        pass


@contextlib.contextmanager
def _native_output():
    """Capture what native code (LAPACK, C libraries) writes to file descriptors 1 and 2; yields a
    list that then holds the text written to descriptor 2 (descriptor 1's is dropped)."""
    import ctypes

    libc, saved, got = ctypes.CDLL(None), [os.dup(1), os.dup(2)], []
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            yield got
        finally:
            libc.fflush(None)  # C's buffered streams
            for fd, old in ((1, saved[0]), (2, saved[1])):
                os.dup2(old, fd)
                os.close(old)
            err.seek(0)
            got.append(err.read().decode(errors="replace"))


def _run(argv) -> tuple:
    """``(exit code, stderr, uncaught exception text or None)`` of ``ufm ARGV`` in this process;
    stderr holds what Python and native code wrote to it."""
    from ufm.cli import main

    out, err = _Stream(), _Stream()
    crash = None
    with _native_output() as native, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as e:  # --help, --version
            code = 0 if e.code is None else e.code
        except Exception:
            code, crash = None, traceback.format_exc()
    return code, err.getvalue() + "".join(native), crash


def problems_of(argv, root: str) -> list:
    """What is wrong with ``ufm ARGV`` run in a fresh folder under ``root``: [(kind, description)],
    [] when nothing."""
    from ufm.dnn.data import idx

    case = tempfile.mkdtemp(dir=root)
    _layout(case)
    # without a read-only folder, a path below a file stands for one: it cannot be written either
    words = [w.replace("@CASE@", case).replace("@RO@", READ_ONLY or os.path.join(case, "file.txt")) for w in argv]
    watched = [case] + ([READ_ONLY] if READ_ONLY else [])
    before = _snapshot(*watched)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(case)
        mp.setenv("HOME", os.path.join(case, "home"))
        mp.setenv("MPLCONFIGDIR", os.path.join(root, "mpl"))  # matplotlib's cache: not in the case
        mp.delenv("UFM_DATA", raising=False)
        mp.setattr(idx, "FASHION_MNIST_DIRS", ())
        code, err, crash = _run(words)
    found = []  # (kind, what exactly)
    if crash:
        found.append((f"uncaught {crash.strip().splitlines()[-1][:80]}", ""))
    elif code not in (0, 1, 2):
        found.append((f"exit code {code!r}", ""))
    if "Traceback" in err:
        found.append(("a traceback on stderr", ""))
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        if len(lines) != 1:
            found.append(("not one line on stderr with exit code 2", f"{len(lines)} lines"))
        changed = sorted(set(before.items()) ^ set(_snapshot(*watched).items()))
        if changed:
            found.append(("written with exit code 2", str(sorted({os.path.relpath(p, case) for p, _ in changed}))))
    shutil.rmtree(case, ignore_errors=True)
    return [(kind, f"{kind} {what}\n  argv: {argv!r}\n  exit code {code!r}, stderr: {err.strip()[-600:]!r}")
            for kind, what in found]


# -- the read-only folder ------------------------------------------------------------------------

def _make_read_only(folder: str):
    """Make ``folder`` read-only (a read-only bind mount as root, where permission bits do not
    stop writes; else permission bits): the function that undoes it, or None where writes are
    not stopped."""
    sub, file = os.path.join(folder, "sub"), os.path.join(folder, "file.txt")
    os.makedirs(sub)
    with open(file, "w") as f:
        f.write("read-only\n")
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "--bind", "-o", "ro", folder, folder], capture_output=True)
        undo = (lambda: subprocess.run(["umount", folder], capture_output=True).returncode == 0
                or subprocess.run(["umount", "-l", folder], check=True))
        if done.returncode != 0:
            return None
    else:
        for path, mode in ((sub, 0o555), (file, 0o444), (folder, 0o555)):
            os.chmod(path, mode)
        undo = lambda: [os.chmod(p, 0o755) for p in (folder, sub)]  # noqa: E731
    try:
        open(os.path.join(folder, "probe"), "w").close()
    except OSError:
        return undo
    os.remove(os.path.join(folder, "probe"))
    undo()
    return None


READ_ONLY = None  # the read-only folder of this run (None: none could be made; see problems_of)
FINISHED = None  # a finished sweep folder, copied into every case as "finished"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder for the cases, and the read-only folder they share; torch on one thread (the
    problems are tiny: more threads only wait on each other)."""
    import torch

    global READ_ONLY, FINISHED
    from ufm.sweep import SweepSpec, run_sweep

    root = str(tmp_path_factory.mktemp("fuzz"))
    FINISHED = os.path.join(root, "finished")
    run_sweep(SweepSpec(classes=[3], alphas=[0.0, 0.1], per_class=[2]), FINISHED)
    undo = _make_read_only(os.path.join(root, "ro"))
    READ_ONLY = os.path.join(root, "ro") if undo else None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield root
    torch.set_num_threads(threads)
    READ_ONLY = FINISHED = None
    if undo:
        undo()


def _settings(test):
    test = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=SEED is None,
                    suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])(test)
    return hypothesis.seed(int(SEED))(test) if SEED is not None else test


def test_every_command_line_ends_cleanly(workspace):
    """Exit code 0, 1 or 2; no traceback; with exit code 2 one line on stderr and nothing written.

    Every case runs (a failing one does not stop the others, nor is it shrunk: each takes up to
    seconds); the failures are then listed once per command and kind, with the first argument
    list that showed it and how many did."""
    failures, cases = {}, []

    @_settings
    @given(argv=command_lines())
    def case(argv):
        cases.append(argv)
        argv = argv or [""]
        for kind, text in problems_of(argv, workspace):
            first, count = failures.get((argv[0], kind), (text, 0))
            failures[(argv[0], kind)] = (first, count + 1)

    case()
    print(f"ufm fuzz: {len(cases)} cases, {len(failures)} distinct failures")
    assert not failures, f"{len(failures)} distinct failures in {len(cases)} cases:\n" + "\n".join(
        f"[{count} case(s)] {text}" for text, count in failures.values())
