"""The JSON gateway's lease, lock and election calls on petcd answer as on a real etcd
3.4 (Debian's): the same calls, over HTTP, on a fresh one-member cluster of each, give
the same HTTP statuses and the same bodies once the cluster's and member's IDs and the
Raft term are masked. Lease IDs are chosen by the test, so revisions, keys and
lease IDs are compared as they are.

Besides each route (`/v3/lease/...`, the `/v3/kv/lease/...` aliases, `/v3/lock/...`,
`/v3/election/...`), bad input to the lock server: Unlock deletes whatever key it is
given, held by the caller or not; a Lock on a lease that has expired is refused, as on
one never granted; a keep-alive stream whose first request is cut short fails as a
plain call. One answer differs from etcd 3.4's on purpose: a waiter whose lease
expires while it waits ends with "mutex: session is expired" once the holder unlocks
(etcd issue 11456, fixed in later etcd); etcd 3.4.23 answers it with its lost key, as
if it held the lock."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from typing import Any

import pytest

from tests.client.etcd_server import EtcdCluster, etcd_available
from tests.client.petcd_server import PetcdCluster

SESSION_EXPIRED = "mutex: session is expired"
LEASE_NOT_FOUND = "etcdserver: requested lease not found"
HOLDER, WAITER, OTHER, ALIAS = 0x1A, 0x1B, 0x1C, 0x1D  # lease IDs
SHORT_TTL_S = 2  # etcd's minimum at its default election timeout
CALL_TIMEOUT_S = 10.0
MASKED_HEADER = ("cluster_id", "member_id", "raft_term")


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class Gateway:
    """HTTP calls to one member's client URL, as curl makes them."""

    def __init__(self, endpoint: str) -> None:
        self.host, port = endpoint.split(":")
        self.port = int(port)

    def open(self, path: str, body: dict[str, Any] | bytes
             ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """`body`: a request, or the bytes to send as they are."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=CALL_TIMEOUT_S)
        data = body if isinstance(body, bytes) else json.dumps(body)
        conn.request("POST", path, data, {"Content-Type": "application/json"})
        return conn, conn.getresponse()

    def call(self, path: str, body: dict[str, Any] | bytes) -> tuple[int, Any]:
        """(HTTP status, the body: parsed if JSON, else its text)."""
        conn, resp = self.open(path, body)
        try:
            data = resp.read()
        finally:
            conn.close()
        if resp.getheader("Content-Type") != "application/json":
            return resp.status, data.decode()
        return resp.status, json.loads(data)


def masked(value: Any) -> Any:
    """`value` with each header's cluster and member IDs and Raft term masked."""
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: masked(v) for k, v in value.items()}
    if isinstance(out.get("header"), dict):
        out["header"] = {k: "*" if k in MASKED_HEADER else v for k, v in out["header"].items()}
    return out


def _leases(gw: Gateway, seen: dict[str, Any]) -> None:
    seen["grant"] = gw.call("/v3/lease/grant", {"TTL": 30, "ID": HOLDER})
    seen["grant alias"] = gw.call("/v3/kv/lease/grant", {"TTL": 30, "ID": ALIAS})
    gw.call("/v3/lease/grant", {"TTL": 30, "ID": ALIAS})
    seen["put"] = gw.call("/v3/kv/put", {"key": b64(b"svc/a"), "value": b64(b"v"),
                                         "lease": HOLDER})
    for path in ("/v3/lease/timetolive", "/v3/kv/lease/timetolive"):
        status, body = gw.call(path, {"ID": HOLDER, "keys": True})
        assert 28 <= int(body.pop("TTL")) <= 30, body  # seconds left: not compared
        seen[path] = status, body
    seen["keep-alive"] = gw.call("/v3/lease/keepalive", {"ID": HOLDER})
    # A first request cut short: the call fails (500, Go's "unexpected EOF"), no stream.
    seen["keep-alive cut short"] = gw.call("/v3/lease/keepalive", b'{"ID": "26"')
    for name, path in (("leases", "/v3/lease/leases"), ("leases alias", "/v3/kv/lease/leases")):
        status, body = gw.call(path, {})
        body["leases"].sort(key=lambda lease: int(lease["ID"]))  # etcd's: a Go map's order
        seen[name] = status, body


def _lock_waiter_expires(gw: Gateway, seen: dict[str, Any]) -> None:
    """The holder keeps the lock while the waiter's lease expires; then unlocks."""
    seen["lock"] = gw.call("/v3/lock/lock", {"name": b64(b"mutex"), "lease": HOLDER})
    gw.call("/v3/lease/grant", {"TTL": SHORT_TTL_S, "ID": WAITER})
    waited: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: waited.update(answer=gw.call(
        "/v3/lock/lock", {"name": b64(b"mutex"), "lease": WAITER})))
    waiter.start()
    deadline = time.monotonic() + CALL_TIMEOUT_S
    while gw.call("/v3/lease/timetolive", {"ID": WAITER})[1].get("TTL") != "-1":
        assert time.monotonic() < deadline, "the waiter's lease did not expire"
        time.sleep(0.2)
    seen["waiting while its lease expired"] = waited.get("answer")
    seen["unlock"] = gw.call("/v3/lock/unlock", {"key": seen["lock"][1]["key"]})
    waiter.join(CALL_TIMEOUT_S)
    seen["waiter once unlocked"] = waited.get("answer")
    seen["lock on its expired lease"] = gw.call("/v3/lock/lock", {"name": b64(b"mutex"),
                                                                  "lease": WAITER})


def _unlock_not_held(gw: Gateway, seen: dict[str, Any]) -> None:
    seen["unlock a key nobody holds"] = gw.call("/v3/lock/unlock",
                                                {"key": b64(b"mutex/ffff")})
    gw.call("/v3/lease/grant", {"TTL": 30, "ID": OTHER})
    seen["another locks"] = gw.call("/v3/lock/lock", {"name": b64(b"mutex"), "lease": OTHER})
    seen["unlock another's key"] = gw.call("/v3/lock/unlock",
                                           {"key": seen["another locks"][1]["key"]})
    seen["the lock after"] = gw.call("/v3/kv/range", {"key": b64(b"mutex/"),
                                                      "range_end": b64(b"mutex0")})
    seen["lock again"] = gw.call("/v3/lock/lock", {"name": b64(b"mutex"), "lease": HOLDER})


def _election(gw: Gateway, seen: dict[str, Any]) -> None:
    vote = b64(b"vote")
    seen["no leader yet"] = gw.call("/v3/election/leader", {"name": vote})
    seen["campaign"] = gw.call("/v3/election/campaign", {"name": vote, "lease": HOLDER,
                                                         "value": b64(b"a")})
    leader = seen["campaign"][1]["leader"]
    seen["leader"] = gw.call("/v3/election/leader", {"name": vote})
    conn, observation = gw.open("/v3/election/observe", {"name": vote})
    try:
        seen["observe"] = json.loads(observation.readline())
        seen["proclaim"] = gw.call("/v3/election/proclaim",
                                   {"leader": leader, "value": b64(b"a2")})
        seen["observe proclaimed"] = json.loads(observation.readline())
    finally:
        conn.close()
    seen["resign"] = gw.call("/v3/election/resign", {"leader": leader})
    seen["leader after resign"] = gw.call("/v3/election/leader", {"name": vote})
    seen["proclaim after resign"] = gw.call("/v3/election/proclaim",
                                            {"leader": leader, "value": b64(b"late")})


def _revokes(gw: Gateway, seen: dict[str, Any]) -> None:
    seen["revoke"] = gw.call("/v3/lease/revoke", {"ID": HOLDER})
    seen["revoke alias"] = gw.call("/v3/kv/lease/revoke", {"ID": ALIAS})
    seen["revoke unknown"] = gw.call("/v3/lease/revoke", {"ID": HOLDER})
    seen["keys after"] = gw.call("/v3/kv/range", {"key": b64(b"\0"), "range_end": b64(b"\0"),
                                                  "count_only": True})


def _scenario(endpoint: str) -> dict[str, Any]:
    gw, seen = Gateway(endpoint), {}
    for part in (_leases, _lock_waiter_expires, _unlock_not_held, _election, _revokes):
        part(gw, seen)
    return seen


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, dict[str, Any]]:
    if not etcd_available():
        raise RuntimeError("/usr/bin/etcd is needed (.ci/run installs Debian's etcd-server)")
    results = {}
    for kind in (EtcdCluster, PetcdCluster):
        cluster = kind(tmp_path_factory.mktemp(kind.kind), 1)
        cluster.start()
        try:
            results[kind.kind] = _scenario(cluster.endpoints[0])
        finally:
            cluster.stop()
    return results


CASES = ["grant", "grant alias", "put", "/v3/lease/timetolive", "/v3/kv/lease/timetolive",
         "keep-alive", "leases", "leases alias", "lock", "waiting while its lease expired", "unlock",
         "lock on its expired lease", "unlock a key nobody holds",
         "another locks", "unlock another's key", "the lock after", "lock again",
         "no leader yet", "campaign", "leader", "observe", "proclaim", "observe proclaimed",
         "resign", "leader after resign",
         "proclaim after resign", "revoke", "revoke alias", "revoke unknown", "keys after"]


@pytest.mark.parametrize("case", CASES)
def test_the_gateway_answers_as_etcds(outputs, case):
    assert masked(outputs["petcd"][case]) == masked(outputs["etcd"][case])


def test_a_waiter_whose_lease_expired_is_refused_once_the_holder_unlocks(outputs):
    assert outputs["petcd"]["waiting while its lease expired"] is None  # still waiting
    assert outputs["petcd"]["waiter once unlocked"] == (
        500, {"error": SESSION_EXPIRED, "code": 2, "message": SESSION_EXPIRED})
    assert outputs["etcd"]["waiter once unlocked"][0] == 200  # 3.4: no own-key check


@pytest.mark.parametrize("kind", ["etcd", "petcd"])
def test_unlock_deletes_the_key_given_and_an_expired_lease_cannot_lock(outputs, kind):
    seen = outputs[kind]
    unlocked_at = int(seen["unlock"][1]["header"]["revision"])
    locked_at = int(seen["another locks"][1]["header"]["revision"])
    assert seen["unlock a key nobody holds"][0] == 200  # and nothing deleted:
    assert int(seen["unlock a key nobody holds"][1]["header"]["revision"]) == unlocked_at
    assert seen["unlock another's key"][0] == 200
    assert int(seen["unlock another's key"][1]["header"]["revision"]) == locked_at + 1
    assert "kvs" not in seen["the lock after"][1]  # nobody holds it now
    assert seen["lock on its expired lease"] == (
        500, {"error": LEASE_NOT_FOUND, "code": 2, "message": LEASE_NOT_FOUND})
