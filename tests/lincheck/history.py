"""What clients asked and were told: one Op per call, recorded from many threads.

A test thread calls `history.invoke(...)` just before it sends a request and one of
`ok`, `failed` or `unknown` on the returned Call once it knows how it ended:

    call = history.invoke("writer-1", Kind.PUT, "k", "v7")
    try:
        resp = client.put("k", "v7")
    except EtcdError:
        call.unknown()          # timed out, leader changed: applied or not, who knows
    else:
        call.ok(revision=resp.header.revision)

Times are time.monotonic_ns() on this machine, so ops of different threads compare.
A call never finished (its thread died) counts as unknown.
"""

from __future__ import annotations

import enum
import itertools
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass


class Kind(enum.Enum):
    """What an op does to its key's register, and what its result means.

    PUT     arg: the value written; result: None.
    GET     arg: None; result: the value read, None if the key was absent.
    DELETE  arg: None; result: whether it deleted the key (deleted > 0).
    CAS     arg: (expected, new), expected None meaning "absent"; result: whether the
            compare held and `new` was written (etcd's txn `succeeded`).
    """

    PUT = "put"
    GET = "get"
    DELETE = "delete"
    CAS = "cas"


class Outcome(enum.Enum):
    OK = "ok"  # answered: the result is what the server said
    FAILED = "failed"  # an error after which etcd guarantees nothing was applied
    UNKNOWN = "unknown"  # no answer (timeout, lost connection, leader changed)


@dataclass(frozen=True, slots=True)
class Op:
    client: str
    kind: Kind
    key: Hashable
    arg: Hashable
    invoke_ns: int
    response_ns: int | None  # None unless OK or FAILED
    outcome: Outcome
    result: Hashable = None  # meaningful only when OK
    revision: int | None = None  # the response header's, when OK and known

    def __post_init__(self) -> None:
        answered = self.outcome is not Outcome.UNKNOWN
        assert (self.response_ns is not None) == answered, f"a response time iff answered: {self}"
        assert self.response_ns is None or self.response_ns >= self.invoke_ns, f"answered before asked: {self}"
        assert self.outcome is Outcome.OK or (self.result is None and self.revision is None), \
            f"only an answered op has a result: {self}"
        _check_arg(self.kind, self.arg)

    def __str__(self) -> str:
        arg = "" if self.arg is None else f"({self.arg!r})"
        told = {Outcome.OK: f"-> {self.result!r}", Outcome.FAILED: "failed", Outcome.UNKNOWN: "no answer"}
        at = "" if self.revision is None else f" @rev {self.revision}"
        until = "..." if self.response_ns is None else f"{self.response_ns}"
        when = f"[{self.invoke_ns}, {until}]"
        return f"{self.client}: {self.kind.value} {self.key!r}{arg} {told[self.outcome]}{at} {when}"


def _check_arg(kind: Kind, arg: Hashable) -> None:
    assert (arg is None) == (kind in (Kind.GET, Kind.DELETE)), f"{kind} with argument {arg!r}"
    assert kind is not Kind.CAS or isinstance(arg, tuple) and len(arg) == 2, f"CAS takes (expected, new): {arg!r}"


class Call:
    """One request in flight; finish it exactly once."""

    __slots__ = ("_history", "_number", "client", "kind", "key", "arg", "invoke_ns")

    def __init__(self, history: History, number: int, client: str, kind: Kind, key: Hashable,
                 arg: Hashable) -> None:
        self._history, self._number = history, number
        self.client, self.kind, self.key, self.arg = client, kind, key, arg
        self.invoke_ns = time.monotonic_ns()

    def ok(self, result: Hashable = None, revision: int | None = None) -> None:
        self._finish(Outcome.OK, time.monotonic_ns(), result, revision)

    def failed(self) -> None:
        self._finish(Outcome.FAILED, time.monotonic_ns())

    def unknown(self) -> None:
        self._finish(Outcome.UNKNOWN, None)

    def as_op(self, outcome: Outcome, response_ns: int | None, result: Hashable = None,
              revision: int | None = None) -> Op:
        return Op(self.client, self.kind, self.key, self.arg, self.invoke_ns, response_ns,
                  outcome, result, revision)

    def _finish(self, outcome: Outcome, response_ns: int | None, result: Hashable = None,
                revision: int | None = None) -> None:
        self._history._finish(self._number, self.as_op(outcome, response_ns, result, revision))


class History:
    """Thread-safe and cheap: a lock held for a dict operation per call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers = itertools.count()
        self._pending: dict[int, Call] = {}
        self._done: dict[int, Op] = {}

    def invoke(self, client: str, kind: Kind, key: Hashable, arg: Hashable = None) -> Call:
        _check_arg(kind, arg)
        with self._lock:
            number = next(self._numbers)
            call = Call(self, number, client, kind, key, arg)
            self._pending[number] = call
        return call

    def _finish(self, number: int, op: Op) -> None:
        with self._lock:
            assert self._pending.pop(number, None) is not None, f"finished twice: {op}"
            self._done[number] = op

    def ops(self) -> list[Op]:
        """Every op in invocation order, those still pending as unknown."""
        with self._lock:
            pending = {n: c.as_op(Outcome.UNKNOWN, None) for n, c in self._pending.items()}
            merged = {**self._done, **pending}
        return [merged[n] for n in sorted(merged)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._done) + len(self._pending)
