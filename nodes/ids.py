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
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence

ID_BYTES = 8
NO_ID = 0  # raft.None: never a valid member ID
_HEX_ID = re.compile(r"[0-9a-fA-F]{1,16}")


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


def initial_member_ids(members: Mapping[str, Sequence[str]], cluster_token: str) -> dict[str, int]:
    """Member IDs by name for a bootstrapping cluster (--initial-cluster), refusing
    what etcd refuses: an ID of 0 and two members with one ID."""
    ids = {name: member_id(urls, cluster_token) for name, urls in members.items()}
    if NO_ID in ids.values():
        raise ValueError(f"cannot use {NO_ID:x} as member id")
    if len(set(ids.values())) != len(ids):
        raise ValueError("member exists with identical ID")
    return ids


def format_id(id_: int) -> str:
    """Hex as etcd prints IDs: 8e9e05c52164694d, no 0x, no leading zeros."""
    assert 0 <= id_ < 2**64, id_
    return f"{id_:x}"


def parse_id(text: str) -> int:
    """The inverse of format_id, for IDs a user types (`member remove 8e9e05c52164694d`)."""
    # int(text, 16) alone would also take "0x", "_", signs and spaces.
    if not _HEX_ID.fullmatch(text):
        raise ValueError(f"invalid member ID {text!r}: expected up to 16 hex digits")
    return int(text, 16)


def _first_8_bytes(digest: bytes) -> int:
    return int.from_bytes(digest[:ID_BYTES], "big")
