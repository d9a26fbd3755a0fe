"""Finding a dead member-to-member connection: TCP keepalive and TCP_USER_TIMEOUT.

After a partition or a machine's death a TCP connection may stay open on our side with
nobody at the other end; what we send then waits in queues and retransmits, and a
healed link would carry it only after the kernel's next retransmission (seconds to
minutes later). So every peer connection is closed when it is silent or unacknowledged
for about `DEAD_AFTER_MS`, and ZeroMQ (or the TLS relay's peer) connects again:

- idle: keepalive probes after `KEEPALIVE_IDLE_S`, every `KEEPALIVE_INTERVAL_S`, the
  connection dropped after `KEEPALIVE_PROBES` unanswered;
- sending: data unacknowledged for `DEAD_AFTER_MS` (TCP_USER_TIMEOUT; ZeroMQ's
  ZMQ_TCP_MAXRT sets it on Linux);
- connecting: a SYN left unanswered for `CONNECT_TIMEOUT_MS` is given up and retried
  (the kernel would retry the same SYN for about two minutes).

Not ZMTP heartbeats: libzmq 4.3.5 (as pyzmq 27 bundles it) aborts the whole process
when its heartbeat timer fires on a connection that has just failed
(`Assertion failed: !_io_error (src/stream_engine_base.cpp:310)`: the timer writes a
PING without looking at the engine's error flag); the soak (scripts/soak) hit it after
a split and a paused member, in three members at once. The kernel's timers cannot
crash us.
"""

from __future__ import annotations

import socket

import zmq

KEEPALIVE_IDLE_S = 1
KEEPALIVE_INTERVAL_S = 1
KEEPALIVE_PROBES = 3
DEAD_AFTER_MS = 3000
CONNECT_TIMEOUT_MS = 1000


def zmq_options() -> dict[int, int]:
    """The socket options that give a ZeroMQ socket's TCP connections these limits."""
    return {
        zmq.TCP_KEEPALIVE: 1,
        zmq.TCP_KEEPALIVE_IDLE: KEEPALIVE_IDLE_S,
        zmq.TCP_KEEPALIVE_INTVL: KEEPALIVE_INTERVAL_S,
        zmq.TCP_KEEPALIVE_CNT: KEEPALIVE_PROBES,
        zmq.TCP_MAXRT: DEAD_AFTER_MS,
        zmq.CONNECT_TIMEOUT: CONNECT_TIMEOUT_MS,
    }


def tune(sock: socket.socket) -> None:
    """The same limits on a connected TCP socket (the TLS relay's)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, DEAD_AFTER_MS)
