"""Keeping a lease alive: etcd's clientv3 keep-alive loop, on grpcio.

    with client.keep_alive(lease_id, on_lost=print) as keep:
        ...                     # the lease lives while this runs
        keep.lost               # True once it is gone (keep.reason says why)

A worker thread holds one bidirectional LeaseKeepAlive stream: it asks, waits for the
answer, and asks again TTL/3 after it (clientv3's interval), so a lease survives two
lost rounds. When the stream breaks or an answer does not come in time, the worker
opens a new stream on the next endpoint, round robin. The lease is taken for lost,
and the owner told once (`on_lost`, `lost`, `wait_lost`), when the server answers
TTL <= 0 (expired or revoked) or when no answer came for a whole TTL since the last
one (the server has let it expire by then, as clientv3's deadline loop assumes).
close() stops the renewals only: revoking is the owner's call.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import grpc

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.client import requestq
from petcd.client.connection import Connection, Connections
from petcd.client.errors import is_server_error

MIN_INTERVAL_S = 0.5  # clientv3 never asks more often (its send loop ticks at 500 ms)
BACKOFF_S = 0.1  # pause after a round of endpoints that all failed
JOIN_TIMEOUT_S = 5.0
EXPIRED = "lease expired or revoked"
UNANSWERED = "no keep-alive answer within the lease's TTL"


class KeepAlive:
    """Renews lease `lease_id` from a worker thread until close() or the lease is lost.
    `ttl`: the lease's TTL in seconds if known (its first deadline). `on_renewed` gets
    every answer, `on_lost` the reason once (both called in the worker thread)."""

    def __init__(self, connections: Connections, endpoints: tuple[str, ...], lease_id: int,
                 *, timeout_s: float, ttl: int = 0,
                 on_renewed: Callable[[pb.LeaseKeepAliveResponse], None] | None = None,
                 on_lost: Callable[[str], None] | None = None) -> None:
        assert endpoints, "a keep-alive needs an endpoint"
        self.lease_id = lease_id
        self._connections = connections
        self._endpoints = endpoints
        self._timeout_s = timeout_s  # for one answer, as for any call of the client
        self._on_renewed = on_renewed
        self._on_lost = on_lost
        # Until the first answer says the TTL: the granted one, else a command timeout.
        self._deadline = time.monotonic() + (ttl or timeout_s)
        self._last: pb.LeaseKeepAliveResponse | None = None
        self._closed = threading.Event()
        self._lost = threading.Event()
        self.reason = ""
        self._worker = threading.Thread(target=self._run, name="petcd-keepalive",
                                        daemon=True)
        self._worker.start()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    @property
    def last(self) -> pb.LeaseKeepAliveResponse | None:
        """The latest answer (its TTL is what the lease was renewed to)."""
        return self._last

    def wait_lost(self, timeout_s: float) -> bool:
        """True if the lease was lost within `timeout_s`."""
        return self._lost.wait(timeout_s)

    def close(self) -> None:
        self._closed.set()
        self._worker.join(JOIN_TIMEOUT_S)

    def __enter__(self) -> KeepAlive:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # The worker's side

    def _run(self) -> None:
        tries = 0
        while not self._closed.is_set():
            if time.monotonic() >= self._deadline:
                self._lose(UNANSWERED)
                return
            if tries and tries % len(self._endpoints) == 0:
                self._closed.wait(BACKOFF_S)
            endpoint = self._endpoints[tries % len(self._endpoints)]
            tries += 1
            conn = self._connections.get(endpoint)
            if conn is None:
                continue
            if self._serve(conn):
                return

    def _serve(self, conn: Connection) -> bool:
        """Renew over one stream; True once the keep-alive is over, False if the
        stream failed and the next endpoint should take over."""
        stream = _Stream(conn, self.lease_id)
        try:
            while not self._closed.is_set():
                answer_within_s = min(self._timeout_s, self._deadline - time.monotonic())
                resp = stream.ask(max(answer_within_s, 0.001))
                if resp is None:
                    return False
                if resp.TTL <= 0:
                    self._lose(EXPIRED)
                    return True
                self._renewed(resp)
                self._closed.wait(max(resp.TTL / 3, MIN_INTERVAL_S))
            return True
        except grpc.RpcError as exc:
            if not is_server_error(exc):
                self._connections.drop(conn.endpoint)  # the next use dials afresh
            return self._closed.is_set()
        finally:
            stream.end()

    def _renewed(self, resp: pb.LeaseKeepAliveResponse) -> None:
        assert resp.TTL > 0 and resp.ID == self.lease_id, resp
        self._last = resp
        self._deadline = time.monotonic() + resp.TTL
        if self._on_renewed is not None:
            self._on_renewed(resp)

    def _lose(self, reason: str) -> None:
        self.reason = reason
        self._lost.set()
        if self._on_lost is not None:
            self._on_lost(reason)


class _Stream:
    """One LeaseKeepAlive RPC on one endpoint."""

    def __init__(self, conn: Connection, lease_id: int) -> None:
        self._lease_id = lease_id
        self._outbox: queue.Queue = queue.Queue(2)  # a request and the end marker
        self._call = conn.lease.LeaseKeepAlive(requestq.requests(self._outbox))

    def ask(self, answer_within_s: float) -> pb.LeaseKeepAliveResponse | None:
        """Send one request and return its answer; None if the server ended the
        stream. An answer that does not come in time cancels the RPC (RpcError)."""
        self._outbox.put_nowait(pb.LeaseKeepAliveRequest(ID=self._lease_id))
        timer = threading.Timer(answer_within_s, self._call.cancel)
        timer.daemon = True
        timer.start()
        try:
            return next(self._call, None)
        finally:
            timer.cancel()

    def end(self) -> None:
        """Cancel the RPC and end its request iterator (grpc's sending thread waits on
        it until it ends)."""
        self._call.cancel()
        requestq.close(self._outbox)




def keep_alive_once(conn: Connection) -> Callable[..., pb.LeaseKeepAliveResponse | None]:
    """clientv3's KeepAliveOnce as a unary method of `conn`: the request on a stream of
    its own, and its answer (None if the server ended the stream without one)."""
    def call(request: pb.LeaseKeepAliveRequest, timeout: float, metadata=None):
        stream = conn.lease.LeaseKeepAlive(iter([request]), timeout=timeout, metadata=metadata)
        try:
            return next(stream, None)
        finally:
            stream.cancel()
    return call
