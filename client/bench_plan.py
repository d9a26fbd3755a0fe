"""Which keys each petcd-bench request touches: pure, the same for every protocol.

Requests are numbered globally (0, 1, 2, ... over all connections and workers;
connection c sends a contiguous run of numbers), so `put --total K --key-space K`
writes every key of the space exactly once, whatever --conns and --workers are.

A key is `--key-prefix` followed by its number in decimal, zero-padded to --key-size
digits: with the defaults request 1234 uses key b"00001234".

    put, txn, range    request g touches key g mod key_space
    put --txn-ops N    request g puts keys g*N .. g*N+N-1 (mod key_space) in one Txn
    range --prefix     request g ranges over the prefix of key g with its last d digits
                       dropped, d = ceil(log10(limit)): 10**d consecutive keys, of which
                       --limit are returned. `range --prefix --limit 100` over keys
                       put with `put --total K --key-space K` (K a multiple of 100)
                       returns 100 keys per request; `--limit 1` a range of 1 key.
"""

from __future__ import annotations

from dataclasses import dataclass

OPS = ("put", "range", "txn")


@dataclass(frozen=True, slots=True)
class Plan:
    op: str
    key_size: int  # decimal digits of the key number
    key_space: int  # distinct keys: numbers 0 .. key_space-1
    key_prefix: bytes = b""
    val_size: int = 256
    txn_ops: int = 1  # put: keys per request (>1: one Txn of puts)
    limit: int = 0  # range: most keys returned, 0 = no limit
    prefix: bool = False  # range: over a prefix of the key, not the key alone
    serializable: bool = False
    trace: bool = False  # put: ask petcd for each write's stage times (petcd-trace)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r}")
        if not 1 <= self.key_space <= 10 ** self.key_size:
            raise ValueError(f"--key-space must be 1..{10 ** self.key_size:,} "
                             "(key numbers have --key-size digits)")
        if self.txn_ops < 1 or self.limit < 0:
            raise ValueError("--txn-ops must be >= 1 and --limit >= 0")
        if self.prefix_digits > self.key_size:
            raise ValueError(f"--prefix --limit {self.limit} drops {self.prefix_digits} "
                             f"digits of keys that have {self.key_size} (--key-size)")

    def key(self, n: int) -> bytes:
        return self.key_prefix + f"{n % self.key_space:0{self.key_size}d}".encode()

    def put_keys(self, request: int) -> list[bytes]:
        first = request * self.txn_ops
        return [self.key(first + i) for i in range(self.txn_ops)]

    @property
    def prefix_digits(self) -> int:
        """Digits dropped from a key to form a prefix that covers at least `limit` keys."""
        if not self.prefix or self.limit <= 1:
            return 0
        return len(str(self.limit - 1))

    def range_bounds(self, request: int) -> tuple[bytes, bytes]:
        """(key, range_end) of a range request; range_end b"" means the key alone."""
        key = self.key(request)
        if not self.prefix:
            return key, b""
        start = key[:len(key) - self.prefix_digits]
        return start, prefix_end(start)

    def value(self) -> bytes:
        return b"x" * self.val_size


def prefix_end(prefix: bytes) -> bytes:
    """etcd's range_end for "every key starting with prefix" (clientv3.GetPrefixRangeEnd)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # all keys
