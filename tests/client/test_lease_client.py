"""The Python client's leases, locks and elections against a real server: grant,
keep-alive over several TTLs, expiry, revoke, time-to-live, the lease list; a lock
between two processes (the second waits for the first; fencing revisions increase);
an election's campaign, observation, proclamation and resignation."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from petcd.client import Client, EtcdError
from petcd.client.requests import compare, put_op
from tests.cluster.members import wait_until

TTL_S = 2  # etcd's minimum at its default election timeout
WAIT_S = 10.0  # every wait in these tests is bounded
PROCESS_TIMEOUT_S = 30.0


def test_grant_time_to_live_and_list(client):
    granted = client.lease_grant(30)
    assert granted.ID != 0 and granted.TTL == 30
    client.put("l1/a", "1", lease=granted.ID)
    client.put("l1/b", "2", lease=granted.ID)
    live = client.lease_time_to_live(granted.ID, keys=True)
    assert live.grantedTTL == 30 and 28 <= live.TTL <= 30
    assert sorted(live.keys) == [b"l1/a", b"l1/b"]
    assert not client.lease_time_to_live(granted.ID).keys  # only when asked
    assert granted.ID in [lease.ID for lease in client.lease_leases().leases]
    chosen = client.lease_grant(30, lease_id=0x5EED)
    assert chosen.ID == 0x5EED
    client.lease_revoke(chosen.ID)
    client.lease_revoke(granted.ID)


def test_revoke_deletes_the_keys_and_the_lease(client):
    lease_id = client.lease_grant(30).ID
    client.put("l2/k", "v", lease=lease_id)
    client.lease_revoke(lease_id)
    assert client.get("l2/k").count == 0
    gone = client.lease_time_to_live(lease_id)
    assert (gone.TTL, gone.grantedTTL) == (-1, 0)
    with pytest.raises(EtcdError, match="requested lease not found"):
        client.lease_revoke(lease_id)
    with pytest.raises(EtcdError, match="requested lease not found"):
        client.lease_keep_alive_once(lease_id)


def test_a_lease_not_kept_alive_expires_with_its_key(client):
    lease_id = client.lease_grant(TTL_S).ID
    client.put("l3/k", "v", lease=lease_id)
    assert client.lease_keep_alive_once(lease_id).TTL == TTL_S
    assert wait_until(lambda: client.get("l3/k").count == 0, WAIT_S), "the key outlived its lease"
    assert client.lease_time_to_live(lease_id).TTL == -1


def test_keep_alive_holds_a_lease_over_several_ttls_and_reports_its_loss(client):
    lease_id = client.lease_grant(TTL_S).ID
    client.put("l4/k", "v", lease=lease_id)
    renewals, losses = [], []
    with client.keep_alive(lease_id, ttl=TTL_S, on_renewed=renewals.append,
                           on_lost=losses.append) as keeping:
        time.sleep(3 * TTL_S)
        assert client.get("l4/k").count == 1 and not keeping.lost
        assert len(renewals) >= 6, renewals  # every TTL/3
        assert all(resp.ID == lease_id and resp.TTL == TTL_S for resp in renewals)
        client.lease_revoke(lease_id)
        assert keeping.wait_lost(WAIT_S)
    assert losses == ["lease expired or revoked"]


def test_keep_alive_fails_over_to_the_next_endpoint(cluster3):
    with Client(cluster3.endpoints) as client:
        lease_id = client.lease_grant(TTL_S).ID
        with client.keep_alive(lease_id, ttl=TTL_S) as keeping:
            first = cluster3.member_names[0]  # the client's first endpoint
            cluster3.stop_member(first)
            try:
                time.sleep(2 * TTL_S)
                assert not keeping.lost
                assert client.lease_time_to_live(lease_id).TTL > 0
            finally:
                cluster3.start_member(first)


LOCKER = """
import sys, time
from petcd.client import Client
with Client(sys.argv[1].split(",")) as client:
    with client.lock("jobs", ttl=int(sys.argv[3])) as held:
        print("held", held.revision, time.time(), held.session.lease_id, flush=True)
        time.sleep(float(sys.argv[2]))
        print("releasing", time.time(), flush=True)
"""
LOCKER_TTL_S = 5
KILLED_HOLDER_TTL_S = 3  # how long a killed holder's lock outlives it, at most


def _locker(endpoints: list[str], hold_s: float, ttl_s: int = LOCKER_TTL_S
            ) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", LOCKER, ",".join(endpoints),
                             str(hold_s), str(ttl_s)], stdout=subprocess.PIPE, text=True)


def test_lock_is_mutually_exclusive_between_processes(cluster):
    first = _locker(cluster.endpoints, 1.5)
    held_line = first.stdout.readline().split()
    assert held_line[0] == "held", held_line
    second = _locker(cluster.endpoints, 0.0)
    first_rest, _ = first.communicate(timeout=PROCESS_TIMEOUT_S)
    second_out, _ = second.communicate(timeout=PROCESS_TIMEOUT_S)
    released_at = float(first_rest.split()[1])
    second_held = second_out.split()
    assert second_held[0] == "held" and float(second_held[2]) >= released_at
    assert int(second_held[1]) > int(held_line[1])  # the fencing token grows
    assert (first.returncode, second.returncode) == (0, 0)


def test_a_killed_holders_lock_passes_to_the_waiter_once_its_lease_expires(cluster, client):
    holder = _locker(cluster.endpoints, PROCESS_TIMEOUT_S, KILLED_HOLDER_TTL_S)
    held = holder.stdout.readline().split()
    assert held[0] == "held", held
    waiter = _locker(cluster.endpoints, 0.0)
    assert wait_until(lambda: client.get("jobs/", prefix=True, count_only=True).count == 2,
                      WAIT_S), "the waiter never queued"
    killed_at = time.time()
    holder.kill()  # SIGKILL: no unlock, no revoke; its lease is kept alive no more
    holder.wait(WAIT_S)
    waiter_out, _ = waiter.communicate(timeout=PROCESS_TIMEOUT_S)
    taken = waiter_out.split()
    assert taken[0] == "held" and waiter.returncode == 0, waiter_out
    handed_over_s = float(taken[2]) - killed_at
    # The holder renewed its lease every TTL/3, so the lease outlives it by 2/3 of the
    # TTL (a third allowed for a late renewal) to the TTL and the server's 0.5 s check.
    assert KILLED_HOLDER_TTL_S / 3 <= handed_over_s <= KILLED_HOLDER_TTL_S + 1.5, handed_over_s
    assert client.lease_time_to_live(int(held[3])).TTL == -1  # gone with its lease
    assert int(taken[1]) > int(held[1])  # the fencing token grows


def test_lock_fencing_token_guards_writes(client):
    with client.lock("fence", ttl=5) as held:
        assert held.key.startswith(b"fence/") and not held.lost
        guarded = client.txn([compare("create", held.key, "=", held.revision)],
                             [put_op("fence-data", "mine")])
        assert guarded.succeeded
        with pytest.raises(EtcdError):  # a second client cannot have it meanwhile
            with client.lock("fence", ttl=5, timeout_s=0.5):
                pass
    stale = client.txn([compare("create", held.key, "=", held.revision)],
                       [put_op("fence-data", "late")])
    assert not stale.succeeded and client.get(held.key).count == 0


def test_election_campaign_observe_proclaim_resign(client):
    with client.election("e", ttl=5) as one, client.election("e", ttl=5) as two, \
            client.observe_election("e") as observation:
        assert observation.get(0.3) is None  # no leader yet
        key = one.campaign("one")
        assert client.election("e").leader().kv.value == b"one"
        assert observation.get(WAIT_S).kv.value == b"one"
        one.proclaim("one again")
        assert observation.get(WAIT_S).kv.value == b"one again"
        with pytest.raises(EtcdError):  # two waits behind one
            two.campaign("two", timeout_s=0.5)
        one.resign()
        with pytest.raises(EtcdError, match="not leader"):
            one.proclaim("no longer")
        two_key = two.campaign("two", timeout_s=WAIT_S)
        assert two_key.rev > key.rev
        assert client.election("e").leader().kv.value == b"two"
        assert observation.get(WAIT_S).kv.value == b"two"
        two.resign()
    with pytest.raises(EtcdError, match="election: no leader"):
        client.election("e").leader()
