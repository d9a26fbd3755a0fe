"""The raft actor's links to the other members: Raft messages straight over TCP.

Out: the core's messages, grouped by destination, leave as one `["raft", [wire, ...]]`
frame per member and flush (the bus's PeerTransport, channel RAFT). Sends never block:
a peer that is down, slow or unknown costs a counted drop, and Raft resends. A SNAP
message does not travel here: its snapshot is the LMDB store, which the network actor
streams (actors/network/snapshots.py), so `send` hands SNAPs back to the caller.

In: frames drained from this member's ROUTER. A JOIN_QUERY from a starting member is
answered at once with the cluster's members (nodes/join.py). A "raft" frame is checked (decodable
messages, addressed to this member, sent by the member the connection belongs to) and
its messages come back to be stepped; any other frame belongs to a snapshot stream
(sent by a peer's network actor) and comes back to be handed to ours, which checks
it. A frame that fails a check is dropped and counted, never raised: a bad peer must
not crash us.

Why the raft actor and not the network actor holds these links (DESIGN.md draws peer
traffic through the network actor): every write crossed raft->network and
network->raft on the leader and on each follower of its quorum; straight from here a
put takes four process hops fewer, and the network actor's CPU goes to clients. The
sends are non-blocking ZeroMQ, so the raft actor still never waits on a peer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import zmq

from petcd.actors.bus.addresses import peer_address
from petcd.actors.bus.codec import CodecError, messages_from_wire
from petcd.actors.bus.peer import JOIN_ANSWER, JOIN_QUERY, Channel, PeerTransport
from petcd.actors.bus.addresses import peer_host_port
from petcd.actors.bus.tlsrelay import TlsRelay
from petcd.actors.raft.types import Message, MessageType

FRAME_KIND = "raft"  # the envelope kind of Raft traffic between members


class ListenError(Exception):
    """The peer URLs cannot be bound (in use, not an address of this host...)."""


def listen(member_id: int, peer_urls: Sequence[str], relayed_at: str | None = None,
           **options: Any) -> PeerTransport:
    """This member's ROUTER, bound on every --listen-peer-urls, or only at `relayed_at`
    when peer TLS is on (the relay listens on the URLs: actors/bus/peertls.py)."""
    try:
        addresses = [relayed_at] if relayed_at else [peer_address(url) for url in peer_urls]
        transport = PeerTransport(member_id, addresses[0], **options)
    except (ValueError, zmq.ZMQError) as err:
        raise ListenError(f"cannot listen for peers: {err}") from None
    for extra in addresses[1:]:
        try:
            transport.router.bind(extra)
        except zmq.ZMQError as err:
            transport.close()
            raise ListenError(f"cannot listen for peers on {extra}: {err}") from None
    return transport


class RaftPeers:
    def __init__(self, member_id: int, transport: PeerTransport,
                 relay: TlsRelay | None = None) -> None:
        self.member_id = member_id
        self.transport = transport
        self.relay = relay  # peer TLS: every peer socket goes through it
        self.dropped: Counter[str] = Counter()  # incoming messages refused, by reason
        # What a starting member asking JOIN_QUERY is told (nodes/join.py):
        # [cluster_id, [[member_id, [peer_url...]], ...], [removed_id...]]
        self.cluster_answer: list[Any] = []

    def send(self, messages: Iterable[Message]) -> list[Message]:
        """Send every message but SNAPs, one frame per destination; the SNAPs."""
        snaps: list[Message] = []
        others: list[Message] = []
        for m in messages:
            (snaps if m.type == MessageType.SNAP else others).append(m)
        if others:
            self.transport.send_messages(FRAME_KIND, others)
        return snaps

    def receive(self, frames: Iterable[tuple[int, str, Any]]
                ) -> tuple[list[Message], list[list[Any]]]:
        """The acceptable Raft messages of drained frames, and the other frames as
        `[src, kind, payload]` for the network actor."""
        accepted: list[Message] = []
        others: list[list[Any]] = []
        for src, kind, payload in frames:
            if kind == JOIN_QUERY:
                if self.cluster_answer:
                    self.transport.reply(src, Channel.JOIN, JOIN_ANSWER, self.cluster_answer)
                continue
            if kind != FRAME_KIND:
                others.append([src, kind, payload])
                continue
            try:
                messages = messages_from_wire(payload)
            except CodecError:
                self.dropped["malformed"] += 1
                continue
            for message in messages:
                if message.dst != self.member_id:
                    self.dropped["not for us"] += 1
                elif message.src != src:
                    self.dropped["spoofed source"] += 1
                else:
                    accepted.append(message)
        return accepted, others

    def connect(self, peers: Iterable[tuple[int, Sequence[str]]]) -> dict[int, str]:
        """Be connected to these members (id, peer URLs); what cannot be reached, with
        the reason (PeerDealers.connect_urls). The relay, if any, follows them."""
        peers = [(m, urls) for m, urls in peers if urls]
        errors = self.transport.connect_urls(peers)
        if self.relay is not None:
            self.relay.set_peers({m: peer_host_port(urls[0]) for m, urls in peers
                                  if m != self.member_id and m not in errors})
        return errors

    def close(self) -> None:
        self.transport.close()
        if self.relay is not None:
            self.relay.close()
