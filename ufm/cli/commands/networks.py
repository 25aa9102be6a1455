"""Commands on networks: ``train`` (one run), ``experiment`` (a grid of runs, CE vs LS) and
``validate`` (the UFM's predictions confronted with trained runs).

The flags of ``train`` are the fields of ``ufm.dnn.config.TrainConfig``, generated from the
dataclass (help from each field's ``metadata["help"]``, type from ``CONSTRAINTS``); the option
dicts are given key by key (``--dataset-option KEY=VALUE``), and ``--config FILE`` gives a TOML
file the flags override (``TrainConfig.from_toml``).
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from ufm.cli.parser import (CLUSTER, COUNT, WORKERS, Commands, Interrupted, Parser, UsageError, add_fields, add_flag,
                            config_file_errors, option_pair, out_folder, resolved_line)

__all__ = ["add_parser", "OPTION_FIELDS"]

#: TrainConfig fields given key by key: (field, flag, help)
OPTION_FIELDS = (
    ("dataset_options", "--dataset-option", "dataset option, e.g. num_classes=5 for gaussian (repeatable)"),
    ("model_options", "--model-option", "model option, e.g. width=512, depth=4, batchnorm=true (repeatable)"),
)


def _log(message: str) -> None:
    print(message, file=sys.stderr)


# -- train -------------------------------------------------------------------------------------

def _train_flags(p: Parser) -> None:
    from ufm.dnn.config import CONSTRAINTS, TrainConfig

    p.add_argument("--out", type=out_folder, required=True, help="the run folder (resumed if it holds this run)")
    p.add_argument("--config", default=None, help="a TOML file of TrainConfig keys; flags override it")
    g = p.add_argument_group("run (README, DNN experiments)")
    add_fields(p, TrainConfig, CONSTRAINTS, group=g, skip=[name for name, _, _ in OPTION_FIELDS])
    for name, flag, help_ in OPTION_FIELDS:
        g.add_argument(flag, dest=name, action="append", type=option_pair, default=[], metavar="KEY=VALUE",
                       help=help_)
    g.add_argument("--download", action="store_true",
                   help="download a missing dataset (its official archive, checked against the published checksum)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _overrides(args) -> dict:
    """The TrainConfig keys given on the command line (the flags left at None are not)."""
    from ufm.dnn.config import TrainConfig

    options = {name for name, _, _ in OPTION_FIELDS}
    out = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
           if f.name not in options and getattr(args, f.name) is not None}
    for name in options:
        if getattr(args, name):
            out[name] = dict(getattr(args, name))
    if args.download:
        out["dataset_options"] = {**out.get("dataset_options", {}), "download": True}
    return out


def _config(args):
    """The run of ``--config`` and the flags (which override the file's keys; the resolved run is
    printed on stderr when both are given). An error about a key the file gave names the file."""
    from ufm._core.io import read_toml
    from ufm.dnn.config import TrainConfig

    overrides = _overrides(args)
    if not args.config:
        return TrainConfig.from_toml(None, overrides)
    data = read_toml(args.config, "run file", "config")
    keys = [f.name for f in dataclasses.fields(TrainConfig)]
    with config_file_errors(args.config, set(data) - set(overrides), keys):
        config = TrainConfig.from_toml(args.config, overrides)
    if overrides:
        option_flags = {name: flag for name, flag, _ in OPTION_FIELDS}
        flags = [option_flags.get(k, "--" + k.replace("_", "-")) for k in overrides]
        print(f"ufm train: {resolved_line(args.config, flags, config.to_dict())}", file=sys.stderr)
    return config


def train_command(args) -> int:
    from ufm._core.validation import InvalidParameterError
    from ufm.dnn.training import train
    from ufm.report.text import train_lines

    config = _config(args)
    try:
        summary = train(config, args.out, progress=not args.quiet and sys.stderr.isatty(), log=_log)
    except InvalidParameterError as e:  # a model or dataset option: its own message, not a flag's of the same name
        if e.param in config.model_options or e.param in config.dataset_options:
            raise UsageError(str(e)) from None
        raise
    except KeyboardInterrupt:
        raise Interrupted(f"the epochs up to the last checkpoint are kept in {args.out}; rerun the same "
                          "command to resume") from None
    for line in train_lines(summary, args.out):
        print(line)
    return 0


# -- experiment --------------------------------------------------------------------------------

def _experiment_flags(p: Parser) -> None:
    from ufm.dnn.config import CONSTRAINTS

    p.add_argument("experiment", nargs="?", help="a bundled name (see --list) or a FILE.toml")
    p.add_argument("--out", type=out_folder, default=None, help="output folder (default ufm-experiments/NAME)")
    p.add_argument("--list", action="store_true", help="list the bundled experiments and exit")
    add_flag(p, "--epochs", param="epochs", constraint=CONSTRAINTS["epochs"], default=None,
             help="override the epochs of every run; the learning-rate milestones are scaled with them")
    add_flag(p, "--seeds", param="seeds", constraint=COUNT, default=None, help="override: seeds 0..N-1")
    add_flag(p, "--workers", param="workers", constraint=WORKERS, default=None,
             help="worker processes (default one per CPU, at most one per run; 0: one run at a time here)")
    add_flag(p, "--cluster", param="cluster", constraint=CLUSTER, default=None,
             help="local-dask or dask://HOST:PORT (needs ufm[cluster])")
    add_flag(p, "--device", param="device", constraint=CONSTRAINTS["device"], default=None,
             help="override the device of every run (auto, cpu, cuda, cuda:N)")
    add_flag(p, "--data-dir", param="data_dir", constraint=CONSTRAINTS["data_dir"], default=None,
             help="folder holding datasets (default $UFM_DATA, then standard places)")
    p.add_argument("--set", dest="set_", action="append", type=option_pair, default=[], metavar="KEY=VALUE",
                   help="override a TrainConfig key of every run (repeatable); model_options.KEY=VALUE and "
                        "dataset_options.KEY=VALUE change one option, e.g. --set model_options.width=16")
    p.add_argument("--plan", action="store_true",
                   help="print the runs, where each dataset was found (or how to get it) and an estimate of the "
                        "wall time from timed training steps on the device; run nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _set_changes(spec, pairs) -> dict:
    """The base changes of ``--set`` pairs: ``KEY=VALUE``, or ``model_options.KEY=VALUE`` (and
    ``dataset_options.``) merged into the experiment's option dict."""
    changes = {}
    for key, value in pairs:
        table, _, option = key.partition(".")
        if option and table in ("model_options", "dataset_options"):
            changes[table] = {**changes.get(table, spec.base.get(table, {})), option: value}
        elif option:
            raise UsageError(f"--set {key}=...: only model_options.KEY and dataset_options.KEY take a dot; "
                             "other keys are TrainConfig fields (--set epochs=2).")
        else:
            changes[key] = value
    return changes


def _experiment(args, notes: list):
    """The experiment named or given as a file (whose errors are the file's, not a flag's), with
    the overrides of the flags; what the overrides changed besides is appended to ``notes``."""
    from ufm._core.validation import InvalidParameterError
    from ufm.dnn.experiment import BUNDLED, load_experiment

    try:
        spec = load_experiment(args.experiment)
    except InvalidParameterError as e:
        if str(args.experiment).endswith(".toml") or e.param != "experiment":
            raise UsageError(str(e)) from None
        raise UsageError(f"unknown experiment {args.experiment!r}: the bundled ones are {', '.join(BUNDLED)} "
                         "(--list describes them); or give the path of an experiment FILE.toml") from None
    if args.epochs is not None:
        scaled = spec.with_epochs(args.epochs)
        notes += _milestone_lines(spec, scaled)
        spec = scaled
    changes = {k: v for k, v in (("device", args.device), ("data_dir", args.data_dir)) if v is not None}
    changes.update(_set_changes(spec, args.set_))
    if changes:
        try:
            spec = spec.override(**changes)
        except InvalidParameterError as e:  # a key or value of --set: the experiment's message
            raise UsageError(f"--set: {e}") from None
    if args.seeds is not None:
        spec = spec.with_seeds(args.seeds)
    return spec


def _milestone_lines(spec, scaled) -> list:
    """One line per milestone list that ``--epochs`` changed (or left as it was, when the grid varies epochs)."""
    from ufm.dnn.config import TrainConfig

    old, new = spec.base.get("epochs", TrainConfig().epochs), scaled.base["epochs"]
    lines = []
    for where, table, after in (("", spec.base, scaled.base), ("grid ", spec.grid, scaled.grid)):
        if table.get("milestones") and "epochs" in spec.grid:
            lines.append(f"ufm experiment: --epochs {new}: the {where}learning-rate milestones "
                         f"{table['milestones']} are not scaled (the grid varies epochs)")
        elif table.get("milestones") and list(table["milestones"]) != list(after["milestones"]):
            lines.append(f"ufm experiment: --epochs {new}: the {where}learning-rate milestones are scaled from "
                         f"{list(table['milestones'])} (of {old} epochs) to {list(after['milestones'])}")
    return lines


def experiment_command(args) -> int:
    from ufm._core.executors import ClusterError
    from ufm.dnn.experiment import BUNDLED, load_experiment, run_experiment
    from ufm.report.experiment import render_experiment
    from ufm.report.text import experiment_done_line, experiment_list_lines

    if args.list or not args.experiment:
        print("\n".join(experiment_list_lines((name, load_experiment(name).description) for name in BUNDLED)))
        return 0
    notes: list = []  # printed once the experiment has started, so that a failure to start is one line
    spec = _experiment(args, notes)
    if args.plan:
        from ufm.dnn.experiment import plan_experiment
        from ufm.report.text import plan_lines

        for line in notes:
            _log(line)
        print("\n".join(plan_lines(plan_experiment(spec))))
        return 0
    out = args.out or str(Path("ufm-experiments") / spec.name)

    def log(message: str) -> None:
        while notes:
            _log(notes.pop(0))
        _log(message)

    try:
        result = run_experiment(spec, out, workers=args.workers, cluster=args.cluster,
                                progress=not args.quiet and sys.stderr.isatty(), log=log)
    except KeyboardInterrupt:
        raise Interrupted(f"finished runs (and each run's last checkpoint) are kept in {out}; rerun the same "
                          "command to resume") from None
    except ClusterError as e:
        raise UsageError(str(e)) from None
    for path in render_experiment(out):
        print(path)
    print(experiment_done_line(result, out))
    return 0


# -- validate ----------------------------------------------------------------------------------

def _validate_flags(p: Parser) -> None:
    p.add_argument("runs", nargs="+", help="run folders (of ufm train or ufm experiment)")
    p.add_argument("--json", action="store_true", help="print JSON (with the per-epoch curves)")


def validate_command(args) -> int:
    from ufm.analysis.networks import failed_checks, validate
    from ufm.report.validation import validation_markdown
    from ufm.report.text import json_text

    for run in args.runs:
        if not (Path(run) / "config.json").is_file():
            raise UsageError(f"{run} is not a run folder (no config.json); pass folders written by ufm train or "
                             "ufm experiment (OUT/runs/*).")
    try:
        result = validate(args.runs)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(json_text(result) if args.json else validation_markdown(result), end="\n" if args.json else "")
    failed = failed_checks(result)
    if failed:  # a finding: exit code 1
        print(f"ufm validate: {len(failed)} check(s) do not hold: {'; '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def add_parser(commands: Commands) -> None:
    commands.add("train", "train a network under CE or LS, recording NC metrics and calibration (resumable; "
                          "torchrun for several GPUs)", _train_flags, train_command)
    commands.add("experiment", "run a bundled (or TOML) experiment: CE vs LS runs, figures, UFM checks",
                 _experiment_flags, experiment_command)
    commands.add("validate", "confront the UFM's predictions with trained runs", _validate_flags, validate_command)
