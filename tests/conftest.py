"""Fixtures shared by the tests: a loopback HTTP server, a private download cache, "online" for it."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from utils import runtime


# ----------------------------------------------------------------------------------------------
# a loopback HTTP server


class LoopbackServer:
    """Serves ``routes[path] = (body, mode)``; ``mode`` is ``"ok"`` or ``"truncate"`` (announces more
    bytes than it sends, then closes). Records every requested path in ``requests``."""

    def __init__(self):
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server.requests.append(self.path)
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                body, mode = route
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body) + (5000 if mode == "truncate" else 0)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def serve(self, path: str, body: bytes, mode: str = "ok") -> str:
        self.routes[path] = (body, mode)
        return self.url(path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = LoopbackServer()
    yield srv
    srv.close()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("COURSE_DATA", str(folder))
    return folder


@pytest.fixture
def online(monkeypatch):
    """Allow downloads from the loopback server: no COURSE_OFFLINE, and the internet probe says yes."""
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(runtime, "is_online", lambda *args, **kwargs: True)


