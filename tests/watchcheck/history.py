"""What the writers did, and what the store must therefore have looked like.

Writers record each write with its changes; an acknowledged write also has its
revision. Watchers' events (and the final state, if read) then place the
unacknowledged writes that did happen. From all of it, each key's known changes are
replayed in revision order to say what every event must carry: create_revision,
version, and the prev_kv it replaces.

Where an unacknowledged write that no one saw could sit between two known changes
of a key, the key's state there is unknown and nothing is asserted about it, until
a delete (the key is then surely absent) or an observed event re-anchors it.
"""

from __future__ import annotations

import bisect
import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .events import KV, Event, EventType


@dataclass(frozen=True, slots=True)
class Change:
    type: EventType
    key: bytes
    value: bytes = b""
    lease: int = 0

    def __post_init__(self) -> None:
        if self.type is EventType.DELETE:
            assert not self.value and not self.lease, f"a delete carries no value: {self}"

    def __str__(self) -> str:
        if self.type is EventType.DELETE:
            return f"DELETE {self.key!r}"
        return f"PUT {self.key!r}={self.value!r}" + (f" lease {self.lease}" if self.lease else "")


def put(key: bytes, value: bytes, lease: int = 0) -> Change:
    return Change(EventType.PUT, key, value, lease)


def delete(key: bytes) -> Change:
    return Change(EventType.DELETE, key)


@dataclass(frozen=True, slots=True)
class Write:
    """One put, delete-range or txn, with every change it made (a txn: the branch it
    took; a delete-range: the keys it deleted). `revision` is the response header's if
    the write was acknowledged, None if its outcome is unknown (then: the changes it
    meant to make). A write with no change made no revision and is ignored."""

    changes: tuple[Change, ...]
    revision: int | None = None
    writer: str = "writer"

    def __post_init__(self) -> None:
        keys = [change.key for change in self.changes]
        # etcd refuses a txn that touches one key twice, so a key changes once a revision.
        assert len(keys) == len(set(keys)), f"a write changes a key twice: {self}"
        assert self.revision is None or self.revision > 1, f"revision 1 is the empty store: {self}"

    def change_of(self, key: bytes) -> Change | None:
        return next((change for change in self.changes if change.key == key), None)

    def __str__(self) -> str:
        at = "unacknowledged" if self.revision is None else f"acknowledged at {self.revision}"
        return f"{self.writer}'s [{', '.join(map(str, self.changes))}] ({at})"


@dataclass(frozen=True, slots=True)
class Observation:
    source: str  # a watcher's name, or "final state"
    event: Event


class Unknown(enum.Enum):
    UNKNOWN = "unknown"


UNKNOWN = Unknown.UNKNOWN
State = KV | None | Unknown  # a key's live value; None: the key does not exist


@dataclass(frozen=True, slots=True)
class Step:
    """A known change of one key, and what a watcher must see for it."""

    change: Change
    before: State  # the key's value just before: prev_kv of the event
    after: State  # the event's kv for a PUT; None for a DELETE
    source: str  # who says it happened, for messages


@dataclass(frozen=True, slots=True)
class History:
    writes: Mapping[int, Write]  # revision -> the write made there: acknowledged or placed
    steps: Mapping[tuple[int, bytes], Step]  # (revision, key) -> its known change
    invented: tuple[tuple[Observation, str], ...]  # seen but never written, and why not
    ordered: tuple[tuple[int, bytes], ...]  # the keys of `steps`, sorted

    def __post_init__(self) -> None:
        assert len(self.ordered) == len(self.steps), "ordered must index every step"

    def steps_between(self, low: int, high: int) -> Iterable[tuple[tuple[int, bytes], Step]]:
        """The known changes from revision `low` to `high`, both included, in order."""
        first = bisect.bisect_left(self.ordered, (low, b""))
        for revision, key in self.ordered[first:]:
            if revision > high:
                return
            yield (revision, key), self.steps[(revision, key)]

    def order(self, revision: int) -> tuple[bytes, ...]:
        """The keys changed at `revision`, in the order the write changed them."""
        write = self.writes.get(revision)
        return () if write is None else tuple(change.key for change in write.changes)


def build_history(writes: Iterable[Write], observations: Iterable[Observation],
                  initial: Iterable[KV] = ()) -> History:
    writes = [write for write in writes if write.changes]
    observations = list(observations)
    acknowledged = _acknowledged(writes)
    firsts: dict[tuple[int, bytes], Observation] = {}
    for observation in observations:
        firsts.setdefault((observation.event.revision, observation.event.key), observation)
    unacknowledged = [write for write in writes if write.revision is None]
    placed_at = _place(acknowledged, unacknowledged, firsts)  # revision -> write index
    placed = {revision: unacknowledged[index] for revision, index in placed_at.items()}
    made = {**acknowledged, **placed}
    invented = tuple((observation, reason) for observation in observations
                     if (reason := _unwritten(made, observation.event)) is not None)
    changes = _known_changes(made, set(acknowledged), firsts)
    placed_indexes = set(placed_at.values())
    never_placed = [write for index, write in enumerate(unacknowledged)
                    if index not in placed_indexes]
    initial_state = {kv.key: kv for kv in initial}
    base = max([1, *(kv.mod_revision for kv in initial_state.values())])
    uncertainty = _Uncertainty.of(base, made, placed, never_placed, changes)
    steps: dict[tuple[int, bytes], Step] = {}
    for key, key_changes in changes.items():
        steps.update(_replay(key, key_changes, initial_state.get(key), base, uncertainty))
    return History(made, steps, invented, tuple(sorted(steps)))


def _acknowledged(writes: list[Write]) -> dict[int, Write]:
    by_revision: dict[int, Write] = {}
    for write in writes:
        if write.revision is None:
            continue
        if write.revision in by_revision:
            raise ValueError(f"two writes acknowledged at revision {write.revision}: "
                             f"{by_revision[write.revision]} and {write}")
        by_revision[write.revision] = write
    return by_revision


def _mismatch(write: Write, event: Event) -> str | None:
    """Why `write` cannot have made `event`, or None if it can."""
    change = write.change_of(event.key)
    if change is None:
        return f"the write there, {write}, did not change this key"
    if change.type is not event.type:
        return f"the write there, {write}, made {change}"
    if change.type is EventType.PUT and (change.value, change.lease) != (event.kv.value,
                                                                          event.kv.lease):
        return f"the write there, {write}, made {change}"
    return None


def _place(acknowledged: dict[int, Write], unacknowledged: list[Write],
           firsts: dict[tuple[int, bytes], Observation]) -> dict[int, int]:
    """Give each revision that was seen but not acknowledged the unacknowledged write
    (its index) that explains most of its events, and of those the one with the fewest
    changes left unseen; each write happens at most once. Greedy, so values unique in
    the run make it exact."""
    seen_at: dict[int, list[Event]] = defaultdict(list)
    for (revision, _), observation in firsts.items():
        if revision not in acknowledged:
            seen_at[revision].append(observation.event)
    free = list(range(len(unacknowledged)))
    placed: dict[int, int] = {}
    for revision in sorted(seen_at):
        def fit(index: int, revision: int = revision) -> tuple[int, int]:
            write = unacknowledged[index]
            explained = sum(_mismatch(write, event) is None for event in seen_at[revision])
            return explained, explained - len(write.changes)
        best = max(free, key=fit, default=None)
        if best is not None and fit(best)[0] > 0:
            free.remove(best)
            placed[revision] = best
    return placed


def _unwritten(made: dict[int, Write], event: Event) -> str | None:
    write = made.get(event.revision)
    if write is None:
        return "no write was acknowledged there, and no unacknowledged one could make it"
    return _mismatch(write, event)


@dataclass(frozen=True, slots=True)
class _KnownChange:
    revision: int
    change: Change
    seen: KV | None  # what a watcher saw of it, if one did (and it matches the write)
    source: str  # who says it happened


def _known_changes(made: dict[int, Write], acknowledged: set[int],
                   firsts: dict[tuple[int, bytes], Observation]) -> dict[bytes, list[_KnownChange]]:
    """Every change of an acknowledged write, and of a placed write those that were
    seen (a placed txn's other changes, or a delete-range's other candidates, may not
    have been made). Per key, in revision order."""
    changes: dict[bytes, list[_KnownChange]] = defaultdict(list)
    for revision, write in sorted(made.items()):
        for change in write.changes:
            observation = firsts.get((revision, change.key))
            if observation is not None and _mismatch(write, observation.event) is not None:
                observation = None
            seen = None if observation is None else observation.event.kv
            if revision in acknowledged:
                source = f"acknowledged to {write.writer}"
            elif observation is not None:
                source = f"seen by {observation.source}"
            else:
                continue
            changes[change.key].append(_KnownChange(revision, change, seen, source))
    return changes


@dataclass(frozen=True, slots=True)
class _Uncertainty:
    """Where an unacknowledged write that nobody saw may have changed a key."""

    free: tuple[int, ...]  # sorted revisions that no known write holds
    anywhere: frozenset[bytes]  # keys of writes never placed: at any free revision
    at: Mapping[bytes, frozenset[int]]  # keys of placed writes, where they were not seen

    @classmethod
    def of(cls, base: int, made: dict[int, Write], placed: dict[int, Write],
           never_placed: list[Write], changes: dict[bytes, list[_KnownChange]]) -> _Uncertainty:
        free = tuple(r for r in range(base + 1, max(made, default=base) + 1) if r not in made)
        anywhere = frozenset(change.key for write in never_placed for change in write.changes)
        known = {(entry.revision, key) for key, entries in changes.items() for entry in entries}
        at: dict[bytes, set[int]] = defaultdict(set)
        for revision, write in placed.items():
            for change in write.changes:
                if (revision, change.key) not in known:
                    at[change.key].add(revision)
        return cls(free, anywhere, {key: frozenset(revisions) for key, revisions in at.items()})

    def certain(self, key: bytes, low: int, high: int) -> bool:
        """Whether nothing unseen can have changed `key` strictly between low and high."""
        if key in self.anywhere:
            free_between = bisect.bisect_left(self.free, high) - bisect.bisect_right(self.free, low)
            if free_between:
                return False
        return not any(low < revision < high for revision in self.at.get(key, ()))


def _replay(key: bytes, changes: list[_KnownChange], initial: KV | None, base: int,
            uncertainty: _Uncertainty) -> Iterable[tuple[tuple[int, bytes], Step]]:
    state: State = initial
    last = base
    for entry in changes:
        if not uncertainty.certain(key, last, entry.revision):
            state = UNKNOWN
        after = _apply(state, entry.change, entry.revision, entry.seen)
        yield (entry.revision, key), Step(entry.change, state, after, entry.source)
        state, last = after, entry.revision


def _apply(state: State, change: Change, revision: int, seen: KV | None) -> State:
    if change.type is EventType.DELETE:
        return None
    if state is UNKNOWN:
        # What was seen becomes the expectation: unchecked, but it re-anchors the key.
        return UNKNOWN if seen is None else seen
    if state is None:
        return KV(change.key, change.value, revision, revision, 1, change.lease)
    return KV(change.key, change.value, state.create_revision, revision, state.version + 1,
              change.lease)
