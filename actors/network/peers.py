"""Raft traffic between this member and the others, over the bus's PeerTransport.

Out: a SEND batch from the raft actor is grouped by destination and leaves as one frame
per destination member, `["raft", [message_wire, ...]]`. Sends never block: a peer that
is down, slow or unknown costs a counted drop (Raft resends on its own).

In: frames drained from the ROUTER are checked (decodable Raft messages, addressed to
this member, sent by the member the connection belongs to) and everything that passes
goes to the raft actor as one PEER message per drain. A frame from the network that
fails a check is dropped and counted, never raised: a bad peer must not crash us.

Snapshots are NOT streamed yet. A SNAP message is sent as it is (its data is empty: the
state machine is the LMDB file, which would have to follow it) and the raft actor is
told at once that the snapshot failed (SNAPSHOT_STATUS [peer, False]), so the leader
keeps probing that follower instead of waiting on a stream that will never finish.
A follower that fell behind the leader's compacted log therefore cannot catch up until
snapshot streaming (member/snap/<index:016x>.snap.db, then APPLY_SNAPSHOT) is built.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from petcd.actors.bus.addresses import peer_address
from petcd.actors.bus.codec import CodecError, messages_from_wire
from petcd.actors.bus.peer import PeerTransport
from petcd.actors.protocol import Kind
from petcd.actors.raft.types import MessageType

FRAME_KIND = "raft"  # the envelope kind of Raft traffic between members
_TYPE, _SRC, _DST = 0, 1, 2  # positions in a message's wire array (bus/codec.py)


class PeerLink:
    def __init__(self, member_id: int, transport: PeerTransport,
                 to_raft: Callable[[str, Any], bool], log: Any) -> None:
        self.member_id = member_id
        self.transport = transport
        self.to_raft = to_raft  # (kind, payload) -> False if the raft inbox is full
        self.log = log
        self.dropped: Counter[str] = Counter()  # incoming messages refused, by reason

    # -- out -----------------------------------------------------------------------

    def send(self, payload: list[list[Any]]) -> None:
        """Route one SEND payload (messages_to_wire from the raft actor)."""
        by_dst: dict[int, list[list[Any]]] = {}
        snapshots: list[int] = []
        for wire in payload:
            dst = wire[_DST]
            by_dst.setdefault(dst, []).append(wire)
            if wire[_TYPE] == MessageType.SNAP:
                snapshots.append(dst)
        for dst, batch in by_dst.items():
            self.transport.send(dst, FRAME_KIND, batch)
        for dst in snapshots:
            self.log.warning("snapshot streaming is not implemented; reporting failure",
                             peer=f"{dst:x}")
            self.to_raft(Kind.SNAPSHOT_STATUS.value, [dst, False])

    # -- in ------------------------------------------------------------------------

    def receive(self, frames: Iterable[tuple[int, str, Any]]) -> int:
        """Forward the acceptable messages of drained frames to raft; how many."""
        accepted: list[Any] = []
        for src, kind, payload in frames:
            if kind != FRAME_KIND:
                self.dropped["kind"] += 1
                continue
            try:
                messages = messages_from_wire(payload)
            except CodecError:
                self.dropped["malformed"] += 1
                continue
            for wire, message in zip(payload, messages):
                if message.dst != self.member_id:
                    self.dropped["not for us"] += 1
                elif message.src != src:
                    self.dropped["spoofed source"] += 1
                else:
                    accepted.append(wire)
        if accepted and not self.to_raft(Kind.PEER.value, accepted):
            self.dropped["raft inbox full"] += len(accepted)
        return len(accepted)

    # -- membership ----------------------------------------------------------------

    def connect(self, peers: Iterable[tuple[int, tuple[str, ...]]]) -> None:
        """Be connected to these members (id, peer URLs), at their first peer URL.

        Adds and re-points connections only: a member missing from a table being
        built up (bootstrap conf changes applied one by one) keeps its connection.
        Members leave through `disconnect`.
        """
        for member_id, urls in peers:
            if member_id == self.member_id or not urls:
                continue
            try:
                self.transport.add_peer(member_id, peer_address(urls[0]))
            except ValueError as err:
                self.log.error("cannot reach member", peer=f"{member_id:x}", error=str(err))

    def disconnect(self, member_ids: Iterable[int]) -> None:
        """Close the connections to removed members."""
        for member_id in member_ids:
            if member_id in self.transport.peers:
                self.transport.remove_peer(member_id)
