"""One gRPC channel per endpoint, connected on first use within the dial timeout.

A channel that fails to connect is closed and forgotten, so the next use dials afresh
instead of waiting out grpc's reconnect backoff on a member that has come back.
"""

from __future__ import annotations

import ssl
import threading
import time
import weakref
from dataclasses import dataclass

import grpc

from petcd.api.etcdserverpb import rpc_pb2_grpc
from petcd.api.v3electionpb import v3election_pb2_grpc
from petcd.api.v3lockpb import v3lock_pb2_grpc
from petcd.client.tls import TlsOptions, credentials

# etcd's Go client accepts responses of any size (math.MaxInt32); range results and
# snapshots chunks can exceed grpc's 4 MiB default.
CHANNEL_OPTIONS = (("grpc.max_receive_message_length", -1),)


def normalize_endpoint(endpoint: str) -> str:
    """etcdctl accepts host:port, http:// or https://host:port; grpc wants host:port
    (whether to use TLS is decided from the endpoint as written: tls.TlsOptions)."""
    return endpoint.removeprefix("http://").removeprefix("https://").rstrip("/")


@dataclass(frozen=True, slots=True)
class Connection:
    endpoint: str
    channel: grpc.Channel
    kv: rpc_pb2_grpc.KVStub
    maintenance: rpc_pb2_grpc.MaintenanceStub
    cluster: rpc_pb2_grpc.ClusterStub
    lease: rpc_pb2_grpc.LeaseStub
    lock: v3lock_pb2_grpc.LockStub
    election: v3election_pb2_grpc.ElectionStub
    auth: rpc_pb2_grpc.AuthStub


_IDLE, _CONNECTING, _READY = (grpc.ChannelConnectivity.IDLE.value[0],
                               grpc.ChannelConnectivity.CONNECTING.value[0],
                               grpc.ChannelConnectivity.READY.value[0])
# States a connection attempt ends in: connected, failed, or the channel closed.
_SETTLED = {state.value[0] for state in (grpc.ChannelConnectivity.READY,
                                         grpc.ChannelConnectivity.TRANSIENT_FAILURE,
                                         grpc.ChannelConnectivity.SHUTDOWN)}


def _wait_ready(channel: grpc.Channel, timeout_s: float) -> bool:
    """True once the channel is READY; False on its first connect failure or timeout.

    Watched from this thread on the channel's core object, not with the public
    channel.subscribe(): subscribe's polling thread wakes only every 0.2 s, and
    closing the channel waits for it, which cost every petcdctl run 150 ms."""
    core = channel._channel  # type: ignore[attr-defined]  # grpc's cygrpc.Channel
    deadline = time.time() + timeout_s  # grpc core's clock
    state = core.check_connectivity_state(True)
    while state not in _SETTLED:
        if not core.watch_connectivity_state(state, deadline).success:
            return False  # the dial timeout passed
        previous, state = state, core.check_connectivity_state(False)
        if previous == _CONNECTING and state == _IDLE:
            return False  # failed, and back to idle before we looked
    return state == _READY


class Connections:
    """The open connections of one client, by endpoint (thread-safe)."""

    def __init__(self, dial_timeout_s: float, tls: TlsOptions | None = None,
                 secure: frozenset[str] = frozenset()) -> None:
        """`secure`: the (normalized) endpoints dialled with `tls`."""
        assert tls is not None or not secure, "TLS endpoints need TLS options"
        self._dial_timeout_s = dial_timeout_s
        self._tls = tls
        self._secure = secure
        self._open: dict[str, Connection] = {}
        self._lock = threading.Lock()
        # Close channels before interpreter exit even if the owner forgot: grpc can
        # hang at exit finalizing a channel left open.
        weakref.finalize(self, _close_channels, self._open)

    def get(self, endpoint: str) -> Connection | None:
        """The endpoint's connection, dialled if needed; None if it cannot connect."""
        with self._lock:
            conn = self._open.get(endpoint)
        if conn is not None:
            return conn
        channel = self._channel(endpoint)
        if channel is None:
            return None
        if not _wait_ready(channel, self._dial_timeout_s):
            channel.close()
            return None
        conn = Connection(endpoint, channel, rpc_pb2_grpc.KVStub(channel),
                          rpc_pb2_grpc.MaintenanceStub(channel),
                          rpc_pb2_grpc.ClusterStub(channel), rpc_pb2_grpc.LeaseStub(channel),
                          v3lock_pb2_grpc.LockStub(channel),
                          v3election_pb2_grpc.ElectionStub(channel),
                          rpc_pb2_grpc.AuthStub(channel))
        with self._lock:
            kept = self._open.setdefault(endpoint, conn)
        if kept is not conn:
            channel.close()
        return kept

    def _channel(self, endpoint: str) -> grpc.Channel | None:
        if endpoint not in self._secure:
            return grpc.insecure_channel(endpoint, options=CHANNEL_OPTIONS)
        assert self._tls is not None
        try:
            creds, options = credentials(self._tls, endpoint)
        except (ConnectionError, TimeoutError, ssl.SSLError):  # the skip-verify probe
            return None
        return grpc.secure_channel(endpoint, creds, options=CHANNEL_OPTIONS + options)

    def drop(self, endpoint: str) -> None:
        with self._lock:
            conn = self._open.pop(endpoint, None)
        if conn is not None:
            conn.channel.close()

    def close(self) -> None:
        with self._lock:
            _close_channels(self._open)


def _close_channels(open_conns: dict[str, Connection]) -> None:
    conns = list(open_conns.values())
    open_conns.clear()
    for conn in conns:
        conn.channel.close()
