"""The resumable store of a sweep: one SQLite file, ``OUT/sweep.sqlite``.

Why SQLite: every finished group of points is committed in one transaction, and SQLite's
write-ahead log (``journal_mode=WAL``, ``synchronous=FULL``) makes a commit durable and
atomic, so a kill -9 at any moment loses at most the groups not yet committed and can never
leave a half-written record: a reader sees a transaction entirely or not at all. A
``PRIMARY KEY`` on the point key makes a re-run replace, never duplicate. One process (the
sweep's driver) writes; workers only compute. sqlite3 is in the standard library.
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ufm._core.validation import DataFileError

__all__ = ["SweepStore", "PAGE_SIZE"]

#: the page size of a new store (SQLite's largest): a sweep writes many rows at once
PAGE_SIZE = 65536


def _not_a_store(path: Path, err: Exception) -> DataFileError:
    return DataFileError(f"{path} is not a sweep store ({err}): move it away, or use another folder")


def _open_readonly(path: Path) -> sqlite3.Connection:
    """A connection to the existing store ``path`` that only reads.

    In a writable folder a plain connection (which, being the last to close, removes the write-ahead
    log's ``-wal`` and ``-shm`` files again, so reading leaves no file behind); in a read-only one
    ``mode=ro``, else, when there is no ``-wal`` file (no writer, nothing uncommitted to miss),
    ``immutable=1``.

    Raises:
        FileNotFoundError: no file at ``path``.
        DataFileError: not a sweep store, or a store that cannot be read here (named, with why).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    uri = path.resolve().as_uri()
    modes = [None] if writable else ["mode=ro"] + ([] if Path(f"{path}-wal").exists() else ["immutable=1"])
    error = None
    for mode in modes:
        conn = sqlite3.connect(str(path)) if mode is None else sqlite3.connect(f"{uri}?{mode}", uri=True)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as e:  # e.g. a WAL store in a read-only folder: its -shm cannot be made
            conn.close()
            error = e
        except sqlite3.DatabaseError as e:
            conn.close()
            raise _not_a_store(path, e) from None
    raise DataFileError(f"cannot read {path} ({error}); a store whose write-ahead log ({path.name}-wal) is left over "
                        "needs a writable folder to be read: copy the folder first")


class SweepStore:
    """Finished points by key: configuration, results (a dict per component), status, error."""

    def __init__(self, path, readonly: bool = False):
        """Open (or create) the store at ``path``. ``readonly``: open an existing store for reading
        only, which works in a read-only folder or file system (SQLite's ``mode=ro``, else
        ``immutable=1`` when not even the write-ahead log's index can be created); a missing file
        is a ``FileNotFoundError`` then."""
        self.path = Path(path)
        if readonly:
            self.conn = _open_readonly(self.path)
            return
        self.conn = sqlite3.connect(str(self.path))
        try:
            self.conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new file only: fewer, larger writes
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            with self.conn:
                self.conn.execute("CREATE TABLE IF NOT EXISTS points (key TEXT PRIMARY KEY, config TEXT NOT NULL, "
                                  "result TEXT NOT NULL, components TEXT NOT NULL, status TEXT NOT NULL, error TEXT)")
                self.conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        except sqlite3.Error as e:
            self.conn.close()
            if isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError):
                raise _not_a_store(self.path, e) from None
            raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def set_meta(self, name: str, value) -> None:
        with self.conn:
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, json.dumps(value)))

    def meta(self, name: str):
        row = self.conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else json.loads(row[0])

    def grids(self) -> List[dict]:
        """The specs of the grids this store holds, oldest first (``ufm.sweep.grids``); a store written
        before grids were recorded holds its one spec under ``spec``."""
        grids = self.meta("grids")
        if grids is None:
            spec = self.meta("spec")
            grids = [spec] if spec else []
        return grids

    def components(self) -> Dict[str, set]:
        """key -> the components already computed for it."""
        return {k: set(json.loads(c)) for k, c in self.conn.execute("SELECT key, components FROM points")}

    def keys_by_components(self) -> Dict[Tuple[str, ...], List[str]]:
        """The stored keys, grouped by the components computed for them (sorted names)."""
        out = {}
        for (comps,) in self.conn.execute("SELECT DISTINCT components FROM points").fetchall():
            keys = [k for (k,) in self.conn.execute("SELECT key FROM points WHERE components = ?", (comps,))]
            out.setdefault(tuple(sorted(json.loads(comps))), []).extend(keys)
        return out

    def count_by_components(self) -> Dict[Tuple[str, ...], int]:
        """How many points have each set of components (sorted names)."""
        out = {}
        for comps, n in self.conn.execute("SELECT components, COUNT(*) FROM points GROUP BY components"):
            key = tuple(sorted(json.loads(comps)))
            out[key] = out.get(key, 0) + n
        return out

    def put_rows(self, rows: Sequence[tuple]) -> int:
        """Write new points in one transaction (all or nothing), each a row as stored: ``(key, config
        JSON, result JSON, components JSON, status, error)``; for points not stored yet (a stored
        point's results are merged by :meth:`put_many`)."""
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    def put_many(self, records: Iterable[dict], merge: bool = True) -> int:
        """Write finished points in one transaction (all or nothing). Each record has ``key``,
        ``config``, ``result`` (merged into what is stored unless ``merge`` is False: the caller
        knows none of the keys is stored yet), ``components``, ``status``, ``error``."""
        records = list(records)
        old = {}
        keys = [r["key"] for r in records] if merge else []
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT key, result, components FROM points WHERE key IN ({','.join('?' * len(chunk))})"
            old.update({k: (json.loads(r), set(json.loads(c))) for k, r, c in self.conn.execute(q, chunk)})
        rows, comps_json = [], {}
        for r in records:
            result, comps = old.get(r["key"], ({}, set()))
            result = {**result, **r["result"]}
            comps = tuple(sorted(comps | set(r["components"])))
            if comps not in comps_json:
                comps_json[comps] = json.dumps(list(comps))
            rows.append((r["key"], r.get("config_json") or json.dumps(r["config"]), json.dumps(result),
                         comps_json[comps], r["status"], r.get("error")))
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?)", rows)
        return len(rows)

    def rows(self) -> List[dict]:
        """Every stored point: its configuration, results, status and error, ordered by key."""
        out = []
        for key, config, result, comps, status, error in self.conn.execute(
                "SELECT key, config, result, components, status, error FROM points ORDER BY key"):
            out.append({"key": key, "config": json.loads(config), "result": json.loads(result),
                        "components": json.loads(comps), "status": status, "error": error})
        return out

    def count(self, status: Optional[str] = None) -> int:
        if status is None:
            return self.conn.execute("SELECT COUNT(*) FROM points").fetchone()[0]
        return self.conn.execute("SELECT COUNT(*) FROM points WHERE status = ?", (status,)).fetchone()[0]
