"""One client URL for gRPC and HTTP/1, as etcd's cmux gives: the first bytes decide.

    client ──TCP──► front door ──"PRI * HTTP/2.0..." ──► pipe ──unix socket──► grpc.aio
                               └─anything else──────► aiohttp's protocol (same socket)

A connection that starts with HTTP/2's client preface is gRPC (etcd serves no other
HTTP/2 in clear text); it is piped, byte for byte, to the grpc.aio server listening on
a unix socket in the member's run dir. Any other first bytes are HTTP/1: the socket
is handed to aiohttp's protocol object, which then reads it as if it had accepted it.

The pipe respects flow control both ways (a slow reader pauses the other side's
reads), so a snapshot stream to a slow client holds no more than a socket buffer.

An https:// client URL is the same door behind a TLS handshake (etcd's listener wraps
cmux the same way): the connection is wrapped before its first byte is read, with
the context of that moment (actors/bus/tlsfiles.py reloads renewed certificates), and the
decrypted bytes are sniffed as above. ALPN does not decide the route; it only makes
clients that can speak HTTP/1.1 speak it (servertls.ALPN_PROTOCOLS). A handshake
that fails (plain HTTP on a TLS URL, no or a wrong client certificate) closes that
connection and is logged; a TLS handshake on a plain URL is refused the same way.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import uvloop.loop

from petcd.actors.bus.tlsfiles import ReloadingTls

from . import certnames
from .certnames import CertNames

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TLS_HANDSHAKE_RECORD = 0x16          # the first byte a TLS client sends
TLS_HANDSHAKE_TIMEOUT_S = 10.0       # Go's http.Server has none; a silent client is dropped


@dataclass(frozen=True, slots=True)
class Routes:
    """What one listening address serves. Both: the first bytes decide. One alone
    (--listen-client-http-urls splits them, as etcd's): every connection goes there,
    and a client of the other kind fails as it would against that server alone."""
    grpc: bool = True
    http: bool = True

    def __post_init__(self) -> None:
        assert self.grpc or self.http, "a listener that serves nothing"


BOTH = Routes()


class FrontDoor:
    """Serves one listening address; `http` makes aiohttp's per-connection protocol."""

    def __init__(self, http: Callable[[], asyncio.Protocol], grpc_socket_path: str,
                 log: Any, cert_names: CertNames | None = None) -> None:
        self.http = http
        self.grpc_socket_path = grpc_socket_path
        self.log = log
        self.cert_names = cert_names  # set with --client-cert-auth (certnames.py)
        self.servers: list[asyncio.Server] = []

    async def listen(self, host: str, port: int, tls: ReloadingTls | None = None,
                     routes: Routes = BOTH) -> None:
        def plain() -> asyncio.BaseProtocol:
            return _Sniffer(self, False, routes)

        def wrapped() -> asyncio.BaseProtocol:
            assert tls is not None
            return _TlsLayer(_Sniffer(self, True, routes), tls.context(), self.log)

        server = await asyncio.get_running_loop().create_server(
            plain if tls is None else wrapped, host, port, reuse_address=True)
        self.servers.append(server)

    def close(self) -> None:
        """Stop accepting; connections already handed over end with their servers."""
        for server in self.servers:
            server.close()


class _Sniffer(asyncio.Protocol):
    """A fresh connection until its first bytes say which server it is for."""

    def __init__(self, door: FrontDoor, tls: bool, routes: Routes) -> None:
        self.door = door
        self.tls = tls  # behind a TLS layer: what arrives is already decrypted
        self.routes = routes
        self.transport: asyncio.Transport | None = None
        self.head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though uvloop's are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.tls and not self.head and data[0] == TLS_HANDSHAKE_RECORD:
            assert self.transport is not None
            self.door.log.warning("TLS handshake on a plain HTTP client URL; connection refused",
                                  remote=_remote(self.transport))
            self.transport.abort()
            return
        self.head += data
        if not self.routes.http:
            self._to_grpc()
            return
        if not self.routes.grpc:
            self._to_http()
            return
        if len(self.head) < len(H2_PREFACE) and H2_PREFACE.startswith(self.head):
            return  # could still be gRPC
        if self.head.startswith(H2_PREFACE):
            self._to_grpc()
        else:
            self._to_http()

    def eof_received(self) -> bool | None:
        return False  # closed before saying anything: close our side too

    def _to_http(self) -> None:
        assert self.transport is not None
        protocol = self.door.http()
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        protocol.data_received(self.head)

    def _to_grpc(self) -> None:
        assert self.transport is not None
        self.transport.pause_reading()
        asyncio.get_running_loop().create_task(self._connect_grpc(self.transport, self.head))

    async def _connect_grpc(self, client: asyncio.Transport, head: bytes) -> None:
        loop = asyncio.get_running_loop()
        sock, peer = self._upstream_socket(client)
        names = self.door.cert_names

        def forget() -> None:
            if peer is not None and names is not None:
                names.forget(peer)
        try:
            await loop.sock_connect(sock, self.door.grpc_socket_path)
            upstream, _ = await loop.create_unix_connection(
                lambda: _Pipe(client, half_close=True, on_close=forget), sock=sock)
        except OSError as err:
            sock.close()
            forget()
            self.door.log.warning("gRPC server unreachable; connection closed", error=str(err))
            client.close()
            return
        upstream.write(head)
        # A TLS connection cannot stay half-open (asyncio closes it at the peer's EOF).
        client.set_protocol(_Pipe(upstream, half_close=client.can_write_eof()))
        client.resume_reading()

    def _upstream_socket(self, client: asyncio.Transport) -> tuple[socket.socket, str | None]:
        """The pipe's socket to grpc.aio, named for the client certificate's common
        name when calls may be made as it (certnames.py); the name's peer, if any."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        names = self.door.cert_names
        if not self.tls or names is None:
            return sock, None
        name = certnames.common_name(client.get_extra_info("ssl_object"))
        return sock, (names.bind(sock, name) if name else None)


class _TlsLayer(uvloop.loop.SSLProtocol):
    """TLS for one connection, with the context of the moment it was accepted; the
    sniffer sees the decrypted stream once the handshake is done.

    uvloop's SSL protocol (Cython: the one its create_server(ssl=...) uses; the
    network actor always runs on uvloop), made by create_server's factory instead of
    passing `ssl=`: that way each connection gets the current context, and a failed
    handshake is seen and logged (given `ssl=`, uvloop drops it silently). Not
    loop.start_tls: uvloop reads a new connection's first bytes even when
    connection_made paused it, so they would reach the sniffer before the TLS layer.
    """

    def __init__(self, sniffer: _Sniffer, context: ssl.SSLContext, log: Any) -> None:
        loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future[None] = loop.create_future()
        super().__init__(loop, sniffer, context, self.handshake, server_side=True,
                         ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S)
        self.log = log
        self.remote = "?"
        self.handshake.add_done_callback(self._handshake_done)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.remote = _remote(transport)
        super().connection_made(transport)

    def _handshake_done(self, handshake: asyncio.Future[None]) -> None:
        if handshake.cancelled() or handshake.exception() is None:
            return
        err = handshake.exception()
        assert err is not None
        self.log.warning(_refusal(err), remote=self.remote, error=str(err) or type(err).__name__)


def _refusal(err: BaseException) -> str:
    if isinstance(err, ssl.SSLError) and err.reason == "HTTP_REQUEST":
        return "plain HTTP on a TLS client URL; connection refused"
    return "client TLS handshake failed; connection refused"


def _remote(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if peer else "?"


class _Pipe(asyncio.Protocol):
    """Whatever arrives on this connection is written to `peer`."""

    def __init__(self, peer: asyncio.Transport, half_close: bool,
                 on_close: Callable[[], None] | None = None) -> None:
        self.peer = peer
        self.half_close = half_close  # this side's transport can still write after EOF
        self.on_close = on_close

    def data_received(self, data: bytes) -> None:
        self.peer.write(data)

    def eof_received(self) -> bool | None:
        if self.peer.can_write_eof():
            self.peer.write_eof()
            return self.half_close  # keep our write side open for the answer
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.peer.close()
        if self.on_close is not None:
            self.on_close()

    # asyncio calls these on the protocol of the transport whose write buffer is
    # full: this connection's own. What fills it comes from the peer, so the peer
    # stops being read until this side drains.
    def pause_writing(self) -> None:
        self.peer.pause_reading()

    def resume_writing(self) -> None:
        self.peer.resume_reading()
