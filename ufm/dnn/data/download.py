"""Download a dataset's official files into the data folder, verified and placed atomically.

:data:`SOURCES` names, for each dataset, the files its publishers serve and their published MD5
checksums (as their publishers give them): the four gzipped IDX files of MNIST (ossci-datasets
mirror) and Fashion-MNIST (Zalando's bucket), kept compressed; the CIFAR-10, CIFAR-100 (Toronto)
and STL-10 (Stanford) ``.tar.gz`` archives; the Tiny ImageNet ``.zip`` (Stanford CS231n).
:func:`download_dataset` fetches them into ``ROOT/.ufm-partial/`` (``ROOT`` is
:func:`ufm.dnn.data.registry.data_root`), then places ``ROOT/FOLDER``:

* **resume**: a transfer writes ``FILE.part``; an interrupted one is kept and continued with an
  HTTP ``Range`` request next time (from 0 if the server ignores or refuses the range);
* **checksums**: each complete file must have its published MD5 (``mirror`` changes where the
  files come from, never the checksums); a file that does not is deleted;
* **safe extraction**: every member of an archive is checked before any is written (no absolute
  path, no ``..``, no link, no device or fifo), into a fresh temporary folder;
* **atomic placement**: the dataset's folder is renamed into place in one step, so
  ``ROOT/FOLDER`` is complete or absent; a folder already there is returned without network access.

Every failure is a :class:`DownloadError` (an ``OSError``), one line naming the file or URL, what
is wrong and what to do. Only the standard library (and tqdm, for the progress bar) is used.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import Callable, NamedTuple, Optional

from ufm._core.io import missing_folders, remove_empty, writable_folder
from ufm._core.validation import InstanceOf, InvalidParameterError, Options, OrNone, PathLike, check_all, check_param
from ufm._version import __version__

__all__ = ["Source", "SOURCES", "DownloadError", "download_dataset"]


class Source(NamedTuple):
    """Where a dataset comes from: ``files``, a tuple of ``(url, md5, filename)``; ``kind``,
    ``"tar.gz"``, ``"zip"`` or ``"files"`` (plain files placed as they are); ``folder``, the
    dataset's folder under the data root; ``member``, an archive's top-level folder (None for
    plain files)."""

    files: tuple
    kind: str
    folder: str
    member: Optional[str] = None


def _idx_files(base: str, md5s: tuple) -> tuple:
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    return tuple((base + name, md5, name) for name, md5 in zip(names, md5s))


def _archive(url: str, md5: str, kind: str, folder: str) -> Source:
    return Source(((url, md5, url.rsplit("/", 1)[1]),), kind, folder, folder)


#: name -> :class:`Source`: the official files and their published MD5 checksums
SOURCES = {
    "mnist": Source(_idx_files("https://ossci-datasets.s3.amazonaws.com/mnist/", (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")), "files", "mnist"),
    "fashion-mnist": Source(_idx_files("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")), "files", "fashion-mnist"),
    "cifar10": _archive("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                        "c58f30108f718f92721af3b95e74349a", "tar.gz", "cifar-10-batches-py"),
    "cifar100": _archive("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                         "eb9058c3a382ffc7106e4002c42a8d85", "tar.gz", "cifar-100-python"),
    "stl10": _archive("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
                      "91f7769df0f17e558f3565bffb0c7dfb", "tar.gz", "stl10_binary"),
    "tinyimagenet": _archive("http://cs231n.stanford.edu/tiny-imagenet-200.zip",
                             "90528d7ca1a48142e341f4ef8d21d0de", "zip", "tiny-imagenet-200"),
}

#: the folder under the data root holding transfers and extractions in progress
PARTIAL = ".ufm-partial"
#: bytes read and written at a time
CHUNK = 1 << 20
#: seconds a connection may stay silent
TIMEOUT = 60
USER_AGENT = f"ufm/{__version__} (dataset download; Python urllib)"


class DownloadError(OSError):
    """A download failed: an HTTP error, a lost connection, a wrong checksum, an unsafe archive.

    The message is one line naming the file or URL, what is wrong and what to do.
    """


def _urls(source: Source, mirror: Optional[str]) -> list:
    """``(url, md5, filename)`` of each file, the part of each URL up to its last ``/`` replaced by ``mirror``."""
    if mirror is None:
        return list(source.files)
    return [(mirror.rstrip("/") + "/" + url.rsplit("/", 1)[1], md5, name) for url, md5, name in source.files]


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # a checksum, not a security measure
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open(url: str, start: int):
    """The response to a GET of ``url`` (from byte ``start`` with a ``Range`` header when > 0)."""
    headers = {"User-Agent": USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:
            e.close()
            return None  # the range is refused: the caller starts again from 0
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}; check the URL (or the mirror) and try again.") from None
    except (OSError, HTTPException) as e:
        raise DownloadError(f"{url}: cannot connect ({_reason(e)}); check the network (or the mirror) and try "
                            "again.") from None


def _reason(err: Exception) -> str:
    reason = getattr(err, "reason", None) or err
    return " ".join(str(reason).split()) or type(err).__name__


def _resumed_at(response, start: int) -> Optional[int]:
    """The byte at which ``response``'s body starts: ``start`` for a 206 continuing the file, 0 for a
    200 (the whole file); None for a 206 that does not continue it at ``start``."""
    status = getattr(response, "status", None) or 200
    if status != 206:
        return 0
    content_range = response.headers.get("Content-Range", "")  # bytes START-END/TOTAL
    try:
        first, total = content_range.split()[1].split("-")[0], content_range.split("/")[1]
        if int(first) == start and (total == "*" or start < int(total)):
            return start
    except (IndexError, ValueError):
        pass
    return None


def _response(url: str, part: Path, say: Callable) -> tuple:
    """``(response, offset)``: a response whose body is the file from byte ``offset`` on, continuing
    the ``.part`` left by an interrupted transfer where the server allows it (else from 0)."""
    start = part.stat().st_size if part.exists() else 0
    if not start:
        say(f"downloading {url} to {part}")
        return _open(url, 0), 0
    response = _open(url, start)
    offset = None if response is None else _resumed_at(response, start)
    if offset == start:
        say(f"resuming {url} at byte {start} into {part}")
        return response, start
    if offset == 0:  # a 200: the server sends the whole file
        say(f"the server does not resume {url}: downloading it again from byte 0 to {part}")
        return response, 0
    if response is not None:
        response.close()
    say(f"the server refused to resume {url} at byte {start}: downloading it again from byte 0 to {part}")
    return _open(url, 0), 0


def _expected_size(response, offset: int) -> Optional[int]:
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _transfer(url: str, part: Path, progress: bool, say: Callable) -> None:
    """Write ``url``'s file to ``part``, resumed where it allows; DownloadError if the transfer
    breaks off (the ``.part`` is kept for the next attempt)."""
    from tqdm import tqdm

    response, offset = _response(url, part, say)
    with response:
        size = _expected_size(response, offset)
        done = offset
        with open(part, "r+b" if offset else "wb") as f, tqdm(
                total=size, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=part.name[:-5],
                file=sys.stderr, disable=not progress, dynamic_ncols=True) as bar:
            f.seek(offset)
            f.truncate()
            try:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    f.write(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
            except (OSError, HTTPException) as e:
                raise DownloadError(f"{url}: the transfer broke off after {done} bytes ({_reason(e)}); run again "
                                    f"to resume from {part}.") from None
    if size is not None and done < size:
        raise DownloadError(f"{url}: the connection closed after {done} of {size} bytes; run again to resume "
                            f"from {part}.")


def _fetch(url: str, md5: str, part: Path, progress: bool, say: Callable) -> Path:
    """The verified file of ``url`` at ``part``: downloaded (or resumed), then checked against ``md5``."""
    if part.exists() and _md5(part) == md5:  # complete already (an extraction that failed, a crash)
        say(f"{part} is complete already")
    else:
        _transfer(url, part, progress, say)
        got = _md5(part)
        if got != md5:
            part.unlink()
            raise DownloadError(f"{url}: wrong MD5 checksum (expected {md5}, got {got}); the file was deleted: "
                                "try again, or use another mirror.")
    say(f"verified {part.name[:-5]} (MD5 {md5})")
    return part


def _unsafe(name: str, kind: str) -> Optional[str]:
    """Why the archive member ``name`` of ``kind`` ("file", "dir" or what else it is) must not be
    written (None: it may)."""
    if kind not in ("file", "dir"):
        return f"is a {kind}"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "has a '..' component"
    return None


def _tar_kind(m: tarfile.TarInfo) -> str:
    if m.issym() or m.islnk():
        return "link"
    if m.isdev():
        return "device or fifo"
    return "dir" if m.isdir() else "file" if m.isfile() else "special member"


def _zip_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return "device or fifo"
    return "dir" if info.is_dir() else "file"


def _members(archive: Path, kind: str, opened) -> list:
    """``(name, "file" or "dir", member)`` of every member, each checked before any is written."""
    if kind == "tar.gz":
        entries = [(m.name, _tar_kind(m), m) for m in opened.getmembers()]
    else:
        entries = [(i.filename, _zip_kind(i), i) for i in opened.infolist()]
    for name, what, _ in entries:
        why = _unsafe(name, what)
        if why:
            raise DownloadError(f"{archive.name[:-5]}: the archive member {name!r} {why} and was refused")
    return entries


def _extract(archive: Path, kind: str, into: Path) -> None:
    """Write the members of ``archive`` under ``into`` after checking them all (:func:`_members`)."""
    try:
        opened = tarfile.open(archive, "r:gz") if kind == "tar.gz" else zipfile.ZipFile(archive)
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as e:
        raise DownloadError(f"{archive.name[:-5]}: not a readable {kind} archive ({_reason(e)})") from None
    with opened:
        try:
            for name, what, member in _members(archive, kind, opened):
                _write(opened, kind, member, what, into.joinpath(*PurePosixPath(name.replace("\\", "/")).parts))
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as e:
            raise DownloadError(f"{archive.name[:-5]}: the archive is damaged ({_reason(e)})") from None
        except OSError as e:  # a full disk, a member colliding with another
            raise DownloadError(f"{archive.name[:-5]}: cannot extract it into {into} ({_reason(e)})") from None


def _write(opened, kind: str, member, what: str, target: Path) -> None:
    """Write one checked member (a folder or a file's bytes; never its owner, mode or times)."""
    if what == "dir":
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    source = opened.extractfile(member) if kind == "tar.gz" else opened.open(member)
    with source, open(target, "wb") as out:
        shutil.copyfileobj(source, out, CHUNK)


def _unpack(source: Source, archive: Path, tmp: Path) -> Path:
    """The dataset folder of ``archive``, extracted under ``tmp``; an archive refused (an unsafe
    member, damaged, without the folder) is deleted, so that the next attempt downloads it again."""
    try:
        _extract(archive, source.kind, tmp)
        ready = tmp / source.member
        if not ready.is_dir():
            raise DownloadError(f"{archive.name[:-5]}: the archive holds no folder {source.member!r}")
    except DownloadError as e:
        archive.unlink()
        raise DownloadError(f"{e}; nothing was placed and the archive was deleted: download it again from the "
                            "official source (without a mirror).") from None
    return ready


def _place(source: Source, parts: list, partial: Path, final: Path, say: Callable) -> None:
    """Put the verified ``parts`` in place as ``final``: extracted (archives) or moved (plain files)
    into a fresh temporary folder of ``partial``, whose dataset folder is then renamed to ``final``."""
    tmp = Path(tempfile.mkdtemp(prefix=source.folder + ".", dir=partial))
    try:
        if source.kind == "files":
            ready = tmp / source.folder  # made by mkdir, so with the usual permissions (mkdtemp's are 0o700)
            ready.mkdir()
            for part in parts:
                os.replace(part, ready / part.name[:-5])
        else:
            ready = _unpack(source, parts[0], tmp)
        try:
            os.rename(ready, final)
        except OSError as e:
            if not final.is_dir():  # not another download that finished first
                for part in parts if source.kind == "files" else ():  # the verified files stay for the next try
                    if (ready / part.name[:-5]).exists():
                        os.replace(ready / part.name[:-5], part)
                raise DownloadError(f"cannot move {ready} to {final} ({_reason(e)}); check that {final.parent} "
                                    "is writable and that nothing is in the way.") from None
        for part in parts:
            if part.exists():
                part.unlink()
        say(f"{'extracted' if source.kind != 'files' else 'placed'} {source.folder} in {final}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_dataset(name: str, data_dir=None, *, mirror: Optional[str] = None, progress: bool = False,
                     log: Optional[Callable[[str], None]] = None) -> Path:
    """Download dataset ``name`` (one of :data:`SOURCES`) into the data root and return its folder.

    The root is ``data_dir``, else ``$UFM_DATA``, else ``~/.cache/ufm``; the folder is
    ``root / SOURCES[name].folder``, returned at once (no network access) if it exists. Otherwise
    each file is downloaded to ``root/.ufm-partial/FILE.part`` (an interrupted transfer resumed),
    checked against its published MD5, extracted safely (archives) and renamed into place.

    ``mirror``: a base URL that replaces the part of each official URL up to its last ``/`` (the
    checksums stay the published ones). ``progress``: a tqdm bar per file on stderr. ``log``:
    called with one line per step. Raises :class:`DownloadError` (an ``OSError``) on any failure,
    ``InvalidParameterError`` for an unknown name.
    """
    from ufm.dnn.data.registry import data_root

    check_param("name", name, Options(tuple(SOURCES)), "download_dataset")
    check_all([("data_dir", data_dir, OrNone(PathLike())), ("mirror", mirror, OrNone(InstanceOf(str)))],
              "download_dataset")
    if mirror is not None and not mirror.startswith(("http://", "https://", "file://")):
        raise InvalidParameterError(
            f"The 'mirror' parameter of download_dataset must be a URL starting with http://, https:// or file://. "
            f"Got {mirror!r} instead.", param="mirror", value=mirror,
            expected="a URL starting with http://, https:// or file://")
    say = log or (lambda message: None)
    source = SOURCES[name]
    root = data_root(data_dir)
    final = root / source.folder
    if final.is_dir():
        say(f"{name} is already in {final}")
        return final
    made = missing_folders(root / PARTIAL)  # removed again if left empty
    partial = writable_folder(root / PARTIAL)
    try:
        parts = [_fetch(url, md5, partial / (filename + ".part"), progress, say)
                 for url, md5, filename in _urls(source, mirror)]
        _place(source, parts, partial, final, say)
    finally:
        remove_empty([partial.absolute()] + made[1:])  # only when empty: a .part kept for resuming stays
    return final
