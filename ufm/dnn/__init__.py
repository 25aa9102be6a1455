"""Deep-network validation experiments: datasets, models, training, UFM feedback.

    load_dataset     a registered dataset as normalized tensors, with a seeded val split
    build_model      a registered network exposing its penultimate features and classifier
    TrainConfig      the validated configuration of one training run
    train            train (or resume) one run into its folder: config.json, metrics.jsonl
    evaluate         the NC and logit statistics of one split (``ufm.dnn.evaluate``)
    read_records     the records of a run folder (``ufm.records.runs``, readable without torch)
    load_experiment  a bundled experiment by name, or a TOML file
    run_experiment   run (or resume) every run of an experiment, then summarize and validate
    validate         the UFM's predictions against the records of trained runs (``ufm.analysis.networks``)

Modules: ``data`` (loaders), ``models``, ``config``, ``distributed`` (process group, epoch
order, device of a run), ``evaluate`` (the records of one epoch), ``training`` (the epoch
loop), ``experiment`` (grids of runs). The Markdown of ``validate`` is
``ufm.report.validation.validation_markdown`` (reports are a higher layer).
"""
from ufm.analysis.networks import validate
from ufm.records.runs import RunMismatchError, read_records
from ufm.dnn.config import TrainConfig
from ufm.dnn.data import DATASETS, Dataset, DatasetNotFoundError, load_dataset
from ufm.dnn.evaluate import TrainingDivergedError, evaluate
from ufm.dnn.experiment import BUNDLED, ExperimentSpec, load_experiment, run_experiment
from ufm.dnn.models import MODELS, build_model
from ufm.dnn.training import RECORD_KEYS, TEST_RECORD_KEYS, train

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
    "RECORD_KEYS",
    "TEST_RECORD_KEYS",
    "TrainingDivergedError",
    "RunMismatchError",
    "ExperimentSpec",
    "load_experiment",
    "run_experiment",
    "BUNDLED",
    "validate",
]
