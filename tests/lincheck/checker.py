"""The whole history: one search per key, and the revision check across keys.

Linearizability is local (Herlihy & Wing 1990): a history of independent registers
is linearizable iff each register's sub-history is. So each key is searched on its
own, and the search's cost grows with the ops of one key and how many overlap, not
with the whole history's length.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

from .history import History, Op
from .register import relevant
from .revisions import check_revisions
from .search import KeyVerdict, Status, search

MAX_STATES_PER_KEY = 200_000  # about a second of search in CPython
SHOWN_PROBLEMS = 5  # of each kind, in an assertion's message


@dataclass(frozen=True, slots=True)
class Report:
    keys: tuple[KeyVerdict, ...]
    revision_problems: tuple[str, ...]

    @property
    def violations(self) -> list[KeyVerdict]:
        return [v for v in self.keys if v.status is Status.VIOLATION]

    @property
    def undecided(self) -> list[KeyVerdict]:
        return [v for v in self.keys if v.status is Status.UNDECIDED]

    @property
    def ok(self) -> bool:
        """Every key linearizable and revisions in real-time order."""
        return all(v.status is Status.OK for v in self.keys) and not self.revision_problems

    def __str__(self) -> str:
        ops = sum(v.ops for v in self.keys)
        lines = [f"{ops} ops on {len(self.keys)} keys: {len(self.violations)} not linearizable, "
                 f"{len(self.undecided)} undecided, {len(self.revision_problems)} revision problems"]
        lines += [str(v) for v in [*self.violations, *self.undecided][:SHOWN_PROBLEMS]]
        lines += self.revision_problems[:SHOWN_PROBLEMS]
        return "\n".join(lines)


class LinearizabilityError(AssertionError):
    def __init__(self, report: Report) -> None:
        assert not report.ok, "raised for a good history"
        super().__init__(str(report))
        self.report = report


def check(history: History | Iterable[Op], initial: Mapping[Hashable, Hashable] | None = None,
          max_states_per_key: int = MAX_STATES_PER_KEY) -> Report:
    """`initial`: the value of each key that existed before the first op; every other
    key starts absent."""
    ops = history.ops() if isinstance(history, History) else list(history)
    by_key: dict[Hashable, list[Op]] = defaultdict(list)
    for op in ops:
        if relevant(op):
            by_key[op.key].append(op)
    start = initial or {}
    verdicts = tuple(search(key, key_ops, start.get(key), max_states_per_key)
                     for key, key_ops in by_key.items())
    return Report(verdicts, tuple(check_revisions(ops)))


def assert_linearizable(history: History | Iterable[Op], initial: Mapping[Hashable, Hashable] | None = None,
                        max_states_per_key: int = MAX_STATES_PER_KEY) -> Report:
    """Raise LinearizabilityError on a violation, and on an undecided key too: a check
    that gave up has not passed."""
    report = check(history, initial, max_states_per_key)
    if not report.ok:
        raise LinearizabilityError(report)
    return report
