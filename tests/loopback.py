"""A loopback HTTP server on 127.0.0.1 (never the internet) for the download tests, and the
miniature archives it serves."""
import contextlib
import hashlib
import http.server
import io
import tarfile
import threading

from ufm.dnn.data.download import SOURCES, Source

__all__ = ["loopback_server", "serve_source", "tar_gz", "md5"]


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (path -> bytes); ``server.mode`` says how ("full": always 200;
    "range": 206 to a Range request, 416 to one beyond the file; "cut": half the body under the
    full Content-Length, then the connection closes; "refuse-range": 416 to a Range request;
    "wrong-range": 206 from byte 0 whatever the range); every request is recorded."""

    def do_GET(self):
        server = self.server
        server.requests.append((self.path, self.headers.get("Range"), self.headers.get("User-Agent")))
        body = server.files.get(self.path)
        if body is None:
            return self.send_error(404)
        start = int(self.headers["Range"][6:-1]) if self.headers.get("Range") else 0
        if start and (server.mode == "refuse-range" or server.mode == "range" and start >= len(body)):
            return self.send_error(416)
        if start and server.mode in ("range", "wrong-range"):
            start = start if server.mode == "range" else 0
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            body = body[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if server.mode == "cut" else body)
        self.close_connection = True

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def loopback_server():
    """A running server on 127.0.0.1 (a free port) with ``files`` (path -> bytes), ``mode`` ("full")
    and ``requests`` (path, Range header, User-Agent) of every request; ``url`` its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.mode, httpd.requests = {}, "full", []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def serve_source(monkeypatch, server, name: str, files: dict, kind: str, folder: str, base: str = None):
    """Point ``SOURCES[name]`` at ``files`` (filename -> bytes) served by ``server`` (under ``base``, a URL)."""
    base = base or server.url + "/data/"
    for filename, data in files.items():
        server.files["/data/" + filename] = data
    entries = tuple((base + filename, md5(data), filename) for filename, data in files.items())
    monkeypatch.setitem(SOURCES, name, Source(entries, kind, folder, None if kind == "files" else folder))


def tar_gz(members: dict, links: dict = (), special: dict = ()) -> bytes:
    """A .tar.gz of ``members`` (name -> bytes), symlinks or hardlinks ``links`` (name -> (type, target))
    and ``special`` members (name -> tarfile type)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, (type_, target) in dict(links).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = type_, target
            tf.addfile(info)
        for name, type_ in dict(special).items():
            info = tarfile.TarInfo(name)
            info.type = type_
            tf.addfile(info)
    return buffer.getvalue()
