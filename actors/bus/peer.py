"""Member-to-member transport: ZeroMQ ROUTER in, DEALERs out to each remote member.

    member 1                                            member 2
    raft DEALER (00..01 00)     ──tcp──────────────►  ROUTER bound on member 2's
    snapshot DEALER (00..01 01) ──tcp──────────────►  peer URL (its raft actor)
    ROUTER bound on member 1's peer URL ◄──tcp──────  DEALERs of member 2

Each member binds one ROUTER on its own peer address (`PeerTransport`, in the raft
actor) and connects DEALERs to every other member's: one per channel (`PeerDealers`):
the raft actor's for Raft messages, the network actor's for snapshot streams. A
DEALER's identity is its member id (8 bytes, big-endian) and its channel (1 byte), so
the receiving ROUTER knows who sent each frame without trusting the payload, and the
two channels of one member are two connections, neither taking over the other's.
Traffic in each direction has its own connections; the ROUTER sends only one kind of
frame, the answer to a starting member's JOIN_QUERY.

A frame is one envelope, `[kind, payload]` (see envelope.py); for Raft traffic the
payload is every message for that destination from one Ready, as codec arrays
(`send_messages`), so a batch costs one frame per peer.

Never blocking the sender (Raft retries by itself; a slow or dead peer must not delay
heartbeats to the others):
- every send is NOBLOCK; a full queue or an unknown peer is a counted drop (`dropped`);
- DEALERs use ZMQ_IMMEDIATE: nothing queues for a peer that is not connected, so a
  peer coming back is not flooded with stale appends;
- queues are bounded by `hwm_msgs` frames and each frame by `max_frame_bytes` (a
  larger incoming frame makes ZeroMQ drop that connection);
- TCP keepalive and TCP_USER_TIMEOUT close a connection silent or unacknowledged for
  a few seconds (half-open after a partition: liveness.py says why not ZMTP
  heartbeats) and DEALERs reconnect every `reconnect_ivl_ms`;
- ROUTER_HANDOVER: a restarted member reconnecting with the same identity takes over
  from its old, possibly half-open, connection instead of being refused.

The receiver gets `(src_member_id, kind, payload)`; the kind says what the frame is,
the channel only keeps connections apart. A frame with a bad identity or a
bad envelope is dropped and counted (`malformed`), never raised: it comes from the
network. The Raft actor should still check that a message's `src` matches the sender.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import zmq

from petcd.actors.raft.types import Message

from . import liveness
from .addresses import peer_address
from .codec import message_to_wire
from .envelope import EnvelopeError, pack_envelope, unpack_envelope
from .sockets import (DEFAULT_HWM_MSGS, check_drain_args, process_context, take_frames,
                      wait_readable)

ID_BYTES = 8
IDENTITY_BYTES = ID_BYTES + 1  # the member id, then the channel
MAX_MEMBER_ID = 2**64 - 1
DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024


def _ipv4_host(address: str) -> bool:
    host = address.rpartition("//")[2].rpartition(":")[0]
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


class Channel(enum.IntEnum):
    """Which process of a member a DEALER belongs to."""
    RAFT = 0
    SNAPSHOT = 1
    # A member starting up (nodes/join.py), under a random id, asks who is in the
    # cluster: the only traffic a ROUTER answers (`PeerTransport.reply`).
    JOIN = 2


JOIN_QUERY, JOIN_ANSWER = "members?", "members"


_CHANNELS = frozenset(Channel)


def identity(member_id: int, channel: Channel = Channel.RAFT) -> bytes:
    """The ZeroMQ routing identity of a member's DEALER: its id as 8 big-endian bytes,
    then the channel."""
    if not 0 < member_id <= MAX_MEMBER_ID:
        raise ValueError(f"member id {member_id} is not a positive 64-bit integer")
    return member_id.to_bytes(ID_BYTES, "big") + bytes([channel])


def member_of(routing_id: bytes) -> int | None:
    """The member id of a routing identity; None if it is not one of ours."""
    if len(routing_id) != IDENTITY_BYTES or routing_id[ID_BYTES] not in _CHANNELS:
        return None
    member_id = int.from_bytes(routing_id[:ID_BYTES], "big")
    return member_id or None


class PeerDealers:
    """One DEALER to each other member, on one channel: sending only, never blocking.
    Not thread-safe; one per process and channel."""

    def __init__(self, member_id: int, peers: Mapping[int, str] | None = None, *,
                 channel: Channel = Channel.RAFT,
                 ctx: zmq.Context[Any] | None = None,
                 hwm_msgs: int = DEFAULT_HWM_MSGS,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 linger_ms: int = 0, reconnect_ivl_ms: int = 100,
                 route: Callable[[int, str], str] = lambda peer_id, url: peer_address(url)
                 ) -> None:
        assert hwm_msgs > 0 and max_frame_bytes > 0, "every queue and frame is bounded"
        self.member_id = member_id
        self.route = route  # (member id, peer URL) -> where to connect (peertls.dealer_route)
        self._identity = identity(member_id, channel)
        self._ctx = ctx or process_context()
        self._options = {
            zmq.SNDHWM: hwm_msgs, zmq.RCVHWM: hwm_msgs, zmq.LINGER: linger_ms,
            zmq.MAXMSGSIZE: max_frame_bytes, zmq.IPV6: 1,  # v6 peers; v4 still works
            **liveness.zmq_options(),
        }
        self._reconnect_ivl_ms = reconnect_ivl_ms
        self._dealers: dict[int, zmq.Socket[bytes]] = {}
        self._peer_addresses: dict[int, str] = {}
        self.sent: Counter[int] = Counter()
        self.dropped: Counter[int] = Counter()
        for peer_id, address in (peers or {}).items():
            self.add_peer(peer_id, address)

    def _configure(self, sock: zmq.Socket[bytes]) -> None:
        for option, value in self._options.items():
            sock.setsockopt(option, value)

    # --- membership ---------------------------------------------------------------

    @property
    def peers(self) -> dict[int, str]:
        return dict(self._peer_addresses)

    def add_peer(self, peer_id: int, address: str) -> None:
        """Connect to a member (again, if its address changed)."""
        if peer_id == self.member_id:
            raise ValueError("a member does not connect to itself")
        identity(peer_id)  # validates the id
        if self._peer_addresses.get(peer_id) == address:
            return
        self.remove_peer(peer_id)
        dealer = self._ctx.socket(zmq.DEALER)
        try:
            self._configure(dealer)
            dealer.setsockopt(zmq.IDENTITY, self._identity)
            dealer.setsockopt(zmq.IMMEDIATE, 1)
            dealer.setsockopt(zmq.RECONNECT_IVL, self._reconnect_ivl_ms)
            dealer.connect(address)
        except BaseException:
            dealer.close(linger=0)
            raise
        self._dealers[peer_id] = dealer
        self._peer_addresses[peer_id] = address

    def connect_urls(self, peers: Iterable[tuple[int, Sequence[str]]]) -> dict[int, str]:
        """Be connected to these members (id, peer URLs), at their first peer URL;
        what cannot be reached, by member id, with the reason.

        Adds and re-points connections only: a member missing from a table being built
        up (bootstrap conf changes applied one by one) keeps its connection. Members
        leave through `remove_peer`.
        """
        errors: dict[int, str] = {}
        for peer_id, urls in peers:
            if peer_id == self.member_id or not urls:
                continue
            try:
                self.add_peer(peer_id, self.route(peer_id, urls[0]))
            except ValueError as err:
                errors[peer_id] = str(err)
        return errors

    def remove_peer(self, peer_id: int) -> None:
        dealer = self._dealers.pop(peer_id, None)
        self._peer_addresses.pop(peer_id, None)
        if dealer is not None:
            dealer.close()

    def dealer(self, peer_id: int) -> zmq.Socket[bytes]:
        return self._dealers[peer_id]

    # --- sending ------------------------------------------------------------------

    def send(self, peer_id: int, kind: str, payload: Any = None) -> bool:
        """Send one `[kind, payload]` frame to a member without waiting. False, and a
        drop counted, if the peer is unknown, not connected, or its queue is full."""
        return self.send_frame(peer_id, pack_envelope(kind, payload))

    def send_frame(self, peer_id: int, frame: bytes) -> bool:
        dealer = self._dealers.get(peer_id)
        if dealer is not None:
            try:
                dealer.send(frame, zmq.NOBLOCK)
                self.sent[peer_id] += 1
                return True
            except zmq.Again:
                pass
        self.dropped[peer_id] += 1
        return False

    def send_messages(self, kind: str, messages: Iterable[Message]) -> dict[int, bool]:
        """Send Raft messages grouped by destination, one frame per destination whose
        payload is the list of their codec arrays (`codec.messages_from_wire` reads
        it). Returns, per destination, whether its frame left."""
        by_dst: dict[int, list[list[Any]]] = {}
        for m in messages:
            by_dst.setdefault(m.dst, []).append(message_to_wire(m))
        return {dst: self.send(dst, kind, batch) for dst, batch in by_dst.items()}

    # --- lifetime -----------------------------------------------------------------

    def close(self) -> None:
        for peer_id in list(self._dealers):
            self.remove_peer(peer_id)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class PeerTransport(PeerDealers):
    """This member's ROUTER on its peer address, and its DEALERs of one channel."""

    def __init__(self, member_id: int, listen_address: str,
                 peers: Mapping[int, str] | None = None, **options: Any) -> None:
        super().__init__(member_id, **options)
        self.router = self._ctx.socket(zmq.ROUTER)
        try:
            self._configure(self.router)
            self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)
            # Bound on an IPv4 literal, a v4-only socket reports a plain endpoint
            # (tcp://127.0.0.1:2380, not tcp://[::ffff:127.0.0.1]:2380).
            self.router.setsockopt(zmq.IPV6, 0 if _ipv4_host(listen_address) else 1)
            self.router.bind(listen_address)
        except BaseException:
            self.router.close(linger=0)
            super().close()
            raise
        self.listen_address: str = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.malformed = 0
        for peer_id, address in (peers or {}).items():
            self.add_peer(peer_id, address)

    # --- receiving ----------------------------------------------------------------

    def drain(self, max_items: int, timeout_ms: int) -> list[tuple[int, str, Any]]:
        """Wait up to `timeout_ms` for a first frame, then take what else is queued
        without waiting, up to `max_items`: `(src_member_id, kind, payload)` each."""
        check_drain_args(max_items, timeout_ms)
        if not wait_readable(self.router, timeout_ms):
            return []
        return self.take(max_items)

    def take(self, max_items: int) -> list[tuple[int, str, Any]]:
        batch: list[tuple[int, str, Any]] = []
        for parts in take_frames(self.router, max_items, multipart=True):
            item = self._parse(parts)
            if item is None:
                self.malformed += 1
            else:
                batch.append(item)
        return batch

    @staticmethod
    def _parse(parts: list[bytes]) -> tuple[int, str, Any] | None:
        if len(parts) != 2:
            return None
        src = member_of(parts[0])
        if src is None:
            return None
        try:
            kind, payload = unpack_envelope(parts[1], strict_map_key=True)
        except EnvelopeError:
            return None
        return src, kind, payload

    def reply(self, member_id: int, channel: Channel, kind: str, payload: Any) -> bool:
        """Answer the DEALER (member_id, channel) on its own connection, without
        waiting; False if it is gone or its queue is full."""
        try:
            self.router.send_multipart([identity(member_id, channel),
                                        pack_envelope(kind, payload)], zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def close(self) -> None:
        super().close()
        self.router.close()

