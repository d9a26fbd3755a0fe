"""One client URL for gRPC and HTTP/1, as etcd's cmux gives: the first bytes decide.

    client ──TCP──► front door ──"PRI * HTTP/2.0..." ──► pipe ──unix socket──► grpc.aio
                               └─anything else──────► aiohttp's protocol (same socket)

A connection that starts with HTTP/2's client preface is gRPC (etcd serves no other
HTTP/2 in clear text); it is piped, byte for byte, to the grpc.aio server listening on
a unix socket in the member's run dir. Any other first bytes are HTTP/1: the socket
is handed to aiohttp's protocol object, which then reads it as if it had accepted it.

The pipe respects flow control both ways (a slow reader pauses the other side's
reads), so a snapshot stream to a slow client holds no more than a socket buffer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class FrontDoor:
    """Serves one listening address; `http` makes aiohttp's per-connection protocol."""

    def __init__(self, http: Callable[[], asyncio.Protocol], grpc_socket_path: str,
                 log: Any) -> None:
        self.http = http
        self.grpc_socket_path = grpc_socket_path
        self.log = log
        self.servers: list[asyncio.Server] = []

    async def listen(self, host: str, port: int) -> None:
        server = await asyncio.get_running_loop().create_server(
            lambda: _Sniffer(self), host, port, reuse_address=True)
        self.servers.append(server)

    def close(self) -> None:
        """Stop accepting; connections already handed over end with their servers."""
        for server in self.servers:
            server.close()


class _Sniffer(asyncio.Protocol):
    """A fresh connection until its first bytes say which server it is for."""

    def __init__(self, door: FrontDoor) -> None:
        self.door = door
        self.transport: asyncio.Transport | None = None
        self.head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though uvloop's are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.head += data
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
        try:
            upstream, _ = await loop.create_unix_connection(
                lambda: _Pipe(client), self.door.grpc_socket_path)
        except OSError as err:
            self.door.log.warning("gRPC server unreachable; connection closed", error=str(err))
            client.close()
            return
        upstream.write(head)
        client.set_protocol(_Pipe(upstream))
        client.resume_reading()


class _Pipe(asyncio.Protocol):
    """Whatever arrives on this connection is written to `peer`."""

    def __init__(self, peer: asyncio.Transport) -> None:
        self.peer = peer

    def data_received(self, data: bytes) -> None:
        self.peer.write(data)

    def eof_received(self) -> bool | None:
        if self.peer.can_write_eof():
            self.peer.write_eof()
            return True  # keep our write side open for the answer
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.peer.close()

    # asyncio calls these on the protocol of the transport whose write buffer is
    # full: this connection's own. What fills it comes from the peer, so the peer
    # stops being read until this side drains.
    def pause_writing(self) -> None:
        self.peer.pause_reading()

    def resume_writing(self) -> None:
        self.peer.resume_reading()
