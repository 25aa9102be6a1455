"""Atomic writes and self-describing records."""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["read_toml", "NotWritableError", "writable_folder", "missing_folders", "remove_empty", "atomic_write", "atomic_write_text", "write_json", "read_json", "environment", "to_jsonable"]


def read_toml(path, what: str, param: str) -> dict:
    """The TOML file ``path`` as a dict; an unreadable or invalid file raises
    ``InvalidParameterError`` naming ``what`` (e.g. "sweep file") and the parameter ``param``."""
    from ufm._core.validation import InvalidParameterError

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as e:
        raise InvalidParameterError(f"The {what} {str(path)!r} cannot be read: {e.strerror}.", param=param,
                                    value=str(path), expected="a readable TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise InvalidParameterError(f"The {what} {str(path)!r} is not valid TOML: {e}.", param=param,
                                    value=str(path), expected="a valid TOML file") from None


class NotWritableError(OSError):
    """A folder that results cannot be written to: one line, ``cannot write to DIR: REASON``."""

    def __init__(self, folder, reason: str):
        super().__init__(f"cannot write to {folder}: {reason}")
        self.folder = str(folder)

    def __str__(self) -> str:
        return self.args[0]


def writable_folder(path) -> Path:
    """``path`` as a folder that can be written to, created if missing; checked by creating (and
    removing) a temporary file in it, before any work starts.

    Raises:
        NotWritableError: it cannot be created or written to (a read-only file system, missing
            permissions), naming the folder and the reason.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        if isinstance(e, (FileExistsError, NotADirectoryError)):
            raise NotWritableError(path, "it is not a folder") from None
        raise NotWritableError(path, (e.strerror or str(e)).lower()) from None
    return path


def missing_folders(path) -> list:
    """The folders of ``path`` that do not exist yet, deepest first (those ``mkdir(parents=True)``
    would create), so that a command that fails can remove what it made."""
    out, path = [], Path(path).absolute()
    while not path.exists():
        out.append(path)
        path = path.parent
    return out


def remove_empty(folders) -> None:
    """Remove ``folders`` (deepest first), stopping at the first that is not empty."""
    for folder in folders:
        try:
            Path(folder).rmdir()
        except OSError:
            break


def atomic_write(path, write: Callable[[IO], None], binary: bool = False) -> None:
    """Write ``path`` atomically: ``write(fh)`` fills a temporary file in the same folder,
    which is flushed, fsync'd and renamed over the target. A reader sees the old file or
    the new one, never a partial write. The file gets the permissions of any new file,
    ``0o666`` less the umask (0644 under umask 022), not the temporary file's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (else set and restored)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda fh: fh.write(text))


def to_jsonable(obj: Any) -> Any:
    """Tensors, numpy values and non-finite floats into plain JSON (NaN -> null)."""
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        obj = obj.tolist()
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=1, sort_keys=False) + "\n")


def read_json(path) -> Any:
    with open(path) as fh:
        return json.load(fh)


def environment() -> dict:
    """Library versions and machine, recorded next to every result."""
    from importlib import metadata

    import numpy
    import torch

    from ufm._version import __version__

    env = {"ufm": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
           "numpy": numpy.__version__, "platform": platform.platform(), "machine": platform.machine(),
           "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "torch_threads": torch.get_num_threads()}
    try:
        env["sympy"] = metadata.version("sympy")  # its version, without importing it
    except metadata.PackageNotFoundError:  # pragma: no cover
        pass
    return env
