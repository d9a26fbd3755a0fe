"""etcd's warnings for work that took too long: a slow KV request (actors/slow.py) and
a leader heartbeat that left late (raft actor). The pure parts; tests/faults shows
them in a real member's log."""

from __future__ import annotations

from petcd.actors.network.errors import TIMEOUT
from petcd.actors.slow import (READ_ONLY_RANGE, SLOW_REQUEST, request_text,
                                       warn_if_slow)
from petcd.actors.raft.heartbeats import HeartbeatWatch, LateHeartbeat
from petcd.actors.raft.types import Message, MessageType
from petcd.api.etcdserverpb import raft_internal_pb2 as rpb
from petcd.api.etcdserverpb import rpc_pb2 as pb


class Log:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict]] = []

    def warning(self, event: str, **fields: object) -> None:
        self.warnings.append((event, fields))


def test_a_request_within_100ms_is_not_logged():
    log = Log()
    assert not warn_if_slow(log, 0.1, "", pb.PutRequest(key=b"k"), pb.PutResponse(), None)
    assert log.warnings == []


def test_a_slow_range_is_logged_as_etcd_logs_it():
    log = Log()
    resp = pb.RangeResponse(kvs=[{"key": b"a", "value": b"1"}], count=1)
    assert warn_if_slow(log, 0.25, READ_ONLY_RANGE, pb.RangeRequest(key=b"a", limit=1),
                        resp, None)
    [(event, fields)] = log.warnings
    assert event == "apply request took too long"
    assert fields["took_ms"] == 250.0 and fields["expected_duration_ms"] == 100
    assert fields["prefix"] == "read-only range "
    assert fields["request"] == 'key: "a" limit: 1'
    assert fields["response"] == f"range_response_count:1 size:{resp.ByteSize()}"


def test_a_slow_failed_write_names_its_error():
    log = Log()
    warn_if_slow(log, 7.0, "", pb.PutRequest(key=b"k", value=b"v"), None, TIMEOUT)
    [(event, fields)] = log.warnings
    assert (event, fields["response"]) == (SLOW_REQUEST, "")
    assert fields["error"] == "etcdserver: request timed out"


def test_values_are_shown_by_size_only_in_puts_and_txns():
    secret = b"s3cret-value"
    put = pb.PutRequest(key=b"k", value=secret, lease=7, prev_kv=True)
    assert request_text(put) == 'key: "k" value_size: 12 lease: 7 prev_kv: true'
    txn = pb.TxnRequest(
        compare=[pb.Compare(key=b"k", target=pb.Compare.VALUE, value=b"x")],
        success=[pb.RequestOp(request_put=put)],
        failure=[pb.RequestOp(request_txn=pb.TxnRequest(
            success=[pb.RequestOp(request_put=put)]))])
    text = request_text(txn)
    assert secret.decode() not in text
    assert text.count("value_size: 12") == 2
    assert text.startswith('compare:<target: VALUE key: "k" value: "x">')


def heartbeat(dst: int) -> Message:
    return Message(MessageType.HEARTBEAT, src=1, dst=dst, term=2)


def test_heartbeats_within_twice_the_interval_are_on_time():
    watch = HeartbeatWatch(max_gap_s=0.2)
    assert watch.observe([heartbeat(2), heartbeat(3)], 10.0) == []
    assert watch.observe([heartbeat(2), heartbeat(3)], 10.2) == []


def test_a_late_heartbeat_says_by_how_much_per_follower():
    watch = HeartbeatWatch(max_gap_s=0.2)
    watch.observe([heartbeat(2), heartbeat(3)], 10.0)
    watch.observe([heartbeat(3)], 10.1)
    late = watch.observe([heartbeat(2), heartbeat(3)], 10.5)
    assert [(h.to, round(h.exceeded_s, 6)) for h in late] == [(2, 0.3), (3, 0.2)]
    assert all(isinstance(h, LateHeartbeat) for h in late)


def test_only_heartbeats_count_and_a_new_leadership_starts_afresh():
    watch = HeartbeatWatch(max_gap_s=0.2)
    watch.observe([heartbeat(2)], 10.0)
    append = Message(MessageType.APP, src=1, dst=2, term=2)
    assert watch.observe([append], 11.0) == []
    watch.reset()
    assert watch.observe([heartbeat(2)], 12.0) == []


def test_a_raft_entry_is_shown_as_etcds_internal_raft_stringer_shows_it():
    r = rpb.InternalRaftRequest(header=rpb.RequestHeader(ID=42),
                                put=pb.PutRequest(key=b"k", value=b"s3cret"))
    assert request_text(r) == 'header:<ID:42> put:<key: "k" value_size: 6>'
    assert request_text(rpb.InternalRaftRequest(header=rpb.RequestHeader(ID=7))) == \
        "header:<ID:7>"
