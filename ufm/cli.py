"""The ``ufm`` command line (thin: parse, validate, call the Python API, print).

Bad input exits with code 2 and one line on stderr; ``ufm verify`` exits 1 when a
point disagrees with the closed form.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
import warnings
from pathlib import Path
from contextlib import contextmanager
from typing import List, Optional

from ._version import __version__
from ._io import to_jsonable
from ._validation import InvalidParameterError, UFMWarning

__all__ = ["main", "build_parser"]

_FLAGS = {"num_classes": "-K/--num-classes", "per_class": "-n/--per-class", "dim": "-d/--dim",
          "lambda_w": "--lambda-w", "lambda_h": "--lambda-h", "lambda_b": "--lambda-b", "alpha": "--alpha",
          "lr": "--lr", "momentum": "--momentum", "tol": "--tol", "max_steps": "--max-steps",
          "history": "--history", "init_scale": "--init-scale", "seeds": "--seeds", "classes": "--classes",
          "patience": "--patience", "alphas": "--alphas", "eps": "--eps", "record_every": "--record-every",
          "null_rtol": "--null-rtol", "solver_tol": "--solver-tol", "dims": "--dims", "what": "--what"}
# max_bytes is given in GiB on the command line: _cmd_conditioning checks --max-gib itself


_DEFINITIONS = ("logits", "features", "classifier", "full")  # ufm.theory.spectra.DEFINITIONS (not imported: startup)


class UsageError(Exception):
    """A command-line error: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise UsageError(f"{self.prog}: error: {message}")


def _number_in(kind: type, valid: Optional[str] = None):
    """An argparse type whose parse error states the valid range (the API checks the range;
    ``valid=None``: the range is named by the API object the value goes to)."""
    article = "an int" if kind is int else "a float"
    where = f" in the range {valid}" if valid else ""

    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {article}{where}. Got {text!r} instead.")
    return parse


def _int_in(valid: str):
    return _number_in(int, valid)


def _float_in(valid: str):
    return _number_in(float, valid)


def _problem_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("problem (README, Conventions)")
    g.add_argument("-K", "--num-classes", type=_int_in("[2, inf)"), default=10, help="number of classes K >= 2 (default 10)")
    g.add_argument("-n", "--per-class", type=_int_in("[1, inf)"), default=10, help="samples per class n >= 1 (default 10)")
    g.add_argument("-d", "--dim", type=_int_in("[1, inf)"), default=None, help="feature dimension d >= 1 (default K)")
    g.add_argument("--lambda-w", type=_float_in("(0, inf)"), default=5e-3, help="weight decay on W, > 0 (default 5e-3)")
    g.add_argument("--lambda-h", type=_float_in("(0, inf)"), default=5e-3, help="weight decay on H, > 0 (default 5e-3)")
    g.add_argument("--lambda-b", type=_float_in("[0, inf)"), default=0.0, help="weight decay on b, >= 0 (default 0)")
    g.add_argument("--alpha", type=_float_in("[0, 1)"), default=0.0, help="label smoothing in [0, 1); 0 is CE (default 0)")


def _solver_flags(p: argparse.ArgumentParser, tol: float) -> None:
    g = p.add_argument_group("solver")
    g.add_argument("--method", choices=["lbfgs", "gd", "momentum"], default="lbfgs", help="default lbfgs")
    g.add_argument("--tol", type=_float_in("(0, inf)"), default=tol, help=f"gradient-norm tolerance (default {tol:g})")
    g.add_argument("--max-steps", type=_int_in("[0, inf)"), default=None, help="step cap (default 5000 lbfgs, 100000 gd/momentum)")
    g.add_argument("--lr", type=_float_in("(0, inf)"), default=None, help="step size of gd/momentum (default 0.5)")
    g.add_argument("--momentum", type=_float_in("[0, 1)"), default=None, help="heavy-ball coefficient (default 0.9)")
    g.add_argument("--history", type=_int_in("[1, inf)"), default=None, help="L-BFGS memory (default 10)")
    g.add_argument("--patience", type=_int_in("[1, inf)"), default=None,
                   help="stop as stalled after this many steps without a new best gradient norm "
                        "(default 100 lbfgs, 5000 gd/momentum)")
    g.add_argument("--init-scale", type=_float_in("(0, inf)"), default=1.0, help="initial entries ~ N(0, s^2/d) (default 1)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    g.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="default float64")


_TRAIN_FLAGS = [  # (flag, TrainConfig key, type, help); defaults are TrainConfig's
    ("--dataset", "dataset", str, "gaussian, mnist1d, digits, fashion-mnist; with torchvision: mnist, cifar10, "
                                  "cifar100, stl10, tinyimagenet (default mnist1d)"),
    ("--data-dir", "data_dir", str, "folder holding datasets (default $UFM_DATA, then standard places)"),
    ("--val-fraction", "val_fraction", float, "fraction of each class held out for temperature scaling (default 0.1)"),
    ("--data-seed", "data_seed", int, "seed of the data and its split (default 0)"),
    ("--train-per-class", "train_per_class", int, "balanced subset: training samples per class"),
    ("--test-per-class", "test_per_class", int, "balanced subset: test samples per class"),
    ("--model", "model", str, "mlp, cnn, resnet18, resnet50 (default mlp)"),
    ("--loss", "loss", str, "label_smoothing (default; alpha = 0 is CE)"),
    ("--alpha", "alpha", float, "label smoothing in [0, 1); 0 is CE (default 0)"),
    ("--epochs", "epochs", int, "default 30"),
    ("--batch-size", "batch_size", int, "global batch size (default 128)"),
    ("--lr", "lr", float, "initial learning rate (default 0.05)"),
    ("--momentum", "momentum", float, "SGD momentum (default 0.9)"),
    ("--schedule", "schedule", str, "multistep, cosine or constant (default multistep)"),
    ("--milestones", "milestones", "ints", "multistep: epochs after which lr is multiplied by --gamma, e.g. 150,350"),
    ("--gamma", "gamma", float, "multistep factor (default 0.1)"),
    ("--mode", "mode", str, "standard (weight decay on everything) or ufm (explicit lambda_W, lambda_H, lambda_b)"),
    ("--weight-decay", "weight_decay", float, "standard mode: weight decay of every parameter (default 5e-4)"),
    ("--lambda-w", "lambda_w", float, "ufm mode: penalty on the classifier W (default 5e-4)"),
    ("--lambda-h", "lambda_h", float, "ufm mode: penalty on the features H, full-data scale (default 5e-4)"),
    ("--lambda-b", "lambda_b", float, "ufm mode: penalty on the bias b (default 0)"),
    ("--backbone-weight-decay", "backbone_weight_decay", float, "ufm mode: weight decay of the backbone (default 0)"),
    ("--seed", "seed", int, "seed of the initialization and minibatch order (default 0)"),
    ("--device", "device", str, "auto, cpu, cuda, cuda:N (default auto)"),
    ("--dtype", "dtype", str, "float32 or float64 (default float32)"),
    ("--eval-every", "eval_every", int, "record metrics every E epochs (default 1)"),
    ("--eval-batch-size", "eval_batch_size", int, "default 1024"),
    ("--n-bins", "n_bins", int, "ECE bins (default 15)"),
    ("--checkpoint-every", "checkpoint_every", int, "checkpoint every C epochs (default 1)"),
]
_FLAGS.update({key: flag for flag, key, _, _ in _TRAIN_FLAGS})


def _option(text: str):
    """KEY=VALUE with VALUE an int, a float, true/false, or a string."""
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


def _train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="the run folder (resumed if it holds this run)")
    p.add_argument("--config", default=None, help="a TOML file of TrainConfig keys; flags override it")
    g = p.add_argument_group("run (README, DNN experiments)")
    for flag, key, kind, help_ in _TRAIN_FLAGS:
        g.add_argument(flag, dest=key, default=None, help=help_,
                       type={"ints": str, int: _number_in(int), float: _number_in(float), str: str}[kind])
    g.add_argument("--dataset-option", dest="dataset_options", action="append", type=_option, default=[],
                   metavar="KEY=VALUE", help="dataset option, e.g. num_classes=5 for gaussian (repeatable)")
    g.add_argument("--model-option", dest="model_options", action="append", type=_option, default=[],
                   metavar="KEY=VALUE", help="model option, e.g. width=512, depth=4, batchnorm=true (repeatable)")
    g.add_argument("--download", action="store_true", help="let torchvision download a missing dataset")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ufm", description="Unconstrained feature model of neural collapse: closed forms, "
                                             "numerical solutions and NC metrics under CE and label smoothing.")
    parser.add_argument("--version", action="version", version=f"ufm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("closed-form", help="print the closed-form global minimizer")
    _problem_flags(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--latex", action="store_true", help="also print the LaTeX of each closed form")

    p = sub.add_parser("solve", help="solve the UFM numerically and compare with the closed form")
    _problem_flags(p)
    _solver_flags(p, tol=1e-10)
    p.add_argument("--seed", type=_int_in("(-inf, inf)"), default=0, help="seed of the random initial point (default 0)")
    p.add_argument("--nc1-variant", choices=["normalized", "unnormalized"], default="normalized",
                   help="NC1 with 1/K (normalized, default) or without")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("verify", help="solve a grid of problems and check them against the closed form")
    p.add_argument("--tol", type=_float_in("(0, inf)"), default=1e-6, help="maximum relative error (default 1e-6)")
    p.add_argument("--per-class", type=_int_in("[1, inf)"), default=10, help="samples per class n (default 10)")
    p.add_argument("--seeds", type=_int_in("[1, inf)"), default=2, help="number of seeds per configuration (default 2)")
    p.add_argument("--classes", default="3,5,10", help="comma-separated K values of the grid (default 3,5,10)")
    p.add_argument("--method", choices=["lbfgs", "gd", "momentum"], default="lbfgs", help="default lbfgs")
    p.add_argument("--solver-tol", type=_float_in("(0, inf)"), default=1e-11, help="gradient-norm tolerance (default 1e-11)")
    p.add_argument("--max-steps", type=_int_in("[0, inf)"), default=None, help="step cap")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="default float64")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("conditioning", help="Hessian spectra and condition numbers at the minimizer, CE vs LS")
    _problem_flags(p)
    p.add_argument("--alphas", default=None, help="comma-separated smoothing factors in [0, 1) (default: --alpha)")
    p.add_argument("--definitions", default=",".join(_DEFINITIONS),
                   help=f"comma-separated operators among {', '.join(_DEFINITIONS)} (default all)")
    p.add_argument("--numeric", action="store_true",
                   help="also compute the spectra at a numerically found minimizer (L-BFGS, dense eigvalsh)")
    p.add_argument("--seed", type=_int_in("(-inf, inf)"), default=0, help="seed of the numerical solve (default 0)")
    p.add_argument("--solver-tol", type=_float_in("(0, inf)"), default=1e-12, help="gradient-norm tolerance of the "
                                                                                    "numerical solve (default 1e-12)")
    p.add_argument("--null-rtol", type=_float_in("(0, 1)"), default=1e-7,
                   help="numeric null space: |eigenvalue| <= null-rtol * max|eigenvalue| (default 1e-7)")
    p.add_argument("--max-gib", type=_float_in("(0, inf)"), default=4.0,
                   help="memory for a dense Hessian in GiB, estimated peak (3 times the matrix); "
                        "larger ones fall back to Lanczos (default 4)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per (alpha, definition, source)")

    p = sub.add_parser("convergence", help="gradient descent from random starts, CE vs LS: steps and rates")
    _problem_flags(p)
    p.add_argument("--alphas", default="0,0.1", help="comma-separated smoothing factors in [0, 1) (default 0,0.1)")
    p.add_argument("--seeds", type=_int_in("[1, inf)"), default=3, help="number of random starts per alpha (default 3)")
    p.add_argument("--eps", default="1e-3,1e-6,1e-9", help="comma-separated tolerances (default 1e-3,1e-6,1e-9)")
    p.add_argument("--rules", default="local,common", help="step-size rules: local, common (default both)")
    p.add_argument("--max-steps", type=_int_in("[1, inf)"), default=50_000, help="step cap (default 50000)")
    p.add_argument("--record-every", type=_int_in("[1, inf)"), default=10, help="record every so many steps (default 10)")
    p.add_argument("--init-scale", type=_float_in("(0, inf)"), default=1.0, help="initial entries ~ N(0, s^2/d) (default 1)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--json", action="store_true", help="print JSON (rows, predictions, trajectories)")

    p = sub.add_parser("sweep", help="a grid of problems: closed form, solve, conditioning, convergence per point; "
                                     "resumable")
    p.add_argument("--out", default=None, help="output folder (sweep.sqlite, results.csv, spec.json); required to run")
    p.add_argument("--config", default=None, help="a TOML file with the keys below (instead of the flags)")
    p.add_argument("--alphas", default="0,0.05,0.1", help="comma-separated smoothing factors (default 0,0.05,0.1)")
    p.add_argument("--classes", default="10", help="comma-separated K values (default 10)")
    p.add_argument("--dims", default="K", help="comma-separated d values: ints or K, K-1, 2K, K+3 (default K)")
    p.add_argument("--per-class", default="10", help="comma-separated n values (default 10)")
    p.add_argument("--lambda-w", default="5e-3", help="comma-separated values (default 5e-3)")
    p.add_argument("--lambda-h", default="5e-3", help="comma-separated values (default 5e-3)")
    p.add_argument("--lambda-b", default="0", help="comma-separated values (default 0)")
    p.add_argument("--seeds", type=_int_in("[1, inf)"), default=1, help="seeds per configuration (default 1)")
    p.add_argument("--what", default="closed-form", help="comma-separated: closed-form, solve, conditioning, "
                                                         "convergence (default closed-form)")
    p.add_argument("--workers", type=_int_in("[0, inf)"), default=None,
                   help="worker processes (default: one per CPU; 0 runs in this process)")
    p.add_argument("--cluster", default=None, help="local-dask (a LocalCluster) or dask://HOST:PORT (an existing "
                                                     "scheduler); default: local processes")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--status", metavar="DIR", default=None, help="print the progress of the sweep in DIR and exit")

    p = sub.add_parser("plot", help="draw a sweep's (or an experiment's) standard figures from its records")
    p.add_argument("out", help="a folder written by `ufm sweep`")

    p = sub.add_parser("derive", help="print the symbolic derivation of the minimizer (or of the Hessian spectra)")
    p.add_argument("--markdown", action="store_true", help="print it as Markdown with LaTeX")
    p.add_argument("--hessian", action="store_true", help="the Hessian spectra instead (takes about a minute)")

    p = sub.add_parser("train", help="train a network under CE or LS, recording NC metrics and calibration "
                                     "(resumable; torchrun for several GPUs)")
    _train_flags(p)

    p = sub.add_parser("experiment", help="run a bundled (or TOML) experiment: CE vs LS runs, figures, UFM checks")
    p.add_argument("experiment", nargs="?", help="a bundled name (see --list) or a FILE.toml")
    p.add_argument("--out", default=None, help="output folder (default ufm-experiments/NAME)")
    p.add_argument("--list", action="store_true", help="list the bundled experiments and exit")
    p.add_argument("--epochs", type=_int_in("[1, inf)"), default=None, help="override the epochs of every run")
    p.add_argument("--seeds", type=_int_in("[1, inf)"), default=None, help="override: seeds 0..N-1")
    p.add_argument("--workers", type=_int_in("[0, inf)"), default=None,
                   help="worker processes (default one per CPU, at most one per run; 0: one run at a time here)")
    p.add_argument("--cluster", default=None, help="local-dask or dask://HOST:PORT (needs ufm[cluster])")
    p.add_argument("--device", default=None, help="override the device of every run (auto, cpu, cuda, cuda:N)")
    p.add_argument("--data-dir", default=None, help="folder holding datasets (default $UFM_DATA, then standard places)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("validate", help="confront the UFM's predictions with trained runs")
    p.add_argument("runs", nargs="+", help="run folders (of ufm train or ufm experiment)")
    p.add_argument("--json", action="store_true", help="print JSON (with the per-epoch curves)")

    p = sub.add_parser("demo", help="run a short version of everything and write a report")
    p.add_argument("--out", default="ufm-demo", help="output folder (default ufm-demo)")
    p.add_argument("--quick", action="store_true", help="a reduced version (seconds)")
    p.add_argument("--force", action="store_true", help="recompute stages whose records exist")

    p = sub.add_parser("report", help="rebuild the demo figures and report from its records")
    p.add_argument("out", help="a folder written by `ufm demo`")
    return parser


# ---------------------------------------------------------------------------

def _problem(args):
    from .problem import UFMProblem

    return UFMProblem(args.num_classes, args.per_class, args.num_classes if args.dim is None else args.dim,
                      args.lambda_w, args.lambda_h, args.lambda_b, args.alpha)


def _device(name: Optional[str]):
    import torch

    if name is None:
        return None
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UsageError(f"ufm: error: The --device value must be cpu, cuda or cuda:N. Got {name!r} instead.")
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"ufm: error: The --device value must be cpu, cuda or cuda:N. Got {name!r} instead.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"ufm: error: The --device value {name!r} is not available: torch sees no CUDA device; "
                         "use --device cpu.")
    return dev


def _dtype(name: str):
    import torch

    return {"float64": torch.float64, "float32": torch.float32}[name]


def _cmd_closed_form(args) -> int:
    from .theory import _minimizer_generated as gen
    from .theory.closed_form import closed_form

    cf = closed_form(_problem(args))
    d = cf.to_dict()
    if args.json:
        if args.latex:
            d["latex"] = gen.LATEX
        print(json.dumps(d, indent=1))
        return 0
    p = cf.problem
    print(f"UFM closed form, loss {p.loss} (alpha = {p.alpha:g}{', cross-entropy' if p.alpha == 0 else ''}): "
          f"K={p.K} n={p.n} d={p.d} lambda_W={p.lambda_w:g} lambda_H={p.lambda_h:g} lambda_b={p.lambda_b:g}")
    for k in ("logit_gap", "p_true", "p_off", "w_norm", "h_norm", "objective", "bias_norm"):
        print(f"  {k:<10} {getattr(cf, k):.12g}")
    rel = "<" if not cf.trivial else ">="
    print(f"  trivial    {'yes' if cf.trivial else 'no'} (s = sqrt(n lambda_W lambda_H) = {cf.reg_strength:.6g} "
          f"{rel} threshold (1 - alpha)/K = {cf.threshold:.6g})")
    if not cf.applies:
        print("  note: d < K-1, so these are the ETF-ansatz values, not the minimizer")
    if args.latex:
        print("LaTeX (s = \\sqrt{n \\lambda_W \\lambda_H} expanded; nonzero branch):")
        for k, tex in gen.LATEX.items():
            print(f"  {k} = {tex}")
    return 0


def _cmd_solve(args) -> int:
    from .numerics.solver import solve
    from .theory.closed_form import closed_form
    from .verify import compare, measure

    problem = _problem(args)
    t0 = time.perf_counter()
    res = solve(problem, method=args.method, seeds=args.seed, tol=args.tol, max_steps=args.max_steps, lr=args.lr,
                momentum=args.momentum, history=args.history, init_scale=args.init_scale, patience=args.patience,
                dtype=_dtype(args.dtype), device=_device(args.device))
    seconds = time.perf_counter() - t0
    m = measure(res, 0, nc1_variant=args.nc1_variant)
    out = {"problem": problem.to_dict(), "solver": {"method": args.method, "seed": args.seed, "seconds": seconds,
                                                     **res.options}, "numeric": m}
    if problem.closed_form_applies:
        exact = closed_form(problem)
        out["closed_form"] = exact.to_dict()
        out["errors"] = compare(problem, m, exact)
    if args.json:
        print(json.dumps(to_jsonable(out), indent=1))
        return 0
    print(f"solved with {args.method} in {m['steps']} steps ({seconds:.2f} s): ||grad f|| = {m['grad_norm']:.3g}, "
          f"converged: {'yes' if m['converged'] else 'no (' + m['status'] + ')'}")
    cf = out.get("closed_form")
    print(f"  {'quantity':<10} {'numeric':>16} {'closed form':>16} {'error':>10}")
    for k in ("logit_gap", "p_true", "w_norm", "h_norm", "objective"):
        ref = f"{cf[k]:16.10g}" if cf else f"{'n/a':>16}"
        err = f"{out['errors'][k]:10.2e}" if cf else f"{'n/a':>10}"
        print(f"  {k:<10} {m[k]:16.10g} {ref} {err}")
    if cf:
        print(f"  {'bias':<10} {m['bias_distance']:16.3g} {'(distance to the optimal set)':>27}")
    if "orbit" in m:
        print(f"  distance to the minimizer orbit (relative): {m['orbit']:.3g}")
    print("  NC metrics (" + ("tr/K" if args.nc1_variant == "normalized" else "tr, no 1/K") + "): " + ", ".join(
        f"{k}={m[k]:.3g}" for k in ("nc1", "nc2_h", "nc2_w", "nc3", "nc4")))
    return 0


def _values(text: str, flag: str, command: str, kind: type = float) -> list:
    """Comma-separated numbers (``kind`` float or int), at least one; else a one-line usage error."""
    what = "numbers" if kind is float else "ints"
    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"ufm {command}: error: {flag} must be comma-separated {what}. Got {text!r} instead.")
    if not values:
        raise UsageError(f"ufm {command}: error: {flag} must hold at least one {what[:-1]}. Got {text!r} instead.")
    return values


def _name_list(text: str, flag: str, command: str, valid) -> List[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in names if x not in valid]
    if bad or not names:
        raise UsageError(f"ufm {command}: error: {flag} must be comma-separated names among {', '.join(valid)}. "
                         f"Got {text!r} instead.")
    return names


def _cmd_conditioning(args) -> int:
    from .conditioning import conditioning, summarize

    problem = _problem(args)
    alphas = [args.alpha] if args.alphas is None else _values(args.alphas, "--alphas", "conditioning")
    if not (args.max_gib > 0 and math.isfinite(args.max_gib)):
        raise UsageError(f"ufm conditioning: error: --max-gib must be a float in the range (0, inf). "
                         f"Got {args.max_gib} instead.")
    definitions = _name_list(args.definitions, "--definitions", "conditioning", _DEFINITIONS)
    spectra = conditioning(problem, alphas=alphas, definitions=definitions, numeric=args.numeric, seed=args.seed,
                           solver_tol=args.solver_tol, null_rtol=args.null_rtol,
                           max_bytes=int(args.max_gib * 2**30), device=_device(args.device))
    if args.json:
        print(json.dumps(to_jsonable([s.to_dict() for s in spectra]), indent=1))
        return 0
    p = problem
    print(f"Hessian spectra at the minimizer: K={p.K} n={p.n} d={p.d} lambda_W={p.lambda_w:g} "
          f"lambda_H={p.lambda_h:g} lambda_b={p.lambda_b:g} (README, Conditioning)")
    print(f"  {'alpha':>6} {'definition':<10} {'source':<8} {'kappa':>12} {'null':>5} {'min nonzero':>12} "
          f"{'max':>12} {'distinct':>8}")
    for s in spectra:
        nz = [v for v in s.eigenvalues if v != 0]
        if s.complete:
            kappa, null, low, count = (f"{s.condition_number:.6g}", str(s.null_dim),
                                       f"{(min(nz) if nz else math.nan):.6g}", str(len(s.eigenvalues)))
        else:  # top of the spectrum only (Lanczos)
            kappa, null, low, count = "partial", "-", "-", "-"
        print(f"  {s.alpha:>6g} {s.definition:<10} {s.source:<8} {kappa:>12} {null:>5} {low:>12} "
              f"{(max(nz) if nz else math.nan):>12.6g} {count:>8}")
    summary = summarize(spectra)
    if any(v["verdict"] != "no CE baseline" for v in summary.values()):
        print("Label smoothing vs CE (symbolic condition numbers):")
        for dfn, v in summary.items():
            print(f"  {dfn + ':':<17} {v['verdict']}: kappa(CE) = {v['kappa_ce']:.6g}; " + ", ".join(
                f"kappa(alpha={a:g}) = {k:.6g}" for a, k in v["kappa_ls"].items()))
    return 0


def _cmd_convergence(args) -> int:
    from .convergence import QUANTITIES, RULES, convergence

    problem = _problem(args)
    alphas = _values(args.alphas, "--alphas", "convergence")
    if args.seeds < 1:
        raise UsageError(f"ufm convergence: error: --seeds must be an int in the range [1, inf). Got {args.seeds} instead.")
    eps = _values(args.eps, "--eps", "convergence")
    rules = _name_list(args.rules, "--rules", "convergence", RULES)
    out = convergence(problem, alphas=alphas, seeds=range(args.seeds), eps=eps, rules=rules,
                      max_steps=args.max_steps, record_every=args.record_every, init_scale=args.init_scale,
                      device=_device(args.device))
    if args.json:
        print(json.dumps(to_jsonable(out), indent=1))
        return 0
    p = problem
    print(f"Gradient descent, K={p.K} n={p.n} d={p.d} lambda_W={p.lambda_w:g} lambda_H={p.lambda_h:g} "
          f"lambda_b={p.lambda_b:g}, {args.seeds} seeds (README, Conditioning)")
    print(f"  {'rule':<7} {'alpha':>6} {'lr':>9} {'kappa_full':>10} {'rate predicted':>14} {'rate measured':>13}")
    for r in out["predictions"]:
        meas = "n/a" if r["rate_measured_mean"] is None else f"{r['rate_measured_mean']:.6f}"
        print(f"  {r['rule']:<7} {r['alpha']:>6g} {r['lr']:>9.4g} {r['kappa_full']:>10.4g} "
              f"{r['rate_predicted_full']:>14.6f} {meas:>13}")
    print("  median steps to reach eps (None: not reached):")
    for rule in rules:
        for a in alphas:
            rows = [r for r in out["rows"] if r["rule"] == rule and r["alpha"] == a]
            cells = []
            for q in QUANTITIES:
                for e in out["config"]["eps"]:
                    vals = [r[f"steps_{q}_{e:g}"] for r in rows]
                    med = None if any(v is None for v in vals) else int(sorted(vals)[len(vals) // 2])
                    cells.append(f"{q}<{e:g}: {med}")
            print(f"  {rule:<7} alpha={a:g}: " + "; ".join(cells))
    return 0


def _cmd_sweep(args) -> int:
    from pathlib import Path

    from .sweep import WHAT, SweepSpec, run_sweep, sweep_status

    if args.status:
        try:
            s = sweep_status(args.status)
        except FileNotFoundError as e:
            raise UsageError(f"ufm sweep: error: {e}")
        print(f"{s['done']}/{s['total']} points done ({', '.join(s['what'])}), {s['errors']} with errors, "
              f"{s['remaining']} remaining")
        return 0
    if not args.out:
        raise UsageError("ufm sweep: error: --out DIR is required to run a sweep (or --status DIR to see one).")
    if args.seeds < 1:
        raise UsageError(f"ufm sweep: error: --seeds must be an int in the range [1, inf). Got {args.seeds} instead.")
    if args.config:
        if not Path(args.config).is_file():
            raise UsageError(f"ufm sweep: error: --config file {args.config!r} not found.")
        spec = SweepSpec.from_toml(args.config)
    else:
        dims = []
        for d in args.dims.split(","):
            d = d.strip()
            dims.append(int(d) if d.lstrip("-").isdigit() else d)
        spec = SweepSpec(alphas=_values(args.alphas, "--alphas", "sweep"),
                         classes=_values(args.classes, "--classes", "sweep", int), dims=dims,
                         per_class=_values(args.per_class, "--per-class", "sweep", int),
                         lambda_w=_values(args.lambda_w, "--lambda-w", "sweep"),
                         lambda_h=_values(args.lambda_h, "--lambda-h", "sweep"),
                         lambda_b=_values(args.lambda_b, "--lambda-b", "sweep"), seeds=args.seeds,
                         what=_name_list(args.what, "--what", "sweep", WHAT))
    if args.cluster is not None and not (args.cluster == "local-dask" or args.cluster.startswith("dask://")):
        raise UsageError(f"ufm sweep: error: --cluster must be local-dask or dask://HOST:PORT. "
                         f"Got {args.cluster!r} instead.")
    from .executors import ClusterError

    try:
        summary = run_sweep(spec, args.out, workers=args.workers, cluster=args.cluster, device=args.device,
                            progress=sys.stderr.isatty(), log=lambda m: print(m, file=sys.stderr))
    except ClusterError as e:
        raise UsageError(f"ufm sweep: error: {e}")
    print(f"{summary['total']} points ({summary['computed']} computed now, {summary['errors']} with errors) "
          f"in {summary['seconds']:.1f} s -> {Path(args.out) / 'results.csv'}")
    return 0


def _cmd_plot(args) -> int:
    from .report.sweep_figures import plot_sweep

    try:
        if (Path(args.out) / "experiment.json").is_file():
            from .report.dnn_figures import plot_experiment

            paths = plot_experiment(args.out)
        else:
            paths = plot_sweep(args.out)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(f"ufm plot: error: {e}")
    for path in paths:
        print(path)
    return 0


def _cmd_verify(args) -> int:
    from .verify import default_grid, verify

    classes = _values(args.classes, "--classes", "verify", int)
    if not classes or any(k < 2 for k in classes):
        raise UsageError(f"ufm verify: error: --classes must hold ints >= 2. Got {args.classes!r} instead.")
    if args.seeds < 1:
        raise UsageError(f"ufm verify: error: --seeds must be an int in the range [1, inf). Got {args.seeds} instead.")
    for flag, value in (("--tol", args.tol), ("--solver-tol", args.solver_tol)):
        if not (value > 0 and math.isfinite(value)):
            raise UsageError(f"ufm verify: error: {flag} must be a float in the range (0, inf). Got {value} instead.")
    if args.per_class < 1:
        raise UsageError(f"ufm verify: error: --per-class must be an int in the range [1, inf). "
                         f"Got {args.per_class} instead.")
    grid = default_grid(args.per_class, range(args.seeds), classes)
    t0 = time.perf_counter()
    rows = verify(grid, tol=args.tol, method=args.method, solver_tol=args.solver_tol, max_steps=args.max_steps,
                  dtype=_dtype(args.dtype), device=_device(args.device),
                  progress=sys.stderr.isatty() and not args.json)
    seconds = time.perf_counter() - t0
    passed = sum(r["ok"] for r in rows)
    if args.json:
        print(json.dumps(to_jsonable({"tol": args.tol, "passed": passed, "total": len(rows), "seconds": seconds,
                                 "rows": rows}), indent=1))
    else:
        print(f"{'K':>3} {'d':>3} {'alpha':>5} {'lambda_w':>8} {'lambda_h':>8} {'lambda_b':>8} {'seed':>4} "
              f"{'trivial':>7} {'steps':>5} {'max error':>9}  ok")
        for r in rows:
            print(f"{r['num_classes']:>3} {r['dim']:>3} {r['alpha']:>5g} {r['lambda_w']:>8g} {r['lambda_h']:>8g} "
                  f"{r['lambda_b']:>8g} {r['seed']:>4} {'yes' if r['trivial'] else 'no':>7} {r['num_steps']:>5} "
                  f"{r['max_error']:>9.2e}  {'ok' if r['ok'] else 'FAIL'}")
        print(f"{passed}/{len(rows)} points agree with the closed form to {args.tol:g} ({seconds:.1f} s)")
    return 0 if passed == len(rows) else 1


def _cmd_derive(args) -> int:
    if args.hessian:
        from .theory.symbolic_hessian import derive_hessian, hessian_to_markdown, hessian_to_text

        d = derive_hessian()
        print((hessian_to_markdown if args.markdown else hessian_to_text)(d), end="")
        return 0
    from .theory.symbolic import derive_minimizer, to_markdown, to_text

    d = derive_minimizer()
    print((to_markdown if args.markdown else to_text)(d), end="")
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, quick=args.quick, force=args.force)
    return 0


def _cmd_report(args) -> int:
    from pathlib import Path

    from .report.markdown import build_report

    from .report.markdown import RECORDS

    records = Path(args.out) / "records"
    missing = [str(records / f"{n}.json") for n in RECORDS if not (records / f"{n}.json").is_file()]
    if missing:
        raise UsageError(f"ufm report: error: {', '.join(missing)} not found; run `ufm demo --out {args.out}` first.")
    try:
        print(build_report(args.out))
    except (ValueError, KeyError) as e:  # a record that is not what ufm demo wrote
        raise UsageError(f"ufm report: error: unreadable record in {records}: {e}")
    return 0


def _train_config(args, where: str):
    """TrainConfig from --config (TOML keys) overridden by the flags given."""
    from .dnn.config import TrainConfig

    from ._io import read_toml

    base = read_toml(args.config, "run file", "config") if args.config else {}
    for flag, key, kind, _ in _TRAIN_FLAGS:
        value = getattr(args, key)
        if value is None:
            continue
        if kind == "ints":
            try:
                value = [int(v) for v in value.split(",") if v.strip()]
            except ValueError:
                raise UsageError(f"ufm {where}: error: {flag} must be comma-separated ints. Got {value!r} instead.")
        base[key] = value
    for key in ("dataset_options", "model_options"):
        if getattr(args, key):
            base[key] = {**base.get(key, {}), **dict(getattr(args, key))}
    if args.download:
        base["dataset_options"] = {**base.get("dataset_options", {}), "download": True}
    return TrainConfig.from_dict(base, where=args.config or "the command line")


@contextmanager
def _run_errors(command: str):
    """Errors raised inside a run (dataset and model options, the run folder) name their own
    parameter, which is not a flag of this command: printed as they are."""
    from .dnn.config import TrainConfig

    try:
        yield
    except InvalidParameterError as e:
        if e.param in {f.name for f in dataclasses.fields(TrainConfig)}:
            raise
        raise UsageError(f"ufm {command}: error: {e}")


def _cmd_train(args) -> int:
    from .dnn.training import train

    config = _train_config(args, "train")
    with _run_errors("train"):
        summary = train(config, args.out, progress=not args.quiet and sys.stderr.isatty(),
                        log=lambda m: print(m, file=sys.stderr))
    if summary["final"]:  # rank 0
        for split in ("train", "val", "test"):
            r = summary["final"].get(split)
            if r:
                v = {k: float("nan") if r.get(k) is None else r[k] for k in ("loss", "error", "nc1", "nc2_h", "nc3", "ece")}
                print(f"{split:>5}: epoch {r['epoch']}  loss {v['loss']:.4f}  error {v['error']:.4f}  "
                      f"NC1 {v['nc1']:.4g}  NC2_h {v['nc2_h']:.3f}  NC3 {v['nc3']:.3f}  ECE {v['ece']:.4f}")
        print(f"records: {Path(args.out) / 'metrics.jsonl'}")
    return 0


def _cmd_experiment(args) -> int:
    from .dnn.experiment import BUNDLED, load_experiment, run_experiment
    from .executors import ClusterError
    from .report.dnn_figures import plot_experiment

    if args.list or not args.experiment:
        for name in BUNDLED:
            print(f"{name:20s} {load_experiment(name).description}")
        return 0
    try:
        spec = load_experiment(args.experiment)
    except InvalidParameterError as e:  # a key of the file, not a flag: the message names it as such
        raise UsageError(f"ufm experiment: error: {e}")
    changes = {k: v for k, v in (("epochs", args.epochs), ("device", args.device), ("data_dir", args.data_dir))
               if v is not None}
    if changes:
        spec = spec.override(**changes)
    if args.seeds is not None:
        spec = type(spec)(spec.name, spec.base, {**spec.grid, "seed": list(range(args.seeds))}, spec.description)
    if args.cluster is not None and not (args.cluster == "local-dask" or args.cluster.startswith("dask://")):
        raise UsageError(f"ufm experiment: error: --cluster must be local-dask or dask://HOST:PORT. "
                         f"Got {args.cluster!r} instead.")
    out = args.out or str(Path("ufm-experiments") / spec.name)
    try:
        with _run_errors("experiment"):
            result = run_experiment(spec, out, workers=args.workers, cluster=args.cluster,
                                    progress=not args.quiet and sys.stderr.isatty(),
                                    log=lambda m: print(m, file=sys.stderr))
    except ClusterError as e:
        raise UsageError(f"ufm experiment: error: {e}")
    for path in plot_experiment(out):
        print(path)
    print(f"{len(result['runs'])} runs in {result['seconds']:.1f} s -> {Path(out) / 'report.md'}")
    return 0


def _cmd_validate(args) -> int:
    from .dnn.validate import validate, validation_markdown

    for run in args.runs:
        if not (Path(run) / "config.json").is_file():
            raise UsageError(f"ufm validate: error: {run} is not a run folder (no config.json); pass folders "
                             "written by ufm train or ufm experiment (OUT/runs/*).")
    try:
        result = validate(args.runs)
    except ValueError as e:
        raise UsageError(f"ufm validate: error: {e}")
    if args.json:
        print(json.dumps(to_jsonable(result), indent=1))
    else:
        print(validation_markdown(result), end="")
    return 0


_COMMANDS = {"train": _cmd_train, "experiment": _cmd_experiment, "validate": _cmd_validate,
"closed-form": _cmd_closed_form, "solve": _cmd_solve, "verify": _cmd_verify, "derive": _cmd_derive,
             "demo": _cmd_demo, "report": _cmd_report, "conditioning": _cmd_conditioning,
             "convergence": _cmd_convergence, "sweep": _cmd_sweep,
             "plot": _cmd_plot}


def _one_line(err: InvalidParameterError) -> str:
    if err.param in _FLAGS and err.expected:
        return f"ufm: error: {_FLAGS[err.param]} must be {err.expected}. Got {err.value!r} instead."
    return f"ufm: error: {err}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = _COMMANDS[args.command](args)
        for w in caught:  # printed only on success: an error stays one line; other libraries' notices are dropped
            if issubclass(w.category, UFMWarning):
                print(f"ufm: warning: {w.message}", file=sys.stderr)
        return code
    except UsageError as e:
        print(str(e), file=sys.stderr)
        return 2
    except InvalidParameterError as e:
        print(_one_line(e), file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `ufm derive | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("ufm: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # e.g. an output folder that cannot be created
        print(f"ufm: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # solver divergence: one line, no traceback
        from .numerics.solver import SolverDivergedError

        from .dnn.training import TrainingDivergedError

        if isinstance(e, (SolverDivergedError, TrainingDivergedError)):
            print(f"ufm: error: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
