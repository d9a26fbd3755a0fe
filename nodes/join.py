"""Asking a running cluster who is in it, over the peer URLs (etcd's GET /members on
a peer URL, which a member joining with --initial-cluster-state existing makes).

The supervisor asks before it forks any actor: it opens a ZeroMQ DEALER under a random
id on the JOIN channel to each peer URL it was given, sends JOIN_QUERY, and takes the
first answer (a member's raft actor answers from the member table it follows,
actors/raft/peers.py). Its own ZeroMQ context is terminated before it returns: the
actors are forked after this, and must not inherit a context's threads.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from petcd.actors.bus.addresses import peer_address
from petcd.actors.bus.envelope import EnvelopeError, pack_envelope, unpack_envelope
from petcd.actors.bus.peer import JOIN_ANSWER, JOIN_QUERY, Channel, identity
from petcd.actors.bus.addresses import peer_host_port
from petcd.actors.bus.tlsrelay import ContextSource, TlsRelay, outbound_path

ASK_AGAIN_S = 0.5  # a member may be starting: ask every peer again this often


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What a running member says the cluster is."""

    cluster_id: int
    members: tuple[tuple[int, tuple[str, ...]], ...]  # (member id, peer URLs)
    removed: frozenset[int]

    def member_with_urls(self, urls: Sequence[str]) -> int | None:
        """The id of the member whose peer URLs are exactly these."""
        wanted = sorted(urls)
        return next((m for m, us in self.members if sorted(us) == wanted), None)


def ask_members(peer_urls: Sequence[str], timeout_s: float,
                accept: Callable[[ClusterView], bool] = lambda view: True,
                relay: Relayed | None = None) -> ClusterView | None:
    """The first answer of any member at these peer URLs within `timeout_s` that
    `accept`s (a member that has not applied the latest MemberAdd yet answers without
    it: ask again); at the deadline the last answer, None if none answered (all down,
    or not petcd members). With peer TLS, through a relay (`Relayed`) stopped before
    this returns."""
    if not peer_urls:
        return None
    if relay is None:
        addresses = [peer_address(u) for u in peer_urls]
    else:  # stand-in member ids 1, 2, ... for the relay's sockets
        addresses = list(relay.start({n: peer_host_port(u)
                                      for n, u in enumerate(peer_urls, 1)}).values())
    context: zmq.Context[Any] = zmq.Context()
    try:
        sockets = [_dealer(context, address) for address in addresses]
        poller = zmq.Poller()
        for sock in sockets:
            poller.register(sock, zmq.POLLIN)
        deadline = time.monotonic() + timeout_s
        asked_at = -ASK_AGAIN_S
        last: ClusterView | None = None
        while (now := time.monotonic()) < deadline:
            if now - asked_at >= ASK_AGAIN_S:
                asked_at = now
                for sock in sockets:
                    _send(sock)
            wait_ms = max(1, int(1000 * min(deadline - now, ASK_AGAIN_S)))
            for sock, _ in poller.poll(wait_ms):
                view = _read(sock)
                if view is not None:
                    if accept(view):
                        return view
                    last = view
        return last
    finally:
        context.destroy(linger=0)
        if relay is not None:
            relay.stop()


@dataclass
class Relayed:
    """The join query through a TLS relay (actors/bus/tlsrelay.py), for a member whose
    peer URLs are https: its own run dir for the relay's sockets, its client TLS."""

    run_dir: Path
    client_tls: ContextSource
    log: Any
    _relay: TlsRelay | None = None

    def start(self, peers: dict[int, tuple[str, int]]) -> dict[int, str]:
        """Relay to these (stand-in id -> host, port); where to connect for each."""
        self._relay = TlsRelay(self.run_dir, self.client_tls, self.log)
        self._relay.start()
        self._relay.set_peers(peers)
        return {n: f"ipc://{outbound_path(self.run_dir, n)}" for n in peers}

    def stop(self) -> None:
        if self._relay is not None:
            self._relay.close()
            self._relay = None


def _dealer(context: zmq.Context[Any], address: str) -> zmq.Socket[bytes]:
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity(random.randrange(1, 2**63), Channel.JOIN))
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IMMEDIATE, 1)  # nothing queues for a peer that is not there
    sock.setsockopt(zmq.IPV6, 1)
    sock.connect(address)
    return sock


def _send(sock: zmq.Socket[bytes]) -> None:
    try:
        sock.send(pack_envelope(JOIN_QUERY, None), zmq.NOBLOCK)
    except zmq.Again:
        pass  # not connected yet: asked again later


def _read(sock: zmq.Socket[bytes]) -> ClusterView | None:
    try:
        kind, payload = unpack_envelope(sock.recv(zmq.NOBLOCK), strict_map_key=True)
        if kind != JOIN_ANSWER:
            return None
        cluster_id, members, removed = payload
        return ClusterView(int(cluster_id),
                           tuple((int(m), tuple(str(u) for u in urls)) for m, urls in members),
                           frozenset(int(r) for r in removed))
    except (zmq.Again, EnvelopeError, ValueError, TypeError):
        return None  # not an answer we can use: wait for another
