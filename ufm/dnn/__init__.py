"""Deep-network validation experiments: datasets, models, training, UFM feedback.

    load_dataset     a registered dataset as normalized tensors, with a seeded val split
    build_model      a registered network exposing its penultimate features and classifier
    TrainConfig      the validated configuration of one training run
    train            train (or resume) one run into its folder: config.json, metrics.jsonl
    load_experiment  a bundled experiment by name, or a TOML file
    run_experiment   run (or resume) every run of an experiment, then summarize and validate
    validate         the UFM's predictions against the records of trained runs
"""
from .config import TrainConfig
from .data import DATASETS, Dataset, DatasetNotFoundError, load_dataset
from .experiment import BUNDLED, ExperimentSpec, load_experiment, run_experiment
from .models import MODELS, build_model
from .training import RunMismatchError, TrainingDivergedError, evaluate, read_records, train
from .validate import validate, validation_markdown

__all__ = [
    "load_dataset",
    "Dataset",
    "DATASETS",
    "DatasetNotFoundError",
    "build_model",
    "MODELS",
    "TrainConfig",
    "train",
    "evaluate",
    "read_records",
    "TrainingDivergedError",
    "RunMismatchError",
    "ExperimentSpec",
    "load_experiment",
    "run_experiment",
    "BUNDLED",
    "validate",
    "validation_markdown",
]
