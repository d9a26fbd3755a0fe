"""The real etcdctl, and petcdctl, against a 3-member petcd cluster: each command an
etcd user runs, checked against what etcd defines (output text, revisions, versions,
counts, errors and exit codes). Every test runs with both tools; one cluster for the
module; each test uses its own keys."""

from __future__ import annotations

import hashlib
import os
import re

import pytest

from tests.cluster.members import running, wait_until

from .etcdctl import ETCDCTL, PETCDCTL, Ctl, require

MAX_REQUEST_BYTES = 256 * 1024


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    require()
    with running(tmp_path_factory.mktemp("compat"), 3,
                 ["--max-request-bytes", str(MAX_REQUEST_BYTES)]) as c:
        c.wait_leader()
        yield c


@pytest.fixture(params=[ETCDCTL, PETCDCTL], ids=["etcdctl", "petcdctl"])
def ctl(request) -> Ctl:
    return Ctl(request.param)


def _revision(ctl, cluster) -> int:
    return ctl(cluster, "get", "no-such-key", "-w", "json").json()["header"]["revision"]


# -- put / get / del ------------------------------------------------------------------

def test_put_then_get_on_every_member(ctl, cluster):
    r = ctl(cluster.members[1], "put", "kv/a", "1")
    assert (r.code, r.out) == (0, "OK\n")
    for m in cluster.members:
        got = ctl(m, "get", "kv/a")
        assert (got.code, got.out) == (0, "kv/a\n1\n")
    assert ctl(cluster, "get", "kv/a", "--print-value-only").out == "1\n"


def test_get_json_has_etcds_revisions_and_versions(ctl, cluster):
    key = f"{ctl.name}/ver/k"  # fresh for each tool: versions start at 1
    ctl(cluster, "put", key, "one")
    first = ctl(cluster, "get", key, "-w", "json").json()
    ctl(cluster, "put", key, "two")
    second = ctl(cluster, "get", key, "-w", "json").json()
    [kv1], [kv2] = first["kvs"], second["kvs"]
    assert kv1["create_revision"] == kv1["mod_revision"] == first["header"]["revision"]
    assert (kv1["version"], kv2["version"]) == (1, 2)
    assert kv2["create_revision"] == kv1["create_revision"]
    assert kv2["mod_revision"] == second["header"]["revision"] == first["header"]["revision"] + 1
    assert second["count"] == 1 and second["header"]["raft_term"] >= 1
    old = ctl(cluster, "get", key, f"--rev={kv1['mod_revision']}", "--print-value-only")
    assert old.out == "one\n"


def test_prefix_limit_keys_only_and_sort(ctl, cluster):
    for i in range(5):
        ctl(cluster, "put", f"pre/{i}", f"v{i}")
    assert ctl(cluster, "get", "pre/", "--prefix", "--keys-only").out == "".join(
        f"pre/{i}\n\n" for i in range(5))
    limited = ctl(cluster, "get", "pre/", "--prefix", "--limit=2", "-w", "json").json()
    assert (len(limited["kvs"]), limited["count"], limited["more"]) == (2, 5, True)
    keys_only = ctl(cluster, "get", "pre/", "--prefix", "--keys-only", "-w", "json").json()
    assert keys_only["count"] == 5 and all("value" not in kv for kv in keys_only["kvs"])
    desc = ctl(cluster, "get", "pre/", "--prefix", "--keys-only", "--order=DESCEND")
    assert desc.out.split() == [f"pre/{i}" for i in reversed(range(5))]
    from_key = ctl(cluster, "get", "pre/3", "--from-key", "--keys-only", "--limit=2")
    assert from_key.out.split() == ["pre/3", "pre/4"]
    serial = ctl(cluster.members[2], "get", "pre/1", "--consistency=s")
    assert serial.out == "pre/1\nv1\n"


def test_del_counts_and_prev_kv(ctl, cluster):
    for i in range(3):
        ctl(cluster, "put", f"del/{i}", f"x{i}")
    assert ctl(cluster, "del", "del/0").out == "1\n"
    assert ctl(cluster, "del", "del/0").out == "0\n"
    r = ctl(cluster, "del", "del/", "--prefix", "--prev-kv")
    assert r.out == "2\ndel/1\nx1\ndel/2\nx2\n"
    assert ctl(cluster, "get", "del/", "--prefix").out == ""


# -- txn --------------------------------------------------------------------------------

def test_txn_from_stdin_takes_the_right_branch(ctl, cluster):
    key = f"{ctl.name}/txn/k"  # fresh for each tool: versions start at 1
    ctl(cluster, "put", key, "1")
    script = f'value("{key}") = "1"\n\nput {key} 2\n\nput {key} failed\n\n'
    r = ctl(cluster, "txn", stdin=script)
    assert (r.code, r.out) == (0, "SUCCESS\n\nOK\n")
    r = ctl(cluster, "txn", stdin=script)  # now the value is 2: failure branch
    assert (r.code, r.out) == (0, "FAILURE\n\nOK\n")
    assert ctl(cluster, "get", key, "--print-value-only").out == "failed\n"
    cmp = f'mod("{key}") > "0"\nversion("{key}") = "3"\n\nget {key}\n\n\n'
    r = ctl(cluster, "txn", "-w", "json", stdin=cmp).json()
    assert r["succeeded"] is True
    [resp] = r["responses"]
    assert resp["Response"]["ResponseRange"]["kvs"][0]["version"] == 3


def test_txn_with_too_many_operations_is_refused_and_changes_nothing(ctl, cluster):
    before = _revision(ctl, cluster)
    ops = "".join(f"put many/{i} x\n" for i in range(129))  # --max-txn-ops is 128
    r = ctl(cluster, "txn", stdin=f"\n{ops}\n\n")
    assert r.code == 1
    assert r.error_line == "Error: etcdserver: too many operations in txn request"
    assert _revision(ctl, cluster) == before
    assert ctl(cluster, "get", "many/", "--prefix").out == ""


def test_a_put_with_a_lease_nobody_granted_is_refused_and_changes_nothing(ctl, cluster):
    before = _revision(ctl, cluster)
    r = ctl(cluster, "put", "leased", "v", "--lease", "1234abcd")
    assert r.code == 1 and r.error_line == "Error: etcdserver: requested lease not found"
    r = ctl(cluster, "txn", stdin="\nput leased v --lease=1234abcd\n\n\n")
    assert r.code == 1 and r.error_line == "Error: etcdserver: requested lease not found"
    assert _revision(ctl, cluster) == before and ctl(cluster, "get", "leased").out == ""


def test_request_too_large_is_refused_and_changes_nothing(ctl, cluster):
    before = _revision(ctl, cluster)
    r = ctl(cluster, "put", "big", stdin=b"x" * (MAX_REQUEST_BYTES + 1024))
    assert r.code == 1 and r.error_line == "Error: etcdserver: request is too large"
    assert _revision(ctl, cluster) == before and ctl(cluster, "get", "big").out == ""


# -- compaction, defrag, alarms, hashkv ------------------------------------------------

def test_compaction_then_old_revisions_are_gone(ctl, cluster):
    ctl(cluster, "put", "cmp/k", "a")
    old = _revision(ctl, cluster)
    ctl(cluster, "put", "cmp/k", "b")
    now = _revision(ctl, cluster)
    r = ctl(cluster, "compaction", str(now))
    assert (r.code, r.out) == (0, f"compacted revision {now}\n")
    for m in cluster.members:
        gone = ctl(m, "get", "cmp/k", f"--rev={old}")
        assert gone.code == 1
        assert gone.error_line == "Error: etcdserver: mvcc: required revision has been compacted"
    again = ctl(cluster, "compaction", str(now))
    assert again.error_line == "Error: etcdserver: mvcc: required revision has been compacted"
    future = ctl(cluster, "compaction", str(now + 1000))
    assert future.error_line == "Error: etcdserver: mvcc: required revision is a future revision"
    assert ctl(cluster, "get", "cmp/k", "--print-value-only").out == "b\n"


def test_defrag_cluster_and_data_survives(ctl, cluster):
    ctl(cluster, "put", "defrag/k", "v")
    r = ctl(cluster, "defrag", "--cluster")
    assert r.code == 0
    assert sorted(r.out.splitlines()) == sorted(
        f"Finished defragmenting etcd member[{m.client_url}]" for m in cluster.members)
    assert ctl(cluster, "get", "defrag/k", "--print-value-only").out == "v\n"


def test_alarm_list_and_disarm_with_no_alarm(ctl, cluster):
    assert ctl(cluster, "alarm", "list").out == ""
    r = ctl(cluster, "alarm", "disarm")
    assert (r.code, r.out) == (0, "")


def test_hashkv_is_the_same_on_every_member(ctl, cluster):
    ctl(cluster, "put", "hash/k", "v")
    rev = _revision(ctl, cluster)
    for m in cluster.members:  # every member has applied `rev`
        assert wait_until(lambda m=m: int(m.status()["header"]["revision"]) >= rev, 10)
    r = ctl(cluster, "endpoint", "hashkv", "--cluster", f"--rev={rev}", "-w", "json")
    hashes = {entry["HashKV"]["hash"] for entry in r.json()}
    assert len(r.json()) == 3 and len(hashes) == 1


# -- cluster and endpoints -------------------------------------------------------------

def test_member_list_shows_every_member(ctl, cluster):
    r = ctl(cluster, "member", "list")
    lines = r.out.splitlines()
    expected = sorted(f"{m.name}, {m.peer_url}, {m.client_url}, false" for m in cluster.members)
    assert sorted(ln.split(", ", 2)[2] for ln in lines) == expected
    assert all(ln.split(", ")[1] == "started" for ln in lines)
    table = ctl(cluster, "member", "list", "-w", "table").out
    assert "| IS LEARNER |" in table and table.count("| started |") == 3


def test_endpoint_health_and_status(ctl, cluster):
    r = ctl(cluster, "endpoint", "health", "--cluster")
    healthy = [ln for ln in (r.out + r.err).splitlines()  # etcdctl 3.4 prints to stderr
               if " is healthy: successfully committed proposal" in ln]
    assert r.code == 0 and sorted(ln.split(" ")[0] for ln in healthy) == sorted(
        m.client_url for m in cluster.members)
    status = ctl(cluster, "endpoint", "status", "--cluster", "-w", "json").json()
    leaders = {s["Status"]["leader"] for s in status}
    ids = {s["Status"]["header"]["member_id"] for s in status}
    assert len(status) == 3 and len(leaders) == 1 and leaders <= ids
    assert {s["Status"]["version"] for s in status} == {"3.5.0"}
    assert all(s["Status"]["dbSize"] > 0 for s in status)


def test_move_leader_hands_over(ctl, cluster):
    status = ctl(cluster, "endpoint", "status", "-w", "json").json()
    leader = status[0]["Status"]["leader"]
    target = next(s["Status"]["header"]["member_id"] for s in status
                  if s["Status"]["header"]["member_id"] != leader)
    r = ctl(cluster, "move-leader", f"{target:x}")
    assert (r.code, r.out) == (0, f"Leadership transferred from {leader:x} to {target:x}\n")
    assert wait_until(lambda: cluster.leader() is not None and int(
        cluster.leader().status()["header"]["member_id"]) == target, 10)


def test_snapshot_save_writes_the_store_with_a_sha256_trailer(ctl, cluster, tmp_path):
    ctl(cluster, "put", "snap/k", "v")
    path = tmp_path / "backup.db"
    r = ctl(cluster.members[0], "snapshot", "save", str(path))
    assert r.code == 0 and r.out == f"Snapshot saved at {path}\n"
    data = path.read_bytes()
    body, trailer = data[:-32], data[-32:]
    assert len(body) > 4096 and hashlib.sha256(body).digest() == trailer
    assert b"snap/k" in body  # the key is in the copied store


def test_user_add_is_served(cluster):
    r = Ctl(ETCDCTL)(cluster, "user", "add", "newbie:secret")
    assert (r.code, r.out) == (0, "User newbie created\n")


@pytest.mark.slow
def test_check_perf_small_load_passes(cluster):
    """etcd's own verdict with its own tool (petcdctl's check perf is compared with
    etcdctl's in tests/client).

    The verdict is a timing on a shared 2-core machine: one request over 0.5 s fails
    it. A neighbour's burst can do that (a CI run failed with every latency up, stddev
    32 ms against 1-2 ms), so a failed run gets one more; two in a row fail the test,
    with what the members logged meanwhile (slow requests, late heartbeats, slow
    fdatasyncs, leader changes) to tell where the time went."""
    runs = []
    for _ in range(CHECK_PERF_RUNS):
        logged = {m.name: len(m.log_events()) for m in cluster.members}
        r = Ctl(ETCDCTL)(cluster, "check", "perf", "--load=s", timeout_s=180)
        verdicts = re.findall(r"(PASS|FAIL): (Throughput|Slowest request|Stddev)", r.out)
        runs.append(f"exit {r.code}, {_verdict_lines(r.out)}, load average "
                    f"{os.getloadavg()[0]:.1f}; members logged: {_trouble(cluster, logged)}")
        if r.code == 0 and sorted(verdicts) == [("PASS", "Slowest request"), ("PASS", "Stddev"),
                                                ("PASS", "Throughput")]:
            assert r.out.rstrip().endswith("PASS")
            return
    pytest.fail("\n".join(runs))


CHECK_PERF_RUNS = 2
TROUBLE = ("apply request took too long", "slow fdatasync", "leader changed",
           "leader failed to send out heartbeat on time; took too long, leader is overloaded "
           "likely from slow disk")


def _verdict_lines(out: str) -> list[str]:
    return [line.strip() for line in out.replace("\r", "\n").splitlines()
            if line.startswith(("PASS", "FAIL", "Slowest"))]


def _trouble(cluster, since: dict[str, int]) -> str:
    """Per member, how often each warning came since `since` and its worst duration."""
    parts = []
    for m in cluster.members:
        events = [e for e in m.log_events()[since[m.name]:] if e.get("event") in TROUBLE]
        for name in TROUBLE:
            hits = [e for e in events if e["event"] == name]
            if hits:
                worst = max((e.get("took_ms") or e.get("exceeded_duration_ms") or 0) for e in hits)
                short = name if len(name) <= 30 else name[:30] + "..."
                parts.append(f"{m.name} {short} x{len(hits)} (worst {worst} ms, "
                             f"{hits[0]['ts']} to {hits[-1]['ts']})")
    return "; ".join(parts) or "nothing"
