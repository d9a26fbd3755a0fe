"""The peer TLS relay on real sockets: a ZeroMQ DEALER reaches a ROUTER through two
relays and TLS with certificates from a test CA; a peer with no certificate, one from
another CA, or plain ZeroMQ on the TLS port gets nothing through, and each refusal is
logged."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import trustme
import zmq

from petcd.actors.bus import liveness
from petcd.actors.bus.addresses import prepare_socket_dir
from petcd.actors.bus.envelope import pack_envelope
from petcd.actors.bus.peer import Channel, identity
from petcd.actors.bus.tlsrelay import HANDSHAKE_TIMEOUT_S, TlsRelay, inbound_path, outbound_path
from tests.ports import free_ports
from tests.tcpopts import connections_on

WAIT_MS = 5000


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))

    info = error = warning


def server_context(ca: trustme.CA, require_client_cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(ctx)
    return ctx


def client_context(ca: trustme.CA, cert_ca: trustme.CA | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(ctx)
    if cert_ca is not None:
        cert_ca.issue_cert("127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture
def pair(tmp_path: Path):
    """Member B's ROUTER behind its relay on a TLS port; member A's relay to it."""
    ca = trustme.CA()
    port = free_ports(1)[0]
    dirs = tmp_path / "a", tmp_path / "b"
    for d in dirs:
        prepare_socket_dir(str(d))
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind(f"ipc://{inbound_path(dirs[1])}")
    log_b = Log()
    relay_b = TlsRelay(dirs[1], lambda: client_context(ca, ca), log_b,
                       server_tls=lambda: server_context(ca))
    relay_b.start([("127.0.0.1", port)])
    relays: list[TlsRelay] = [relay_b]
    yield ca, ctx, router, dirs, port, log_b, relays
    for relay in relays:
        relay.close()
    ctx.destroy(linger=0)


def dealer(ctx: zmq.Context, address: str) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity(1, Channel.RAFT))
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    return sock


def relay_to(relays: list[TlsRelay], a: Path, tls: ssl.SSLContext, port: int) -> TlsRelay:
    relay = TlsRelay(a, lambda: tls, Log())
    relays.append(relay)
    relay.start()
    relay.set_peers({2: ("127.0.0.1", port)})
    return relay


def test_zeromq_frames_cross_two_relays_over_tls(pair) -> None:
    ca, ctx, router, (a, _), port, _, relays = pair
    relay_to(relays, a, client_context(ca, ca), port)
    sender = dealer(ctx, f"ipc://{outbound_path(a, 2)}")
    sender.send(pack_envelope("raft", [1, 2, 3]))
    assert router.poll(WAIT_MS)
    routing_id, frame = router.recv_multipart()
    assert routing_id == identity(1, Channel.RAFT) and frame == pack_envelope("raft", [1, 2, 3])


@pytest.mark.parametrize("who", ["no certificate", "another CA", "plain zeromq"])
def test_a_peer_without_a_trusted_certificate_gets_nothing_through(pair, who: str) -> None:
    ca, ctx, router, (a, _), port, log_b, relays = pair
    if who == "plain zeromq":
        sender = dealer(ctx, f"tcp://127.0.0.1:{port}")
    else:
        cert_ca = None if who == "no certificate" else trustme.CA()
        relay_to(relays, a, client_context(ca, cert_ca), port)
        sender = dealer(ctx, f"ipc://{outbound_path(a, 2)}")
    sender.send(pack_envelope("raft", []))
    # ZeroMQ's greeting is no TLS hello: refused at the latest by the handshake timeout.
    deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S + 3
    while not log_b.lines and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log_b.lines and {event for event, _ in log_b.lines} == {"rejected peer connection"}
    assert not router.poll(0)


def test_a_tls_client_of_the_right_ca_still_needs_the_allowed_common_name(tmp_path) -> None:
    ca = trustme.CA()
    port = free_ports(1)[0]
    prepare_socket_dir(str(tmp_path))
    log = Log()
    relay = TlsRelay(tmp_path, lambda: client_context(ca, ca), log,
                     server_tls=lambda: server_context(ca),
                     check_peer=lambda cert: "CN not allowed")
    relay.start([("127.0.0.1", port)])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with client_context(ca, ca).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.settimeout(5)
                assert tls.recv(1) == b""  # closed after the handshake
        assert [f["reason"] for e, f in log.lines] == ["CN not allowed"]
    finally:
        relay.close()


def test_both_ends_of_a_relayed_tls_connection_find_a_dead_peer(pair) -> None:
    """As the ZeroMQ connections do (liveness.py): keepalive and a user timeout."""
    ca, ctx, router, (a, _), port, _, relays = pair
    relay_to(relays, a, client_context(ca, ca), port)
    sender = dealer(ctx, f"ipc://{outbound_path(a, 2)}")
    sender.send(pack_envelope("raft", [1]))
    assert router.poll(WAIT_MS)
    ends = connections_on(port)
    assert len(ends) == 2, ends
    assert all(end["keepalive"] == 1 and end["user_timeout_ms"] == liveness.DEAD_AFTER_MS
               for end in ends), ends
