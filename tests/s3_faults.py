"""Fault injection on the wire between boto3 and the local S3 server (moto): a TCP proxy
that dies mid-transfer and an HTTP proxy that answers 503 SlowDown or 403. Used by the
storage tests and by the job-level storage tests; both bind 127.0.0.1 only."""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class DyingProxy:
    """TCP proxy in front of moto. After ``die_after`` request bytes it dies: the listener
    is closed (new connections are refused) and every open connection is cut. ``reopen``
    listens again on the same port."""

    def __init__(self, upstream: str, die_after: int | None = None):
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname, parts.port)
        self.die_after = die_after
        self.sent = 0
        self.died = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = 0
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by kill()
            try:
                upstream = socket.create_connection(self._upstream, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self.died.is_set():
                    client.close()
                    upstream.close()
                    continue
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, request_side: bool) -> None:
        try:
            while data := src.recv(65536):
                if request_side and self.die_after is not None:
                    with self._lock:
                        self.sent += len(data)
                        over = self.sent > self.die_after
                    if over:
                        self.kill()
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                _cut(sock)

    def kill(self) -> None:
        with self._lock:
            self.died.set()
            sockets, self._sockets = list(self._sockets), set()
            listener, self._listener = self._listener, None
        if listener is not None:
            _cut(listener)
        for sock in sockets:
            _cut(sock)

    def reopen(self) -> None:
        self.die_after = None
        self.died.clear()
        self._listen()


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes threads blocked in accept/recv
    except OSError:
        pass
    sock.close()


_SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>proxy</RequestId></Error>"
)
_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message><RequestId>proxy</RequestId></Error>"
)


class FaultProxy(ThreadingHTTPServer):
    """HTTP proxy in front of moto: 503 SlowDown for the first ``slowdowns`` requests,
    403 AccessDenied for requests matching ``deny``, else forwarded; the body of an answer
    to a request matching ``corrupt`` has its first byte flipped (same size: bytes damaged
    on the way). ``cut(method, path)`` may answer ``"truncate"`` (the full Content-Length,
    half the body, then the connection closed) or ``"reset"`` (the headers, then a TCP
    reset) for one request; ``delay`` seconds pass before each GET is answered (a slow
    store, to hold a download open). Records every request."""

    daemon_threads = True

    def __init__(
        self,
        upstream: str,
        slowdowns: int = 0,
        deny: Callable[[str, str], bool] | None = None,
        corrupt: Callable[[str, str], bool] | None = None,
        cut: Callable[[str, str], str | None] | None = None,
        delay: float = 0.0,
    ):
        super().__init__(("127.0.0.1", 0), _FaultHandler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.slowdowns = slowdowns
        self.deny = deny
        self.corrupt = corrupt
        self.cut = cut
        self.delay = delay
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.answered_503 = 0
        self.answered_403 = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultProxy

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True

    def _handle(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._reply(501, b"chunked requests are not supported by this test proxy")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        proxy = self.server
        with proxy.lock:
            number = len(proxy.requests)
            proxy.requests.append((self.command, self.path))
        if number < proxy.slowdowns:
            with proxy.lock:
                proxy.answered_503 += 1
            self._reply(503, _SLOWDOWN)
            return
        if proxy.deny is not None and proxy.deny(self.command, self.path):
            with proxy.lock:
                proxy.answered_403 += 1
            self._reply(403, _DENIED)
            return
        hop = ("connection", "keep-alive", "proxy-connection", "expect", "transfer-encoding")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
        conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
        try:
            conn.request(self.command, self.path, body=body if length else None, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if (
            data
            and response.status in (200, 206)
            and proxy.corrupt is not None
            and proxy.corrupt(self.command, self.path)
        ):
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        if self.command == "GET" and proxy.delay:
            time.sleep(proxy.delay)
        how = proxy.cut(self.command, self.path) if proxy.cut is not None and response.status == 200 else None
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in (*hop, "content-length"):
                self.send_header(key, value)
        length_out = response.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
        self.send_header("Content-Length", length_out or "0")
        self.send_header("Connection", "close")
        self.end_headers()
        if how == "truncate":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        elif how == "reset":
            self.wfile.flush()
            # SO_LINGER 0: close() sends a TCP RST, what a dropped connection looks like.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        elif self.command != "HEAD":
            self.wfile.write(data)
        self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle
