"""/metrics, /livez and /readyz on a real 3-member cluster, read as Prometheus and a
load balancer would: the text parsed by prometheus_client's parser, etcd's metric
names with etcd's labels, one process_* series per actor, counters that move with
traffic, --listen-metrics-urls serving the metrics and probes alone, and the probes'
answers while the cluster has a quorum and after it lost it."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from petcd.client import Client

from tests.ports import free_ports

from .members import Cluster, Member, wait_until

EXPORT_WAIT_S = 5.0  # actors export every second
ACTORS = {"network", "raft", "wal", "apply"}
ETCD_NAMES = {  # what etcd's dashboard and alerts query
    "etcd_server_has_leader", "etcd_server_is_leader", "etcd_server_leader_changes_seen",
    "etcd_server_proposals_committed_total", "etcd_server_proposals_applied_total",
    "etcd_server_proposals_pending", "etcd_server_proposals_failed",
    "etcd_disk_wal_fsync_duration_seconds", "etcd_disk_backend_commit_duration_seconds",
    "etcd_mvcc_db_total_size_in_bytes", "etcd_mvcc_db_total_size_in_use_in_bytes",
    "etcd_server_quota_backend_bytes", "etcd_network_peer_round_trip_time_seconds",
    "etcd_debugging_mvcc_keys_total", "etcd_debugging_mvcc_watcher_total",
    "grpc_server_started", "grpc_server_handled", "process_resident_memory_bytes",
    "process_cpu_seconds", "petcd_actor_messages", "petcd_raft_tick_lateness_seconds",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("metrics"), 3)
    for m, port in zip(c.members, free_ports(3)):
        m.extra_args += ["--listen-metrics-urls", f"http://127.0.0.1:{port}"]
    c.start()
    try:
        c.wait_leader()
        yield c
    finally:
        c.stop()


def metrics_url(m: Member) -> str:
    args = m.extra_args
    return args[args.index("--listen-metrics-urls") + 1]


def scrape(url: str) -> dict[str, list]:
    """Family name -> its samples [(sample name, labels, value)], parsed as Prometheus."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = answer.read().decode()
    return {f.name: [(s.name, s.labels, s.value) for s in f.samples]
            for f in text_string_to_metric_families(text)}


def value(families: dict[str, list], sample: str, **labels: str) -> float:
    family = families.get(sample) or families[
        sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum")]
    found = [v for name, got, v in family if name == sample
             and all(got.get(k) == want for k, want in labels.items())]
    assert len(found) == 1, (sample, labels, family[:5])
    return found[0]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_etcds_names_every_actors_processes_and_counters_that_move(cluster):
    leader = cluster.wait_leader()
    assert wait_until(lambda: ACTORS <= _actors(scrape(leader.client_url)), EXPORT_WAIT_S)
    before = scrape(leader.client_url)
    assert ETCD_NAMES <= set(before), ETCD_NAMES - set(before)
    with Client([f"127.0.0.1:{leader.client_port}"]) as client:
        for i in range(20):
            client.put(f"m{i}".encode(), b"v")
    time.sleep(1.5)  # the WAL and apply actors' next exports
    after = scrape(leader.client_url)
    put_ok = {"grpc_method": "Put", "grpc_service": "etcdserverpb.KV", "grpc_type": "unary",
              "grpc_code": "OK"}
    assert value(after, "grpc_server_handled_total", **put_ok) \
        == value(before, "grpc_server_handled_total", **put_ok) + 20
    for sample in ("etcd_disk_wal_fsync_duration_seconds_count",
                   "etcd_disk_backend_commit_duration_seconds_count",
                   "etcd_server_proposals_committed_total"):
        assert value(after, sample) >= value(before, sample) + 1, sample
    assert value(after, "etcd_server_has_leader") == 1 == value(after, "etcd_server_is_leader")
    assert value(after, "etcd_server_leader_changes_seen_total") >= 1
    assert value(after, "etcd_mvcc_db_total_size_in_bytes") > 0
    followers = {f"{int(m.status()['header']['member_id']):x}" for m in cluster.members
                 if m is not leader}
    rtt_to = {labels["To"] for name, labels, _ in after["etcd_network_peer_round_trip_time_seconds"]
              if name.endswith("_count")}
    assert rtt_to == followers
    for actor in ACTORS:
        assert value(after, "process_resident_memory_bytes", actor=actor) > 1_000_000


def _actors(families: dict[str, list]) -> set[str]:
    return {labels.get("actor") for _, labels, _ in families.get("process_resident_memory_bytes", [])}


def test_the_metrics_url_serves_metrics_and_probes_alone(cluster):
    m = cluster.members[0]
    url = metrics_url(m)
    assert "etcd_server_has_leader" in scrape(url)
    assert get(f"{url}/health")[0] == 200
    assert get(f"{url}/readyz") == (200, "ok\n")
    assert get(f"{url}/v3/kv/range")[0] == 404


def test_probes_answer_as_etcds(cluster):
    m = cluster.members[1]
    assert get(f"{m.client_url}/livez") == (200, "ok\n")
    assert get(f"{m.client_url}/readyz?verbose") == (200, (
        "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n"
        "[+]non_learner ok\nok\n"))
    assert get(f"{m.client_url}/readyz?verbose&exclude=linearizable_read") == (200, (
        "[+]data_corruption ok\n[+]serializable_read ok\n[+]non_learner ok\nok\n"))
    assert get(f"{m.client_url}/readyz/non_learner?verbose") == (200, "[+]non_learner ok\nok\n")
    assert get(f"{m.client_url}/readyz/no_such_check")[0] == 404
    request = urllib.request.Request(f"{m.client_url}/livez", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405


def test_without_a_quorum_a_member_is_live_but_not_ready(cluster):
    """Last: it stops two members."""
    survivor, *others = cluster.members
    for m in others:
        m.stop()
    assert get(f"{survivor.client_url}/livez") == (200, "ok\n")
    status, body = get(f"{survivor.client_url}/readyz")
    assert status == 503
    assert "[+]serializable_read ok\n" in body and "[-]linearizable_read failed: " in body
    families = scrape(survivor.client_url)
    assert wait_until(lambda: value(scrape(survivor.client_url), "etcd_server_has_leader") == 0,
                      10)
    assert value(families, "etcd_server_proposals_pending") >= 0
