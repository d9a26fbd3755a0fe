"""POST /v3/watch on one HTTP/1.1 connection, for tests: WatchRequests written into the
request body as the test sends them, response lines read as they come, every wait
bounded. A raw socket, because the test decides when each request goes out.

    with GatewayWatch(port) as w:         # body in chunks, sent as we go
        w.send({"create_request": {"key": b64("k")}})
        w.next()["result"]["created"]      # True
        w.quiet()                          # True if nothing comes for a while

`content_length_bytes` instead declares a body of that length and writes the requests
into it unframed: etcd 3.4's gateway (Go's HTTP/1 server) answers nothing while a
chunked body is still open, and answers as it goes once a body of 256 KiB or more is
declared (Go then does not try to read the rest of the body before the response).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

WAIT_S = 10.0


class GatewayWatch:
    def __init__(self, port: int, content_length_bytes: int | None = None,
                 path: str = "/v3/watch") -> None:
        self.chunked = content_length_bytes is None
        framing = ("Transfer-Encoding: chunked" if self.chunked
                   else f"Content-Length: {content_length_bytes}")
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        self.sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                          f"Content-Type: application/json\r\n{framing}\r\n\r\n".encode())
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self._raw = b""  # received, not parsed yet
        self._body = b""  # the response body so far, not yet split into lines
        self._chunked_response = False
        self._length: int | None = None  # of a response that is not chunked
        self.ended = False  # the response is complete, or the server closed
        self.line_per_chunk = True  # so far, each HTTP chunk held one whole line

    def send(self, request: dict[str, Any] | bytes) -> None:
        """One request (JSON, or bytes as they are) and a newline."""
        data = request if isinstance(request, bytes) else json.dumps(request).encode()
        self.write(data + b"\n")

    def write(self, data: bytes) -> None:
        """Body bytes: one chunk, or as they are into a declared length."""
        if self.chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self.sock.sendall(data)

    def end_body(self) -> None:
        if self.chunked:
            self.sock.sendall(b"0\r\n\r\n")

    def next(self, timeout_s: float = WAIT_S) -> dict[str, Any]:
        """The next response line, parsed; AssertionError if none comes in time."""
        return json.loads(self.next_line(timeout_s))

    def next_line(self, timeout_s: float = WAIT_S) -> bytes:
        """The next response line as it came, without its newline."""
        if not self._wait(lambda: b"\n" in self._body, timeout_s):
            raise AssertionError(f"no watch response line within {timeout_s} s "
                                 f"(status {self.status}, body so far {self._body!r})")
        line, self._body = self._body.split(b"\n", 1)
        return line

    def quiet(self, timeout_s: float = 0.5) -> bool:
        """True if no response line comes within timeout_s."""
        return not self._wait(lambda: b"\n" in self._body, timeout_s)

    def response(self, timeout_s: float = WAIT_S) -> tuple[int, str, bytes]:
        """Status, Content-Type and body of a response that is not a stream."""
        assert self._wait(lambda: self.ended, timeout_s), "the response did not end"
        assert self.status is not None
        return self.status, self.headers.get("content-type", ""), self._body

    def _wait(self, done: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done() and not self.ended:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return False
            if not data:
                self.ended = True
            self._raw += data
            self._parse()
        return bool(done())

    def _parse(self) -> None:
        if self.status is None:
            head, sep, rest = self._raw.partition(b"\r\n\r\n")
            if not sep:
                return
            status_line, *lines = head.decode("latin-1").split("\r\n")
            self.status = int(status_line.split()[1])
            for line in lines:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
            self._chunked_response = self.headers.get("transfer-encoding") == "chunked"
            self._length = int(self.headers.get("content-length", "-1"))
            self._raw = rest
        if self._chunked_response:
            self._parse_chunks()
        else:
            self._body += self._raw
            self._raw = b""
            if self._length is not None and 0 <= self._length <= len(self._body):
                self.ended = True

    def _parse_chunks(self) -> None:
        while True:
            size_line, sep, rest = self._raw.partition(b"\r\n")
            if not sep:
                return
            size = int(size_line, 16)
            if len(rest) < size + 2:
                return
            if size == 0:
                self.ended = True
            elif rest[:size].count(b"\n") != 1 or not rest[:size].endswith(b"\n"):
                self.line_per_chunk = False
            self._body += rest[:size]
            self._raw = rest[size + 2:]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> GatewayWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
