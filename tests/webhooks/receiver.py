"""A webhook receiver the tests own: a real HTTP server on 127.0.0.1 that fails (500)
until told to accept, verifies nothing itself, and records every request it gets."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    accepted: bool
    duplicate: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    failing: bool = True
    redirect_to: str | None = None
    hits: list[Hit] = field(default_factory=list)
    accepted_keys: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                key = self.headers.get("Idempotency-Key", "")
                with receiver.lock:
                    if receiver.redirect_to:
                        # Recorded before answering: the client may look as soon as it has the answer.
                        receiver.hits.append(Hit(self.path, dict(self.headers), body, False, False))
                        self.send_response(307)
                        self.send_header("Location", receiver.redirect_to)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    accept = not receiver.failing
                    duplicate = accept and key in receiver.accepted_keys
                    if accept and not duplicate:
                        receiver.accepted_keys.append(key)
                    receiver.hits.append(Hit(self.path, dict(self.headers), body, accept, duplicate))
                self.send_response(200 if accept else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def accepted(self) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.accepted and not h.duplicate]

    def failures(self) -> int:
        with self.lock:
            return sum(1 for h in self.hits if not h.accepted)
