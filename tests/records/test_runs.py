"""The run-folder format, on folders written by hand: what a reader sees at each step of the writer."""
import json

import pytest

from ufm.records.runs import (FolderLock, RunMismatchError, append_records, begin_records, read_records,
                              resume_records, write_progress)


def test_a_reader_sees_only_what_a_checkpoint_covers(tmp_path):
    begin_records(tmp_path)
    assert read_records(tmp_path) == []
    size = append_records(tmp_path / "metrics.jsonl", [{"epoch": 0, "split": "train"}])
    assert read_records(tmp_path) == []  # appended, but no checkpoint covers it yet
    write_progress(tmp_path, 0, size)
    assert read_records(tmp_path) == [{"epoch": 0, "split": "train"}]
    with open(tmp_path / "metrics.jsonl", "ab") as fh:  # a writer in the middle of a line
        fh.write(b'{"epoch": 1, "spl')
    assert read_records(tmp_path) == [{"epoch": 0, "split": "train"}]


def test_resume_drops_what_no_checkpoint_covers(tmp_path):
    begin_records(tmp_path)
    first = append_records(tmp_path / "metrics.jsonl", [{"epoch": 0}])
    append_records(tmp_path / "metrics.jsonl", [{"epoch": 1}])
    resume_records(tmp_path, 0, first)
    assert (tmp_path / "metrics.jsonl").stat().st_size == first
    assert json.loads((tmp_path / "progress.json").read_text()) == {"epoch": 0, "records_bytes": first}
    assert read_records(tmp_path) == [{"epoch": 0}]


def test_a_folder_without_progress_or_checkpoint_is_read_whole(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 0}\n{"epoch": 1}\n')
    assert [r["epoch"] for r in read_records(tmp_path)] == [0, 1]
    assert read_records(tmp_path / "absent") == []


def test_the_lock_refuses_a_second_writer(tmp_path):
    with FolderLock(tmp_path):
        with pytest.raises(RunMismatchError, match="is in use by another process") as e:
            with FolderLock(tmp_path):
                pass
    assert e.value.param == "out"
    with FolderLock(tmp_path):  # released
        pass
