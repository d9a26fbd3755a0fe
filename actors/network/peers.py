"""Raft traffic between this member and the others, over the bus's PeerTransport.

Out: a SEND batch from the raft actor is grouped by destination and leaves as one frame
per destination member, `["raft", [message_wire, ...]]`. Sends never block: a peer that
is down, slow or unknown costs a counted drop (Raft resends on its own).

In: frames drained from the ROUTER are checked (decodable Raft messages, addressed to
this member, sent by the member the connection belongs to) and everything that passes
goes to the raft actor as one PEER message per drain. A frame from the network that
fails a check is dropped and counted, never raised: a bad peer must not crash us.

Snapshots: a SNAP message does not travel in a "raft" frame. Its snapshot is the
LMDB store, so it goes to `snapshots` (snapshots.py), which streams a copy of the store
in snap_* frames and delivers the SNAP message to the peer's raft actor once the copy
is durable there; snap_* frames that arrive go to `snapshots` too. Without a
`snapshots` (tests of this module alone), the SNAP message is dropped and the raft
actor told at once that the snapshot failed (SNAPSHOT_STATUS [peer, False]).
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

from . import snapframes
from .snapshots import SnapshotStreams

FRAME_KIND = "raft"  # the envelope kind of Raft traffic between members
_TYPE, _SRC, _DST, _SNAPSHOT = 0, 1, 2, 11  # positions in a message's wire array (bus/codec)


class PeerLink:
    def __init__(self, member_id: int, transport: PeerTransport,
                 to_raft: Callable[[str, Any], bool], log: Any) -> None:
        self.member_id = member_id
        self.transport = transport
        self.to_raft = to_raft  # (kind, payload) -> False if the raft inbox is full
        self.log = log
        self.dropped: Counter[str] = Counter()  # incoming messages refused, by reason
        self.snapshots: SnapshotStreams | None = None

    # -- out -----------------------------------------------------------------------

    def send(self, payload: list[list[Any]]) -> None:
        """Route one SEND payload (messages_to_wire from the raft actor)."""
        by_dst: dict[int, list[list[Any]]] = {}
        for wire in payload:
            dst = wire[_DST]
            if wire[_TYPE] == MessageType.SNAP:
                self._send_snapshot(dst, wire)
            else:
                by_dst.setdefault(dst, []).append(wire)
        for dst, batch in by_dst.items():
            self.transport.send(dst, FRAME_KIND, batch)

    def _send_snapshot(self, dst: int, wire: list[Any]) -> None:
        if self.snapshots is not None and wire[_SNAPSHOT] is not None:
            self.snapshots.send(dst, wire)
            return
        self.log.warning("cannot stream this snapshot; reporting failure", peer=f"{dst:x}",
                         reason="no snapshot streams" if self.snapshots is None
                         else "SNAP without a snapshot")
        self.to_raft(Kind.SNAPSHOT_STATUS.value, [dst, False])

    # -- in ------------------------------------------------------------------------

    def receive(self, frames: Iterable[tuple[int, str, Any]]) -> int:
        """Forward the acceptable messages of drained frames to raft; how many."""
        accepted: list[Any] = []
        for src, kind, payload in frames:
            if kind != FRAME_KIND:
                if kind in snapframes.KINDS and self.snapshots is not None:
                    self.snapshots.on_frame(src, kind, payload)
                else:
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
