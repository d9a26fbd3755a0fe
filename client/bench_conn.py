"""What petcd-bench asks of a protocol: one connection that sends one request at a time.

bench_http (etcd's JSON gateway) and bench_grpc (etcd's gRPC API) implement it; the
worker (bench_worker) drives it without knowing which one it has.
"""

from __future__ import annotations

from typing import Protocol


class BenchError(Exception):
    """A request failed: the member answered an error, or the transport did."""


class Conn(Protocol):
    async def authenticate(self, user: str, password: str) -> str:
        """Authenticate; returns the token (the connection keeps sending its own)."""

    async def put(self, keys: list[bytes], value: bytes, trace: bool = False) -> str | None:
        """One Put, or one Txn of puts when given more than one key. With `trace`, the
        member's stage times (its `petcd-trace` answer, or None if it sent none)."""

    async def range(self, key: bytes, range_end: bytes, limit: int, serializable: bool) -> int:
        """Range; returns how many key-values came back."""

    async def cas(self, key: bytes, mod_revision: int, value: bytes) -> tuple[bool, int]:
        """Txn: if key's mod_revision == mod_revision (0: absent) put value, else read it.

        Returns whether the put happened and the key's mod_revision afterwards."""

    async def close(self) -> None: ...
