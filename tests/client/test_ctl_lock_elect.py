"""petcdctl lock and elect print what etcdctl's print (see test_ctl_watch): the key
once held or elected, in each format, the exec form of lock, a waiter killed before
its turn, the observer's view of a change of leader, argument errors and exit codes.
Keys hold the session's lease ID, which the server picks: it is masked.
"""

from __future__ import annotations

import time

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.client import Client
from tests.client.test_ctl_compat import Step, assert_same_output
from tests.client.test_ctl_watch import WAIT_S, Running
from tests.client.test_ctl_watch import assert_same_output as assert_same_running
from tests.client.tools import Outcome, masked

LEASE_IN_KEY = (rb"/[0-9a-f]{1,16}\n", b"/<lease>\n")
# json: the key in base64 (its lease part), and the lease; fields: the same in text.
LEASE_JSON = ((rb'"key":"[A-Za-z0-9+/=]+"', b'"key":"<key>"'), (rb'"lease":\d+', b'"lease":<n>'))
LEASE_FIELDS = ((rb'/[0-9a-f]{1,16}"', b'/<lease>"'), (rb'"Lease" : \d+', b'"Lease" : <n>'))
MASKS = (LEASE_IN_KEY, *LEASE_JSON, *LEASE_FIELDS)
WAITER_SETTLE_S = 1.0
SHOW_LOCK = 'echo "${ETCD_LOCK_KEY%/*} $ETCD_LOCK_REV"'


def test_argument_errors_and_the_exec_form(cluster):
    steps = [Step(args) for args in (
        ["lock"], ["elect"], ["elect", "a"], ["elect", "a", "b", "c"],
        ["elect", "-l", "a", "b"], ["elect", "--listen"],
        ["lock", "l1", "--", "sh", "-c", SHOW_LOCK],
        ["lock", "l1", "--ttl", "5", "--", "sh", "-c", SHOW_LOCK],
        ["lock", "l1", "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
        ["lock", "l1", "--", "sh", "-c", "kill -9 $$"],
        ["lock", "l1", "no-such-command-for-lock"], ["lock", "l1", "/no/such/file"],
        ["lock", "l1", "-w", "json", "--", "true"],
        ["get", "l1", "--prefix"])]  # every lock released
    assert_same_output(cluster, steps)


def _protobuf_without_lease(outcome: Outcome) -> Outcome:
    """The printed RangeResponse with the lease's part of the key and the lease zeroed
    (varints cannot be masked as text)."""
    resp = pb.RangeResponse.FromString(outcome.out)
    for kv in resp.kvs:
        kv.key, kv.lease = kv.key.rsplit(b"/", 1)[0], 0
    return Outcome(outcome.code, resp.SerializeToString(), outcome.err)


def _held(tool: str, endpoints: list[str], args: list[str], marker: bytes) -> Running:
    running = Running(tool, endpoints, args)
    running.wait_for(marker)
    return running


def test_lock_held_until_a_signal_in_every_format(cluster):
    def scenario(tool: str, endpoints: list[str]) -> list[Outcome]:
        outcomes = []
        for fmt, marker in (("simple", b"l1/"), ("json", b"kvs"), ("fields", b"Lease"),
                            ("protobuf", b"l1/"), ("table", b"")):
            holder = _held(tool, endpoints, ["lock", "l1", "-w", fmt], marker)
            outcome = masked(holder.finish(terminate=True), *MASKS)
            outcomes.append(_protobuf_without_lease(outcome) if fmt == "protobuf"
                            else outcome)
        return outcomes
    assert_same_running(cluster, scenario)


def test_a_waiter_waits_its_turn_or_is_cancelled(cluster):
    def scenario(tool: str, endpoints: list[str]) -> list[Outcome]:
        first = _held(tool, endpoints, ["lock", "l1"], b"l1/")
        cancelled = Running(tool, endpoints, ["lock", "l1"])
        _keys(endpoints, "l1/", 2)  # queued before the second: the revisions are fixed
        second = Running(tool, endpoints, ["lock", "l1", "--", "sh", "-c", SHOW_LOCK])
        time.sleep(WAITER_SETTLE_S)  # it cannot have the lock: let it ask and wait
        waited = cancelled.finish(terminate=True)  # "context canceled", exit 1
        held = first.finish(terminate=True)  # unlocks: second runs its command
        return [masked(held, *MASKS), waited, second.finish(terminate=False)]
    assert_same_running(cluster, scenario)


def _keys(endpoints: list[str], prefix: str, count: int) -> None:
    """Until `count` keys (lock waiters, election candidates) are under `prefix`
    (bounded)."""
    with Client(endpoints) as client:
        deadline = time.monotonic() + WAIT_S
        while client.get(prefix, prefix=True, count_only=True).count < count \
                and time.monotonic() < deadline:
            time.sleep(0.02)


def test_election_observed(cluster):
    def scenario(tool: str, endpoints: list[str]) -> list[Outcome]:
        observer = Running(tool, endpoints, ["elect", "-l", "e1"])
        leader = _held(tool, endpoints, ["elect", "e1", "first"], b"first")
        observer.wait_for(b"first")
        follower = Running(tool, endpoints, ["elect", "e1", "second", "-w", "json"])
        _keys(endpoints, "e1/", 2)
        watcher = _held(tool, endpoints, ["elect", "-l", "e1", "-w", "fields"], b"first")
        waiting = Running(tool, endpoints, ["elect", "e1", "third"])
        _keys(endpoints, "e1/", 3)
        outcomes = [waiting.finish(terminate=True),  # "context canceled", exit 1
                    leader.finish(terminate=True)]  # resigns: second is elected
        follower.wait_for(b"kvs")
        observer.wait_for(b"second")
        watcher.wait_for(b"second")
        outcomes += [follower.finish(terminate=True), observer.finish(terminate=True),
                     watcher.finish(terminate=True)]
        return [masked(outcome, *MASKS) for outcome in outcomes]
    assert_same_running(cluster, scenario)
