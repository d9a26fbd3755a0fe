"""Free TCP ports for the servers tests start, taken from below the ephemeral range.

A port from bind(0) is an ephemeral one: the range the kernel also draws the source
ports of outgoing connections from. Between the probe closing and the server binding,
any connection (a peer reconnecting, an HTTP client) may take it as its source port,
and TIME_WAIT then keeps it taken for a minute: the server fails with EADDRINUSE.
Ports below the range are never taken that way. Each is handed out once per test run;
with several test workers (pytest-xdist), each draws from its own share of the range,
so two workers never hand out the same port.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

FIRST_PORT = 10_000
DEFAULT_EPHEMERAL_FIRST = 32_768  # Linux's default ip_local_port_range starts here
_TRIES_PER_PORT = 100

_given: set[int] = set()
_rng = random.Random()


def ephemeral_first() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_FIRST


def _worker_range() -> tuple[int, int]:
    """This worker's share of the ports below the ephemeral range: (first, last)."""
    last = ephemeral_first() - 1
    assert last > FIRST_PORT, f"ephemeral ports start at {last + 1}: no room below"
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # gw0, gw1, ...
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    share = (last - FIRST_PORT + 1) // workers
    first = FIRST_PORT + int(worker.removeprefix("gw")) * share
    return first, first + share - 1


def free_ports(count: int) -> list[int]:
    """`count` distinct ports on 127.0.0.1 that nothing holds now."""
    first, last = _worker_range()
    ports: list[int] = []
    for _ in range(count * _TRIES_PER_PORT):
        if len(ports) == count:
            break
        port = _rng.randint(first, last)
        if port not in _given and _bindable(port):
            _given.add(port)
            ports.append(port)
    if len(ports) < count:
        raise RuntimeError(f"found {len(ports)} free ports of {count} in {first}-{last}")
    return ports


def free_port() -> int:
    [port] = free_ports(1)
    return port


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
