"""A real HTTP server on loopback that receives webhook notifications (tests only).

Each path has its own script of answers (``answer(path, 500, 500, 200)``: the first
request gets 500, ..., the last answer repeats), and every request is kept with its
headers and body, so a test verifies the signature the way an integrator does.
"""

from __future__ import annotations

import ssl
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def verified(self, secret: str) -> dict:
        """The body, parsed, after the standard's library verified its signature."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"


class Receiver:
    def __init__(self, *, tls: tuple[str, str] | None = None) -> None:
        """``tls``: (certificate file, key file) to serve HTTPS instead of HTTP."""
        self._lock = threading.Lock()
        self._answers: dict[str, list[Answer]] = defaultdict(list)
        self.requests: list[Request] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    script = receiver._answers[self.path]
                    answer = script.pop(0) if len(script) > 1 else (script or [Answer(200)])[0]
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, *answers: int | Answer) -> None:
        with self._lock:
            self._answers[path] = [a if isinstance(a, Answer) else Answer(a) for a in answers]

    def received(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]
