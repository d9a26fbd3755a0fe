"""Member and cluster IDs match etcd's, so `member list` and `endpoint status` read the
same for a petcd cluster as for an etcd cluster bootstrapped with the same flags."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import given, strategies as st

from petcd.config import load
from petcd.config.ids import cluster_id, format_id, member_id

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_etcds_default_single_member():
    # `etcd` with no flags reports member 8e9e05c52164694d in cluster cdf818194e3a8c32.
    member = member_id(["http://localhost:2380"], "etcd-cluster")
    assert format_id(member) == "8e9e05c52164694d"
    assert format_id(cluster_id([member])) == "cdf818194e3a8c32"


def test_etcds_procfile_cluster_from_its_docs():
    # etcd's Procfile cluster (token etcd-cluster-1) as `etcdctl member list` shows it in
    # etcd's documentation, and its cluster ID as `etcdctl member add` reports it.
    peers = {"infra1": "http://127.0.0.1:12380", "infra2": "http://127.0.0.1:22380",
             "infra3": "http://127.0.0.1:32380"}
    ids = {name: member_id([url], "etcd-cluster-1") for name, url in peers.items()}
    assert {n: format_id(i) for n, i in ids.items()} == {
        "infra1": "8211f1d0f64f3269", "infra2": "91bc3c398fb3c146", "infra3": "fd422379fda50e48"}
    assert format_id(cluster_id(ids.values())) == "ef37ad9dc622a7c4"


def test_example_config_cluster_by_hand():
    # Following etcd by hand for config/examples/petcd.conf.yml:
    # sha1("http://10.0.1.10:2380" + "petcd-cluster-1") = 44703276ff352389 2ddb2514...
    # sha1("http://10.0.1.11:2380" + "petcd-cluster-1") = a93ecca623d40501 4822ec03...
    # sha1("http://10.0.1.12:2380" + "petcd-cluster-1") = 230d603326be2183 b3053e18...
    # cluster: sha1 of the IDs sorted, 8 bytes each, big-endian:
    #   230d603326be2183 44703276ff352389 a93ecca623d40501 -> 134305eeffa78fb3...
    s = load(["--config-file", str(REPO_ROOT / "config" / "examples" / "petcd.conf.yml")], {})
    ids = {m.name: member_id([str(u) for u in m.peer_urls], s.initial_cluster_token)
           for m in s.initial_cluster}
    assert {n: format_id(i) for n, i in ids.items()} == {
        "infra0": "44703276ff352389", "infra1": "a93ecca623d40501", "infra2": "230d603326be2183"}
    assert format_id(cluster_id(ids.values())) == "134305eeffa78fb3"
    sorted_ids = bytes.fromhex("230d603326be2183" "44703276ff352389" "a93ecca623d40501")
    assert hashlib.sha1(sorted_ids).hexdigest()[:16] == "134305eeffa78fb3"


def test_a_member_with_several_peer_urls_hashes_them_sorted_and_joined():
    # sha1("http://10.0.0.1:2380" "http://10.0.0.2:2380" "tok") = 0d3b8edf9430e965...
    expected = 0x0D3B8EDF9430E965
    assert member_id(["http://10.0.0.2:2380", "http://10.0.0.1:2380"], "tok") == expected
    assert member_id(["http://10.0.0.1:2380", "http://10.0.0.2:2380"], "tok") == expected
    assert format_id(expected) == "d3b8edf9430e965"  # %x: no leading zero


def test_member_added_at_runtime_also_hashes_the_unix_time():
    # etcd's `member add` passes the time; --initial-cluster members do not.
    bootstrapped = member_id(["http://localhost:2380"], "etcd-cluster")
    added = member_id(["http://localhost:2380"], "etcd-cluster", now_unix_s=1_700_000_000)
    assert added != bootstrapped
    assert format_id(added) == hashlib.sha1(b"http://localhost:2380etcd-cluster1700000000").hexdigest()[:16]


def test_the_token_separates_clusters_on_the_same_addresses():
    urls = ["http://localhost:2380"]
    assert member_id(urls, "etcd-cluster") != member_id(urls, "etcd-cluster-2")


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=7, unique=True), st.randoms())
def test_cluster_id_does_not_depend_on_member_order(ids, rng):
    shuffled = list(ids)
    rng.shuffle(shuffled)
    assert cluster_id(shuffled) == cluster_id(ids)
