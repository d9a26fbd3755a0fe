"""Revisions against real time, across all keys (the check etcd's robustness tests add).

Every answer carries the store's revision (header.revision), one total order of
writes shared by all members. So, for any two answered ops A and B where A was
answered before B was sent: B's revision is at least A's, and greater if B wrote
(a put, a delete that deleted, a compare-and-put that succeeded: each makes a new
revision). And no two writes share a revision. It is one sweep over the history, and
it catches a stale member answering, even on a key nobody read twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from .history import Kind, Op, Outcome


def wrote(op: Op) -> bool:
    """An answered op that made a new revision."""
    return op.kind is Kind.PUT or op.kind in (Kind.DELETE, Kind.CAS) and op.result is True


def check_revisions(ops: Sequence[Op]) -> list[str]:
    """Every op that contradicts real time (one line each, naming the highest-revision
    op answered before it was sent), and every revision two writes share."""
    answered = [_Timed(op) for op in ops if op.outcome is Outcome.OK and op.revision is not None]
    return _out_of_order(answered) + _shared(answered)


class _Timed:
    """An answered op with a revision, its fields no longer optional."""

    __slots__ = ("op", "invoke_ns", "response_ns", "revision", "wrote")

    def __init__(self, op: Op) -> None:
        assert op.response_ns is not None and op.revision is not None, op
        self.op, self.invoke_ns, self.response_ns, self.revision = op, op.invoke_ns, op.response_ns, op.revision
        self.wrote = wrote(op)


def _out_of_order(answered: list[_Timed]) -> list[str]:
    by_response = sorted(answered, key=lambda t: t.response_ns)
    done = 0
    highest: _Timed | None = None  # of the ops answered before the current one was sent
    problems = []
    for t in sorted(answered, key=lambda t: t.invoke_ns):
        while done < len(by_response) and by_response[done].response_ns < t.invoke_ns:
            if highest is None or by_response[done].revision > highest.revision:
                highest = by_response[done]
            done += 1
        if highest is None:
            continue
        if t.revision < highest.revision or t.revision == highest.revision and t.wrote:
            problems.append(f"revision went back in real time: {highest.op} was answered "
                            f"before {t.op} was sent")
    return problems


def _shared(answered: list[_Timed]) -> list[str]:
    first: dict[int, Op] = {}
    problems = []
    for t in answered:
        if t.wrote and t.revision in first:
            problems.append(f"two writes at revision {t.revision}: {first[t.revision]} and {t.op}")
        elif t.wrote:
            first[t.revision] = t.op
    return problems
