"""A hostile forward proxy on 127.0.0.1, between an agent installed with ``--insecure-http``
and the reconciler: it forwards every request and, as told, rewrites the desired states it
carries (another node image, the digest recomputed so only the signature can tell) or
strips their signature. What whoever can alter the connection would do."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from agent.contract import digest_of
from agent.signatures import HEADER

Mode = Literal["pass", "tamper", "strip"]
EVIL_IMAGE = "attacker/k3s:rooted"
_HOP = {"connection", "proxy-connection", "keep-alive", "transfer-encoding", "content-length"}


class HostileProxy:
    def __init__(self) -> None:
        self.mode: Mode = "pass"
        self.altered = 0  # desired states rewritten or stripped so far
        self._lock = threading.Lock()
        self._upstream = httpx.Client(timeout=120, trust_env=False)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                proxy.forward(self)

            def do_POST(self) -> None:  # noqa: N802
                proxy.forward(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> HostileProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._upstream.close()

    def forward(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP | {"host"}}
        try:
            answer = self._upstream.request(
                request.command, request.path, headers=headers, content=body
            )
        except httpx.HTTPError:
            request.send_error(502)
            return
        content = answer.content
        out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
        if urlsplit(request.path).path == "/v1/desired" and answer.status_code == 200:
            content, out = self._alter(content, out)
        request.send_response(answer.status_code)
        for name, value in out.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(content)))
        request.end_headers()
        request.wfile.write(content)

    def _alter(self, content: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        with self._lock:
            mode = self.mode
            if mode != "pass":
                self.altered += 1
        if mode == "strip":
            return content, {k: v for k, v in headers.items() if k.lower() != HEADER.lower()}
        if mode == "tamper":
            document = json.loads(content)
            for cluster in document["clusters"]:
                for node in cluster["nodes"]:
                    node["image"] = EVIL_IMAGE
            covered = {k: v for k, v in document.items() if k not in ("revision", "digest")}
            document["digest"] = digest_of(covered)
            return json.dumps(document, sort_keys=True, separators=(",", ":")).encode(), headers
        return content, headers
