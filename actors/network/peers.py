"""The network actor's part of the peer links: snapshot streams.

Raft messages go between the members' raft actors directly (actors/raft/peers.py).
What stays here is what reads or writes the store: a SNAP message from the raft actor
(SEND_SNAPSHOT) goes to `snapshots` (snapshots.py), which streams a copy of the store
to the peer in snap_* frames over this actor's own DEALERs (bus/peer.py, channel
SNAPSHOT) and delivers the SNAP message to the peer's raft actor once the copy is
durable there. snap_* frames arriving on the member's peer ROUTER reach us through the
raft actor (PEER_FRAMES). Without a `snapshots` (tests of this module alone), a SNAP
is dropped and the raft actor told at once that the snapshot failed
(SNAPSHOT_STATUS [peer, False]). A frame of any other kind is dropped and counted,
never raised: it comes from the network.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from petcd.actors.bus.peer import PeerDealers
from petcd.actors.protocol import Kind

from . import snapframes
from .snapshots import SnapshotStreams

_DST, _SNAPSHOT = 2, 11  # positions in a message's wire array (bus/codec)


class PeerLink:
    def __init__(self, member_id: int, dealers: PeerDealers,
                 to_raft: Callable[[str, Any], bool], log: Any) -> None:
        self.member_id = member_id
        self.dealers = dealers
        self.to_raft = to_raft  # (kind, payload) -> False if the raft inbox is full
        self.log = log
        self.dropped: Counter[str] = Counter()  # incoming frames refused, by reason
        self.snapshots: SnapshotStreams | None = None

    def send_snapshots(self, payload: list[list[Any]]) -> None:
        """Stream each SNAP of a SEND_SNAPSHOT payload (messages_to_wire)."""
        for wire in payload:
            dst = wire[_DST]
            if self.snapshots is not None and wire[_SNAPSHOT] is not None:
                self.snapshots.send(dst, wire)
                continue
            self.log.warning("cannot stream this snapshot; reporting failure", peer=f"{dst:x}",
                             reason="no snapshot streams" if self.snapshots is None
                             else "SNAP without a snapshot")
            self.to_raft(Kind.SNAPSHOT_STATUS.value, [dst, False])

    def receive(self, frames: Iterable[list[Any]]) -> None:
        """Hand the snap_* frames of a PEER_FRAMES payload to the streams."""
        for src, kind, payload in frames:
            if kind in snapframes.KINDS and self.snapshots is not None:
                self.snapshots.on_frame(src, kind, payload)
            else:
                self.dropped["kind"] += 1

    def connect(self, peers: Iterable[tuple[int, tuple[str, ...]]]) -> None:
        """Be connected to these members (id, peer URLs); see PeerDealers.connect_urls."""
        for member_id, error in self.dealers.connect_urls(peers).items():
            self.log.error("cannot reach member", peer=f"{member_id:x}", error=error)

    def disconnect(self, member_ids: Iterable[int]) -> None:
        """Close the connections to removed members."""
        for member_id in member_ids:
            self.dealers.remove_peer(member_id)
