"""The folder of one training run: its files, how they are written, and how they are read (without torch).

A run folder holds::

    config.json      the full configuration, the dataset and model descriptions, library versions
    metrics.jsonl    raw records: one JSON object per (epoch, split), appended as epochs finish
    checkpoint.pt    the last checkpoint: model, optimizer, epoch, and the length of metrics.jsonl
                     it covers (``records_bytes``); written by ``ufm.dnn.training`` with torch
    progress.json    ``{"epoch": E, "records_bytes": S}``: the epoch of the last checkpoint and the
                     length of metrics.jsonl it covers (E is null before the first checkpoint)
    .lock            held (fcntl) by the process writing the run (:class:`FolderLock`)

Figures, reports and analyses read ``config.json``, ``metrics.jsonl`` and ``progress.json``
only, through :func:`read_config` and :func:`read_records`, so reading a run needs no torch.

Crash safety. The writer (one process) keeps this order:

1. a new run writes ``progress.json`` with ``records_bytes = 0`` (:func:`begin_records`), then
   empties ``metrics.jsonl``;
2. at each checkpoint it appends the records of the epochs since the last one and flushes and
   fsyncs them (:func:`append_records`, which returns the new length S), replaces
   ``checkpoint.pt`` atomically (holding S), then replaces ``progress.json`` atomically with S
   (:func:`write_progress`);
3. a resumed run truncates ``metrics.jsonl`` to the checkpoint's own ``records_bytes``, then
   rewrites ``progress.json`` with it (:func:`resume_records`).

A reader reads ``progress.json`` first and then keeps the first S bytes of ``metrics.jsonl``.
Those bytes were fsync'd before ``progress.json`` said S (step 2), and the file never becomes
shorter than what ``progress.json`` says: it is emptied only after ``progress.json`` says 0 (step
1), and truncated only to the checkpoint's length, which is at least S since ``progress.json``
is written after the checkpoint (step 3, and a crash between the two in step 2 leaves
``progress.json`` behind the checkpoint, never ahead). Both files are replaced atomically, so
neither is ever read half-written. Hence a reader never sees a torn line nor a record that no
checkpoint covers, whatever a running writer appends in between, and a kill -9 at any moment
loses at most the epochs since the last checkpoint.

Folders written before ``progress.json`` existed are read through their checkpoint's
``records_bytes`` (torch is imported for that case only); a folder with neither (written by
hand) is read whole.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from ufm._core.io import missing_folders, read_json, remove_empty, to_jsonable, writable_folder, write_json
from ufm._core.validation import InvalidParameterError

__all__ = ["CONFIG", "RECORDS", "CHECKPOINT", "PROGRESS", "LOCK", "EXPERIMENT", "RUNS", "experiment_runs",
           "RunMismatchError", "FolderLock", "read_config",
           "read_records", "read_progress", "covered_bytes", "append_records", "write_progress", "begin_records",
           "resume_records"]

CONFIG = "config.json"
RECORDS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
PROGRESS = "progress.json"
LOCK = ".lock"
#: an experiment folder holds its specification and its run folders under ``runs/``
EXPERIMENT = "experiment.json"
RUNS = "runs"


class RunMismatchError(InvalidParameterError):
    """A run folder holds a run with a different configuration, or another process is writing it."""


def experiment_runs(folder) -> list:
    """The run folders of the experiment folder ``folder`` that hold a run (a ``config.json``), in
    run order: those its ``experiment.json`` lists (not every folder left in ``runs/``), or, for a
    specification that lists none, every folder of ``runs/`` in name order."""
    folder = Path(folder)
    listed = read_json(folder / EXPERIMENT).get("runs")
    runs = [folder / RUNS / n for n in listed] if listed is not None else \
        (sorted((folder / RUNS).iterdir()) if (folder / RUNS).is_dir() else [])
    return [r for r in runs if (r / CONFIG).is_file()]


def read_config(run) -> dict:
    """The parsed ``config.json`` of a run folder."""
    path = Path(run) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run} is not a training run folder")
    return json.loads(path.read_text())


def read_progress(run) -> Optional[dict]:
    """``progress.json`` of a run folder (``epoch``, ``records_bytes``), or None when it has none."""
    path = Path(run) / PROGRESS
    return read_json(path) if path.is_file() else None


def covered_bytes(run) -> Optional[int]:
    """The length of ``metrics.jsonl`` covered by the run's last checkpoint: from ``progress.json``,
    else (a folder written before it existed) from ``checkpoint.pt``; None when there is neither."""
    run = Path(run)
    progress = read_progress(run)
    if progress is not None:
        return int(progress["records_bytes"])
    ckpt = run / CHECKPOINT
    if not ckpt.is_file():
        return None
    import torch  # only for folders without progress.json

    return int(torch.load(ckpt, map_location="cpu", weights_only=False, mmap=True)["records_bytes"])


def read_records(run) -> list:
    """The records of ``metrics.jsonl`` covered by the run's last checkpoint (all of them once the
    run has finished), as dicts: never a half-written line (see the module docstring)."""
    run = Path(run)
    path = run / RECORDS
    if not path.is_file():
        return []
    covered = covered_bytes(run)  # first: the records it covers are in the file read next
    data = path.read_bytes()
    if covered is not None:
        data = data[:covered]
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def append_records(path, records: list) -> int:
    """Append ``records`` to ``metrics.jsonl`` at ``path`` (one JSON object a line), flushed and
    fsync'd; returns the file's new length in bytes."""
    with open(path, "ab") as fh:
        for r in records:
            fh.write((json.dumps(to_jsonable(r), sort_keys=False) + "\n").encode())
        fh.flush()
        os.fsync(fh.fileno())
        return fh.tell()


def write_progress(run, epoch: Optional[int], records_bytes: int) -> None:
    """Replace ``progress.json`` atomically: the last checkpoint's epoch and the records it covers."""
    write_json(Path(run) / PROGRESS, {"epoch": epoch, "records_bytes": int(records_bytes)})


def begin_records(run) -> None:
    """Start the records of a new run: ``progress.json`` covering nothing, then an empty ``metrics.jsonl``."""
    run = Path(run)
    write_progress(run, None, 0)
    (run / RECORDS).write_bytes(b"")


def resume_records(run, epoch: int, records_bytes: int) -> None:
    """Resume after the checkpoint of ``epoch``, which covers ``records_bytes``: drop what was
    appended after it (a later epoch's records, a half-written line), then rewrite ``progress.json``."""
    run = Path(run)
    with open(run / RECORDS, "ab") as fh:
        fh.truncate(records_bytes)
    write_progress(run, epoch, records_bytes)


class FolderLock:
    """An exclusive lock on a run folder (``.lock``, fcntl), so two processes never write one run.

    ``active=False`` (a process that does not write, e.g. rank > 0) takes no lock. Where fcntl
    does not exist (not POSIX) there is no lock. When the run fails, the lock file this lock made is
    removed (a lock means nothing once released), and so are the folders it created if they are
    empty: a run refused before it starts leaves nothing behind.

    Raises:
        RunMismatchError: (``param="out"``) another process holds the lock.
    """

    def __init__(self, out, active: bool = True):
        self.out, self.active, self.fh = Path(out), active, None
        self.created: list = []  # the folders this lock made, deepest first
        self.had_lock = False

    def __enter__(self):
        if not self.active:
            return self
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return self
        self.created = missing_folders(self.out)
        self.had_lock = (self.out / LOCK).exists()
        writable_folder(self.out)
        for _ in range(100):  # a lock file removed by the process that held it is opened again
            self.fh = open(self.out / LOCK, "w")
            try:
                fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self.fh.close()
                self.fh = None
                break
            if self._is_the_lock_file():
                return self
            self.fh.close()  # locked a file that was unlinked meanwhile: that lock guards nothing
            self.fh = None
        raise RunMismatchError(f"The run folder {self.out} is in use by another process; wait for it, or pass "
                               "another folder as out.", param="out", value=str(self.out),
                               expected="a run folder no other process is writing")

    def _is_the_lock_file(self) -> bool:
        """True if the file this process locked is still the folder's ``.lock`` (not one unlinked since)."""
        try:
            return os.fstat(self.fh.fileno()).st_ino == os.stat(self.out / LOCK).st_ino
        except FileNotFoundError:
            return False

    def __exit__(self, *exc):
        if self.fh is not None:
            if exc[0] is not None and not self.had_lock:  # the lock file means nothing once released
                try:  # so a run that fails leaves no file it did not need (unlinked while held: see __enter__)
                    (self.out / LOCK).unlink()
                except OSError:
                    pass
                remove_empty(self.created)
            self.fh.close()
            self.fh = None
