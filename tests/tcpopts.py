"""The TCP options of this process's own connections, as `ss -tio` would show them:
found through /proc/self/fd, whoever opened them (libzmq's I/O threads, a relay)."""

from __future__ import annotations

import contextlib
import os
import socket


def connections_on(port: int) -> list[dict[str, int]]:
    """Each TCP connection of this process with `port` at either end, and its
    keepalive and user-timeout settings."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            sock = socket.socket(fileno=os.dup(int(name)))
            with sock:
                if sock.family not in (socket.AF_INET, socket.AF_INET6) \
                        or sock.type != socket.SOCK_STREAM:
                    continue
                if port not in (sock.getsockname()[1], sock.getpeername()[1]):
                    continue
                found.append(_options(sock))
    return found


def _options(sock: socket.socket) -> dict[str, int]:
    tcp = socket.IPPROTO_TCP
    return {"keepalive": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            "idle_s": sock.getsockopt(tcp, socket.TCP_KEEPIDLE),
            "interval_s": sock.getsockopt(tcp, socket.TCP_KEEPINTVL),
            "probes": sock.getsockopt(tcp, socket.TCP_KEEPCNT),
            "user_timeout_ms": sock.getsockopt(tcp, socket.TCP_USER_TIMEOUT)}
