"""Backend quota: etcd's --quota-backend-bytes, its request cost, and the LMDB map.

LMDB's map size is a hard ceiling (MDB_MAP_FULL), unlike the quota, which only
stops puts. The map is the quota plus headroom, so that once over quota the
writes that must still work - deletes, compaction, alarm changes, the applied
index - find pages (copy-on-write needs new pages even to delete).
"""

from __future__ import annotations

from petcd.api.etcdserverpb import rpc_pb2 as pb

DEFAULT_QUOTA_BYTES = 2 * 1024**3  # etcd's DefaultQuotaBytes
MIN_HEADROOM_BYTES = 256 * 1024**2
_MAP_ALIGN_BYTES = 1024**2

# etcd's estimates of the metadata a stored key costs (server/storage/quota.go).
KV_OVERHEAD_BYTES = 256
LEASE_OVERHEAD_BYTES = 64


def map_size_bytes(quota_bytes: int) -> int:
    """LMDB map size for a quota: quota + max(quota / 4, 256 MiB), MiB-aligned."""
    assert quota_bytes > 0, quota_bytes
    size = quota_bytes + max(quota_bytes // 4, MIN_HEADROOM_BYTES)
    return -(-size // _MAP_ALIGN_BYTES) * _MAP_ALIGN_BYTES


def _put_cost(r: pb.PutRequest) -> int:
    return KV_OVERHEAD_BYTES + len(r.key) + len(r.value)


def _branch_cost(ops: "list[pb.RequestOp]") -> int:
    # As in etcd, only puts at this level count; nested txns cost nothing.
    return sum(_put_cost(op.request_put) for op in ops if op.WhichOneof("request") == "request_put")


def request_cost(request: object) -> int:
    """etcd's BackendQuota.Cost: bytes a request may add; 0 for non-mutating ones."""
    if isinstance(request, pb.PutRequest):
        return _put_cost(request)
    if isinstance(request, pb.TxnRequest):
        return max(_branch_cost(list(request.success)), _branch_cost(list(request.failure)))
    if isinstance(request, pb.LeaseGrantRequest):
        return LEASE_OVERHEAD_BYTES
    return 0


def fits(db_size_bytes: int, quota_bytes: int, cost_bytes: int) -> bool:
    """etcd's BackendQuota.Available: nothing to add always fits."""
    return cost_bytes == 0 or db_size_bytes + cost_bytes < quota_bytes
