"""The peer transport over real TCP on 127.0.0.1: batches of Raft messages between two
member processes, senders that never block on a slow or dead peer, and identities that
survive a reconnect."""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback

import pytest
import zmq

from petcd.actors.bus import codec, liveness
from petcd.actors.bus.envelope import pack_envelope
from petcd.actors.bus.peer import Channel, PeerDealers, PeerTransport, identity, member_of
from petcd.actors.bus.sockets import process_context
from petcd.actors.raft.types import Message, MessageType, Snapshot
from petcd.storage.raftstate import ConfState, Entry, EntryType, SnapshotMeta

from tests.ports import free_port
from tests.tcpopts import connections_on

SPAWN = multiprocessing.get_context("spawn")


def tcp(port: int) -> str:
    return f"tcp://127.0.0.1:{port}"


def send_until_connected(transport: PeerTransport, peer_id: int, kind: str,
                         payload: object, timeout_s: float = 5.0) -> None:
    """The first frames drop until the TCP connection is up (ZMQ_IMMEDIATE): retry,
    as Raft does."""
    deadline = time.monotonic() + timeout_s
    while not transport.send(peer_id, kind, payload):
        assert time.monotonic() < deadline, "peer never connected"
        time.sleep(0.01)


def drain_until(transport: PeerTransport, count: int,
                timeout_s: float = 5.0) -> list[tuple[int, str, object]]:
    got: list[tuple[int, str, object]] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        got += transport.drain(1000, 100)
    return got


def appends(src: int, dst: int, first: int, n: int) -> list[Message]:
    entries = tuple(Entry(2, first + i, EntryType.NORMAL, bytes([i % 256]) * 100)
                    for i in range(n))
    return [Message(MessageType.APP, src, dst, term=2, log_term=2, index=first - 1,
                    entries=entries, commit=first - 1),
            Message(MessageType.HEARTBEAT, src, dst, term=2, commit=first - 1,
                    context=b"hb")]


def test_identity_is_the_member_id_in_8_big_endian_bytes_then_the_channel():
    assert identity(1) == b"\x00" * 7 + b"\x01" + b"\x00"
    assert identity(0x8E9E05C52164694D, Channel.SNAPSHOT) == bytes.fromhex("8e9e05c52164694d01")
    assert member_of(identity(2**64 - 1)) == 2**64 - 1
    assert member_of(identity(5, Channel.SNAPSHOT)) == 5
    for bad in (b"\x00\x01", b"\x00" * 9, b"\x00" * 7 + b"\x01", b"\x00" * 8 + b"\x01\x07"):
        assert member_of(bad) is None
    assert member_of(b"\x00" * 8 + b"\x02") is None  # no such channel
    for bad in (0, -1, 2**64):
        with pytest.raises(ValueError):
            identity(bad)


# --- two member processes ----------------------------------------------------------------

def follower(my_port: int, leader_port: int, errors: multiprocessing.Queue) -> None:
    """Member 2: answers every append batch from member 1 with one APP_RESP batch."""
    try:
        with PeerTransport(2, tcp(my_port), {1: tcp(leader_port)}) as transport:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                for src, kind, payload in transport.drain(100, 100):
                    if kind == "stop":
                        return
                    assert src == 1 and kind == "raft"
                    batch = codec.messages_from_wire(payload)
                    assert [m.src for m in batch] == [1] * len(batch)
                    last = batch[0].entries[-1].index
                    expected = appends(1, 2, batch[0].index + 1, len(batch[0].entries))
                    ok = batch == expected
                    reply = Message(MessageType.APP_RESP, 2, 1, term=2, index=last,
                                    reject=not ok)
                    send_until_connected(transport, 1, "raft",
                                         codec.messages_to_wire([reply]))
            raise AssertionError("follower timed out")
    except BaseException:
        errors.put(traceback.format_exc())
        raise


def test_raft_batches_between_two_member_processes_over_tcp():
    leader_port, follower_port = free_port(), free_port()
    errors = SPAWN.Queue()
    child = SPAWN.Process(target=follower, args=(follower_port, leader_port, errors))
    child.start()
    try:
        with PeerTransport(1, tcp(leader_port), {2: tcp(follower_port)}) as transport:
            batch = appends(1, 2, 1, 1)
            send_until_connected(transport, 2, "raft", codec.messages_to_wire(batch),
                                 timeout_s=10)
            first = 1
            for n in (1, 10, 1000):  # the last: 1,000 entries of 100 bytes in one frame
                if first > 1:
                    batch = appends(1, 2, first, n)  # append + heartbeat: one frame
                    assert transport.send_messages("raft", batch) == {2: True}
                [(src, kind, payload)] = drain_until(transport, 1, timeout_s=10)
                [reply] = codec.messages_from_wire(payload)
                assert (src, kind) == (2, "raft")
                assert reply == Message(MessageType.APP_RESP, 2, 1, term=2,
                                        index=first + n - 1, reject=False)
                first += n
            assert transport.send(2, "stop")
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    try:
        raise AssertionError(errors.get(timeout=0.5))
    except queue.Empty:
        pass
    assert child.exitcode == 0


# --- one process: two transports on loopback -----------------------------------------

@pytest.fixture
def pair():
    a = PeerTransport(1, "tcp://127.0.0.1:*")
    b = PeerTransport(2, "tcp://127.0.0.1:*", {1: a.listen_address})
    a.add_peer(2, b.listen_address)
    yield a, b
    a.close()
    b.close()


def test_listen_address_reports_the_bound_port(pair):
    a, b = pair
    assert a.listen_address.startswith("tcp://127.0.0.1:")
    assert a.listen_address != b.listen_address
    assert b.peers == {1: a.listen_address}


def test_one_frame_per_destination_carries_all_its_messages(pair):
    a, b = pair
    c = PeerTransport(3, "tcp://127.0.0.1:*", {1: a.listen_address})
    try:
        a.add_peer(3, c.listen_address)
        send_until_connected(a, 2, "probe", None)
        send_until_connected(a, 3, "probe", None)
        drain_until(b, 1)
        drain_until(c, 1)
        snap = Snapshot(SnapshotMeta(9, 2, ConfState(frozenset({1, 2, 3}))), b"db")
        out = [Message(MessageType.HEARTBEAT, 1, 2, 2), Message(MessageType.SNAP, 1, 3, 2,
                                                               snapshot=snap),
               Message(MessageType.APP, 1, 2, 2, entries=(Entry(2, 10),)),
               Message(MessageType.HEARTBEAT, 1, 3, 2), Message(MessageType.VOTE, 1, 4, 3)]
        assert a.send_messages("raft", out) == {2: True, 3: True, 4: False}  # 4: unknown
        [(src2, _, p2)] = drain_until(b, 1)
        [(src3, _, p3)] = drain_until(c, 1)
        assert src2 == src3 == 1
        assert codec.messages_from_wire(p2) == [out[0], out[2]]
        assert codec.messages_from_wire(p3) == [out[1], out[3]]
        assert a.dropped[4] == 1
    finally:
        c.close()


def test_a_dead_peer_never_blocks_the_sender():
    dead = tcp(free_port())  # nobody listens there
    with PeerTransport(1, "tcp://127.0.0.1:*", {2: dead}) as a:
        start = time.monotonic()
        results = [a.send(2, "raft", [i]) for i in range(10_000)]
        assert time.monotonic() - start < 1.0
        assert not any(results)  # ZMQ_IMMEDIATE: nothing piles up for a dead peer
        assert a.dropped[2] == 10_000 and a.sent[2] == 0
        assert not a.send(7, "raft", [])  # an unknown member is a drop, not an error
        assert a.dropped[7] == 1


def test_a_peer_that_stops_reading_never_blocks_the_sender():
    slow = PeerTransport(2, "tcp://127.0.0.1:*", hwm_msgs=4)
    frame = pack_envelope("raft", b"x" * 65536)
    try:
        with PeerTransport(1, "tcp://127.0.0.1:*", {2: slow.listen_address},
                           hwm_msgs=4) as a:
            send_until_connected(a, 2, "probe", None)
            dropped_before = a.dropped[2]  # while connecting
            start = time.monotonic()
            results = [a.send_frame(2, frame) for _ in range(3000)]  # 190 MiB offered
            assert time.monotonic() - start < 3.0
            assert results.count(False) > 0
            assert a.dropped[2] - dropped_before == results.count(False)
            received = drain_until(slow, 1 + results.count(True), timeout_s=5)
            assert len(received) == 1 + results.count(True)  # accepted means delivered
    finally:
        slow.close()


def test_frames_with_a_foreign_identity_or_a_bad_envelope_are_dropped_and_counted(pair):
    a, _ = pair
    ctx = process_context()
    rogue = ctx.socket(zmq.DEALER)
    rogue.setsockopt(zmq.LINGER, 0)
    rogue.setsockopt(zmq.IDENTITY, b"abc")  # not 9 bytes: not a member
    rogue.connect(a.listen_address)
    impostor = ctx.socket(zmq.DEALER)
    impostor.setsockopt(zmq.LINGER, 0)
    impostor.setsockopt(zmq.IDENTITY, identity(9))
    impostor.connect(a.listen_address)
    try:
        rogue.send(pack_envelope("raft", []))
        impostor.send(b"\xc1not msgpack")
        impostor.send(pack_envelope("raft", {1: "int map keys from outside"}))
        impostor.send(pack_envelope("raft", ["fine"]))
        got = drain_until(a, 1)
        time.sleep(0.1)
        got += a.drain(100, 0)
        assert got == [(9, "raft", ["fine"])]
        assert a.malformed == 3
    finally:
        rogue.close()
        impostor.close()


def test_a_restarted_member_takes_over_its_identity_from_a_half_open_link(pair):
    a, b = pair  # b stays open: its link to a is the "half-open" one
    send_until_connected(b, 1, "before", None)
    assert drain_until(a, 1) == [(2, "before", None)]
    # Member 2 restarts while its old connection is still open (a half-open TCP link
    # after a partition looks the same to member 1): the new one must be accepted.
    b2 = PeerTransport(2, "tcp://127.0.0.1:*", {1: a.listen_address})
    try:
        send_until_connected(b2, 1, "after", None)
        got = drain_until(a, 1)
        assert got == [(2, "after", None)]
    finally:
        b2.close()


def test_membership_changes_connect_and_disconnect(pair):
    a, b = pair
    with pytest.raises(ValueError):
        a.add_peer(1, b.listen_address)  # not to itself
    a.add_peer(2, b.listen_address)  # same address: kept as is
    dealer = a.dealer(2)
    a.add_peer(2, b.listen_address)
    assert a.dealer(2) is dealer
    a.remove_peer(2)
    assert 2 not in a.peers and not a.send(2, "raft", [])
    a.add_peer(2, b.listen_address)
    send_until_connected(a, 2, "back", None)
    assert drain_until(b, 1) == [(1, "back", None)]



def test_two_channels_of_one_member_are_two_connections(pair):
    """The raft actor's and the network actor's DEALERs of a member reach one ROUTER
    under the same member id without either taking over the other's connection."""
    a, b = pair
    snapshots = PeerDealers(2, {1: a.listen_address}, channel=Channel.SNAPSHOT)
    try:
        send_until_connected(b, 1, "raft", [1])
        send_until_connected(snapshots, 1, "snap_chunk", [2])
        got = drain_until(a, 2)
        for i in range(3, 23):  # both stay up: every frame of either arrives
            assert (b if i % 2 else snapshots).send(1, "raft" if i % 2 else "snap_chunk", [i])
        got += drain_until(a, 20)
        assert sorted(p[0] for _, _, p in got) == list(range(1, 23))
        assert {(src, kind) for src, kind, _ in got} == {(2, "raft"), (2, "snap_chunk")}
    finally:
        snapshots.close()


def test_dead_peer_connections_are_found_by_tcp_keepalive_and_user_timeout():
    """Both ends of a member-to-member connection: a peer gone without a word (a cut
    link, a dead machine) closes the connection within seconds (liveness.py)."""
    port = free_port()
    with PeerTransport(2, tcp(port)) as b, PeerTransport(1, "tcp://127.0.0.1:*",
                                                         {2: tcp(port)}) as a:
        send_until_connected(a, 2, "probe", None)
        assert drain_until(b, 1)
        ends = connections_on(port)
    expected = {"keepalive": 1, "idle_s": liveness.KEEPALIVE_IDLE_S,
                "interval_s": liveness.KEEPALIVE_INTERVAL_S,
                "probes": liveness.KEEPALIVE_PROBES,
                "user_timeout_ms": liveness.DEAD_AFTER_MS}
    assert len(ends) == 2 and all(end == expected for end in ends), ends
