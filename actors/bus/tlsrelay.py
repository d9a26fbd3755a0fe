"""TLS around the peer transport: ZeroMQ's member-to-member traffic inside TLS
connections that carry etcd's peer certificate rules.

ZeroMQ has no TLS transport, and its own CURVE security authenticates keys, not
certificates from a CA (a member would need every other member's key before it
could talk to it). So with peer TLS on, the ZMTP streams are relayed through TLS
connections, unchanged:

    member 1                                         member 2
    DEALER -> ipc p<2>.sock -> relay ==TLS==> relay (peer URL) -> ipc peer-in.sock -> ROUTER

- outbound: for each other member, the relay listens on a unix socket named after it
  (`outbound_path`) where this member's DEALERs (raft and snapshot channels) connect;
  each connection there becomes a TLS connection to that member's peer URL, with this
  member's peer certificate as client certificate, the server's checked against
  --peer-trusted-ca-file and its host name (as Go's TLS client checks it);
- inbound: the relay accepts TLS on the peer URL (--peer-client-cert-auth: only with
  a client certificate from the trusted CA, and --peer-cert-allowed-cn/-hostname
  when given) and joins each connection to the ROUTER's unix socket (`inbound_path`).

The TLS connections find a dead peer as the ZeroMQ ones do (liveness.py); when one
is closed, so is its unix side, and the DEALER connects again.

A connection that fails its handshake or its checks is closed and logged ("rejected
peer connection"), and nothing of it reaches ZeroMQ. Certificates are read again when their files change (looked at
once a second at most), for the connections made after that, as etcd reloads them on
each handshake; a broken new file keeps the last good one, logged.

The relay runs in a thread of the raft actor with its own event loop: the bytes it
moves are the raft actor's and the network actor's snapshot streams, and the ssl
module releases the GIL while it encrypts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import socket
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import liveness
from .addresses import socket_dir

CHUNK_BYTES = 256 * 1024
HANDSHAKE_TIMEOUT_S = 5.0
START_TIMEOUT_S = 10.0
INBOUND_NAME = "peer_in.sock"

ContextSource = Callable[[], ssl.SSLContext]  # the current context (reloaded on change)
PeerCheck = Callable[[Any], str | None]  # peer certificate dict -> why it is refused


def outbound_path(run_dir: Path, peer_id: int) -> Path:
    """Where this member's DEALERs reach member `peer_id` through the relay: the id in
    13 base32 characters, so the name fits addresses.MAX_NAME_CHARS."""
    name = base64.b32encode(peer_id.to_bytes(8, "big")).decode().rstrip("=").lower()
    return Path(socket_dir(run_dir)) / f"p{name}.sock"


def inbound_path(run_dir: Path) -> Path:
    """Where the relay hands accepted connections to this member's ROUTER."""
    return Path(socket_dir(run_dir)) / INBOUND_NAME


class TlsRelay:
    def __init__(self, run_dir: Path, client_tls: ContextSource, log: Any,
                 server_tls: ContextSource | None = None,
                 check_peer: PeerCheck = lambda cert: None) -> None:
        self.run_dir = run_dir
        self.client_tls, self.server_tls, self.check_peer = client_tls, server_tls, check_peer
        self.log = log
        self.refused = 0  # connections refused (handshake or checks)
        # uvloop: its TLS (Cython over OpenSSL's memory BIOs) costs a put over peer TLS
        # less of the raft process's CPU than asyncio's pure-Python SSL protocol.
        # Imported here, in the raft actor: the supervisor forks without it.
        import uvloop

        self._loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tls-relay",
                                        daemon=True)
        self._outbound: dict[int, tuple[asyncio.Server, tuple[str, int]]] = {}
        self._listening: list[socket.socket] = []
        self._tasks: set[asyncio.Future[None]] = set()  # accept loops, accepted connections

    # -- called from the owner's thread ---------------------------------------------

    def start(self, listen: Sequence[tuple[str, int]] = ()) -> None:
        """Run the loop, accepting TLS on each (host, port) of `listen` (OSError if it
        cannot: the relay is closed again)."""
        self._thread.start()
        try:
            for host, port in listen:
                self._call(self._listen(host, port))
        except BaseException:
            self.close()
            raise

    def set_peers(self, peers: Mapping[int, tuple[str, int]]) -> None:
        """Relay to exactly these members (id -> peer URL host, port)."""
        self._call(self._set_peers(dict(peers)))

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT_S)
        self._loop.close()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(START_TIMEOUT_S)

    # -- in the relay's loop -----------------------------------------------------------

    async def _listen(self, host: str, port: int) -> None:
        # Accepted by hand, the handshake then made on the accepted socket: its
        # failures are ours to log (asyncio's TLS server drops them silently), each
        # takes the current context, and no byte is read before TLS has it.
        lsock = socket.create_server((host or "", port), family=_family(host), reuse_port=False)
        lsock.setblocking(False)
        self._listening.append(lsock)
        self._tasks.add(asyncio.ensure_future(self._accept_loop(lsock)))

    async def _accept_loop(self, lsock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, peer = await loop.sock_accept(lsock)
            task = asyncio.ensure_future(self._accepted(conn, peer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _set_peers(self, peers: dict[int, tuple[str, int]]) -> None:
        for peer_id in [p for p in self._outbound if peers.get(p) != self._outbound[p][1]]:
            server, _ = self._outbound.pop(peer_id)
            server.close()
        for peer_id, address in peers.items():
            if peer_id in self._outbound:
                continue
            path = outbound_path(self.run_dir, peer_id)
            path.unlink(missing_ok=True)
            server = await asyncio.start_unix_server(
                functools.partial(self._outgoing, address=address), path=str(path))
            self._outbound[peer_id] = (server, address)

    async def _accepted(self, conn: socket.socket, peer: Any) -> None:
        assert self.server_tls is not None, "accepting TLS needs a server certificate"
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=CHUNK_BYTES)
        protocol = asyncio.StreamReaderProtocol(reader)
        liveness.tune(conn)
        try:
            transport, _ = await asyncio.wait_for(loop.connect_accepted_socket(
                lambda: protocol, conn, ssl=self.server_tls(),
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S), HANDSHAKE_TIMEOUT_S + 1)
        except (OSError, ssl.SSLError, TimeoutError) as err:
            conn.close()
            self._refuse(peer, f"TLS handshake failed: {err or type(err).__name__}")
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        why = self.check_peer(writer.get_extra_info("peercert"))
        if why is not None:
            writer.close()
            self._refuse(peer, why)
            return
        try:
            inner_r, inner_w = await asyncio.open_unix_connection(str(inbound_path(self.run_dir)))
        except OSError:
            writer.close()
            return
        await _join(reader, writer, inner_r, inner_w)

    async def _outgoing(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                        address: tuple[str, int]) -> None:
        # Ends quietly when the relay closes: asyncio's stream server logs a handler
        # that ends cancelled as an error.
        with contextlib.suppress(asyncio.CancelledError):
            await self._relay_out(reader, writer, address)

    async def _relay_out(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         address: tuple[str, int]) -> None:
        host, port = address
        try:
            outer_r, outer_w = await asyncio.wait_for(asyncio.open_connection(
                host, port, ssl=self.client_tls(), server_hostname=host,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S), HANDSHAKE_TIMEOUT_S)
        except (OSError, ssl.SSLError, TimeoutError) as err:
            # A member down is ordinary; a handshake refused is worth a line.
            if isinstance(err, ssl.SSLError):
                self.log.warning("peer TLS handshake failed", peer=f"{host}:{port}",
                                 error=str(err))
            writer.close()
            return
        liveness.tune(outer_w.get_extra_info("socket"))
        await _join(reader, writer, outer_r, outer_w)

    def _refuse(self, peer: Any, why: str) -> None:
        self.refused += 1
        self.log.warning("rejected peer connection", remote=str(peer), reason=why)

    async def _close(self) -> None:
        for server, _ in self._outbound.values():
            server.close()
        self._outbound.clear()
        for lsock in self._listening:
            lsock.close()
        # The connections being relayed end with the loop.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Host names were resolved in the loop's executor: its threads end here (the
        # supervisor forks after a join query through a relay).
        await asyncio.get_running_loop().shutdown_default_executor()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


async def _join(a_r: asyncio.StreamReader, a_w: asyncio.StreamWriter,
                b_r: asyncio.StreamReader, b_w: asyncio.StreamWriter) -> None:
    """Copy both ways until either side ends, then close both."""
    copies = [asyncio.ensure_future(_copy(a_r, b_w)), asyncio.ensure_future(_copy(b_r, a_w))]
    try:
        await asyncio.wait(copies, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in copies:
            task.cancel()
        for w in (a_w, b_w):
            w.close()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ssl.SSLError, asyncio.IncompleteReadError):
        while data := await reader.read(CHUNK_BYTES):
            writer.write(data)
            await writer.drain()
