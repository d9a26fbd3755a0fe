"""Member and cluster IDs, derived exactly as etcd derives them, so that a petcd
cluster bootstrapped with etcd's flags reports the IDs etcd would, and etcdctl output
(`member list`, `endpoint status`) reads the same.

etcd (server/etcdserver/api/membership):
- member ID (computeMemberId): SHA-1 over the member's peer URLs sorted and joined with
  no separator, then the cluster token, then -- only for a member added at runtime
  (`member add`), not for the members of --initial-cluster -- the current Unix time
  in decimal. The ID is the first 8 bytes of the digest, big-endian.
- cluster ID (RaftCluster.genID): SHA-1 over the sorted member IDs, each as 8 bytes
  big-endian; the first 8 bytes of the digest, big-endian.
- IDs print as lower-case hex without leading zeros (types.ID.String, `%x`).

Example: one member with peer URL http://localhost:2380 and token etcd-cluster (etcd's
defaults) has member ID 8e9e05c52164694d in cluster cdf818194e3a8c32.

They are a function of the configuration (--initial-cluster, --initial-cluster-token),
so they live with it, at the bottom: the actors, the supervisor and the client may all
name a member the way etcd does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

ID_BYTES = 8


def member_id(peer_urls: Iterable[str], cluster_token: str, now_unix_s: int | None = None) -> int:
    """A member's ID. `peer_urls` as etcd prints them (str() of config.Url); pass
    `now_unix_s` only for a member added to a running cluster."""
    urls = sorted(peer_urls)  # code-point order is UTF-8 byte order, as Go sorts
    assert urls, "a member needs at least one peer URL"
    material = "".join(urls) + cluster_token
    if now_unix_s is not None:
        material += str(now_unix_s)
    return _first_8_bytes(hashlib.sha1(material.encode("utf-8")).digest())


def cluster_id(member_ids: Iterable[int]) -> int:
    ids = sorted(member_ids)
    assert ids and all(0 <= i < 2**64 for i in ids), ids
    return _first_8_bytes(hashlib.sha1(b"".join(i.to_bytes(ID_BYTES, "big") for i in ids)).digest())


def format_id(id_: int) -> str:
    """Hex as etcd prints IDs: 8e9e05c52164694d, no 0x, no leading zeros."""
    assert 0 <= id_ < 2**64, id_
    return f"{id_:x}"


def _first_8_bytes(digest: bytes) -> int:
    return int.from_bytes(digest[:ID_BYTES], "big")
