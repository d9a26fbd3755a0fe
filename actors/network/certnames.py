"""Who a client certificate says a gRPC caller is: etcd's AuthInfoFromTLS.

With --client-cert-auth, a gRPC request that carries no token is made as the user
named by the common name of the client certificate its TLS connection verified.
TLS ends at the front door (frontdoor.py) and the decrypted bytes reach grpc.aio
over a unix socket, so grpc.aio never sees the certificate. The front door therefore
binds each such pipe's socket to a fresh abstract name (Linux's abstract namespace:
no file, gone when the socket closes, and no other socket can hold the name while
it is in use), which grpc.aio reports as the call's peer ("unix-abstract:<name>");
this table maps that peer to the common name until the connection closes.

The JSON gateway's requests never use a certificate's name: etcd ignores it for
gateway requests too (its gateway proxies them with the server's own connection).
"""

from __future__ import annotations

import itertools
import os
import socket
import ssl
from typing import Any

PEER_PREFIX = "unix-abstract:"  # how grpc.aio spells an abstract unix peer
MAX_CONNECTIONS = 100_000  # bounds the table; a connection past it gets no name


class CertNames:
    """Peer address of a front-door pipe -> its client certificate's common name."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._prefix = f"petcd-{os.getpid()}-{os.urandom(4).hex()}-"

    def bind(self, sock: socket.socket, common_name: str) -> str | None:
        """Name `sock` (an AF_UNIX socket not yet connected) for `common_name`; the
        peer grpc.aio will report, to forget() once the connection ends."""
        if len(self._names) >= MAX_CONNECTIONS:
            return None
        name = f"{self._prefix}{next(self._ids)}"
        sock.bind(f"\0{name}")
        peer = PEER_PREFIX + name
        self._names[peer] = common_name
        return peer

    def forget(self, peer: str) -> None:
        self._names.pop(peer, None)

    def of_call(self, context: Any) -> str | None:
        """The common name of the certificate behind a gRPC call's connection, if any.
        Without --client-cert-auth the table stays empty: no peer is asked for."""
        return self._names.get(context.peer()) if self._names else None


def common_name(ssl_object: Any) -> str | None:
    """The subject common name of the client certificate a handshake verified; None
    if the client showed none (or it names no one)."""
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    cert = ssl_object.getpeercert()
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and value:
                return str(value)
    return None
