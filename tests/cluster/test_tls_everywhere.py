"""A 3-member cluster with TLS on every URL (clients and peers, client certificates
required on both) going through what the plain-text cluster and fault tests do:
writes through every member, the leader SIGKILLed under writes, a member lost and
replaced by a new one that catches up from a snapshot, the killed one back, and
every member's HashKV equal. Also: unusable certificate files stop a member with
one clear line, never a crash of a half-started member."""

from __future__ import annotations

from pathlib import Path

from petcd.client import Client
from petcd.client.tls import TlsOptions

from .members import HttpError, Member, running, wait_until
from .test_membership import Writer, member_id
from .transports import tls_everywhere

WAIT_S = 30.0


def hash_kv(m: Member, revision: int) -> int:
    return int(m.call("/v3/maintenance/hashkv", {"revision": revision})["hash"])


SNAPSHOT_FLAGS = ["--snapshot-count", "50", "--snapshot-catchup-entries", "10"]


def tls_client(directory: Path, members: list[Member]) -> Client:
    """petcd's client with tls_everywhere's files, following the membership (its sync
    learns https URLs: TLS for them too)."""
    tls = TlsOptions(ca_file=str(directory / "ca.pem"), cert_file=str(directory / "client.pem"),
                     key_file=str(directory / "client-key.pem"))
    return Client([m.client_url for m in members], tls=tls, auto_sync_interval_s=0.5)


def test_a_cluster_with_tls_everywhere_survives_what_a_plain_one_does(tmp_path):
    with tls_everywhere(tmp_path).running(tmp_path, 3, SNAPSHOT_FLAGS) as c:
        leader = c.wait_leader(WAIT_S)
        with tls_client(tmp_path, c.members) as client, Writer(c, client) as writer:
            assert wait_until(lambda: len(writer.acked) > 20, WAIT_S)
            leader.kill()
            assert wait_until(lambda: c.leader() not in (None, leader), WAIT_S)
            n = len(writer.acked)
            assert wait_until(lambda: len(writer.acked) > n + 60, WAIT_S), "writes go on"
            survivor = c.wait_leader(WAIT_S)
            survivor.call("/v3/cluster/member/remove", {"ID": member_id(leader, survivor)})
            fresh = c.add_member(survivor)  # catches up from a snapshot, over TLS
            assert wait_until(lambda: fresh.get(writer.acked[-1], serializable=True)
                              is not None, WAIT_S)
        assert fresh.log_events("snapshot applied")
        last = writer.acked[-1]
        live = [m for m in c.members if m.alive]
        assert len(live) == 3
        for m in live:
            assert wait_until(lambda m=m: m.get(last, serializable=True) is not None, WAIT_S)
        revision = int(survivor.call("/v3/kv/range", {"key": "eA=="})["header"]["revision"])
        assert len({hash_kv(m, revision) for m in live}) == 1
        _leases_through_a_follower(c.wait_leader(WAIT_S), live)


def _leases_through_a_follower(leader: Member, live: list[Member]) -> None:
    """A follower forwards keep-alives and time-to-live to the leader's client URL,
    over TLS with its own certificate."""
    follower = next(m for m in live if m is not leader)
    lease = leader.call("/v3/lease/grant", {"TTL": 60})["ID"]
    assert int(follower.call("/v3/lease/timetolive", {"ID": lease})["grantedTTL"]) == 60
    assert int(follower.call("/v3/lease/keepalive", {"ID": lease})["result"]["TTL"]) == 60


def test_unusable_certificate_files_stop_the_member_with_one_clear_line(tmp_path):
    secure = tls_everywhere(tmp_path)
    bad = tmp_path / "garbage.pem"
    bad.write_text("not a certificate\n")
    for flag, scheme, peer_scheme, words in (
            ("--cert-file", "https", "http", "network cannot start"),
            ("--peer-cert-file", "http", "https", "raft actor cannot start")):
        args = list(secure.flags)
        args[args.index(flag) + 1] = str(bad)
        root = tmp_path / flag.strip("-")
        root.mkdir()
        with running(root, 1, args, scheme=scheme, tls=secure.client,
                     peer_scheme=peer_scheme) as c:
            m = c.members[0]
            assert m.proc is not None and m.proc.wait(WAIT_S) == 1
            assert words in m.log_text() and "Traceback" not in m.log_text()
            try:
                m.status()
                raise AssertionError("a member with a broken certificate served")
            except (HttpError, OSError):
                pass
