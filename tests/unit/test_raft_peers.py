"""The raft actor's peer links (actors/raft/peers.py) over real TCP on loopback: what
leaves in one frame per member, what is stepped, what goes to the network actor, and
what a bad peer's frames cost (a count, never an exception)."""

from __future__ import annotations

import socket
import time

import pytest

from petcd.actors.bus import codec
from petcd.actors.bus.peer import Channel, PeerDealers, PeerTransport
from petcd.actors.raft.peers import ListenError, RaftPeers, listen
from petcd.actors.raft.types import Message, MessageType, Snapshot
from petcd.storage.raftstate import ConfState, Entry, SnapshotMeta

ME, OTHER, THIRD = 0x11, 0x22, 0x33
WAIT_S = 5.0


def drain(transport: PeerTransport, count: int) -> list[tuple[int, str, object]]:
    got: list[tuple[int, str, object]] = []
    deadline = time.monotonic() + WAIT_S
    while len(got) < count and time.monotonic() < deadline:
        got += transport.drain(100, 50)
    return got


def send_until_connected(sender: PeerDealers, dst: int, kind: str, payload: object) -> None:
    deadline = time.monotonic() + WAIT_S
    while not sender.send(dst, kind, payload):
        assert time.monotonic() < deadline, "never connected"
        time.sleep(0.01)


@pytest.fixture
def link():
    mine = listen(ME, ["http://127.0.0.1:0"])
    other = PeerTransport(OTHER, "tcp://127.0.0.1:*", {ME: mine.listen_address})
    mine.add_peer(OTHER, other.listen_address)
    peers = RaftPeers(ME, mine)
    yield peers, other
    peers.close()
    other.close()


def test_messages_leave_in_one_frame_per_member_and_snaps_come_back(link):
    peers, other = link
    send_until_connected(peers.transport, OTHER, "probe", None)
    drain(other, 1)
    snap = Message(MessageType.SNAP, ME, OTHER, 2, snapshot=Snapshot(
        SnapshotMeta(9, 2, ConfState(frozenset({ME, OTHER}))), b""))
    out = [Message(MessageType.APP, ME, OTHER, 2, entries=(Entry(2, 10),)), snap,
           Message(MessageType.HEARTBEAT, ME, OTHER, 2, commit=9),
           Message(MessageType.HEARTBEAT, ME, THIRD, 2)]  # not connected: dropped
    assert peers.send(out) == [snap]
    [(src, kind, payload)] = drain(other, 1)
    assert (src, kind) == (ME, "raft")
    assert codec.messages_from_wire(payload) == [out[0], out[2]]
    assert peers.transport.dropped[THIRD] == 1


def test_raft_frames_are_checked_and_snapshot_frames_go_on(link):
    peers, other = link
    good = Message(MessageType.APP_RESP, OTHER, ME, 2, index=10)
    not_for_us = Message(MessageType.HEARTBEAT_RESP, OTHER, THIRD, 2)
    spoofed = Message(MessageType.HEARTBEAT_RESP, THIRD, ME, 2)
    wires = codec.messages_to_wire([good, not_for_us, spoofed])
    send_until_connected(other, ME, "raft", wires)
    other.send(ME, "raft", [["not", "a", "message"]])
    snapshots = PeerDealers(OTHER, {ME: peers.transport.listen_address},
                            channel=Channel.SNAPSHOT)
    try:
        send_until_connected(snapshots, ME, "snap_ack", [1, 0, None])
        frames = drain(peers.transport, 3)
    finally:
        snapshots.close()
    accepted, others = peers.receive(frames)
    assert accepted == [good]
    assert others == [[OTHER, "snap_ack", [1, 0, None]]]
    assert peers.dropped == {"not for us": 1, "spoofed source": 1, "malformed": 1}


def test_listen_refuses_a_port_in_use_and_a_bad_url_with_a_clear_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ListenError, match="cannot listen for peers: .*in use"):
            listen(ME, [f"http://127.0.0.1:{port}"])
        with pytest.raises(ListenError, match=f"cannot listen for peers on tcp://127.0.0.1:{port}"):
            listen(ME, ["http://127.0.0.1:0", f"http://127.0.0.1:{port}"])
    with pytest.raises(ListenError, match="cannot listen for peers"):
        listen(ME, ["unix:///tmp/x"])
