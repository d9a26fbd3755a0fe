"""What each watcher must have got: every known change it asked for, from its start
up to the revision it is known to have reached, the same as every other watcher."""

from __future__ import annotations

from collections.abc import Sequence

from .events import Event
from .history import History
from .streams import Stream
from .violations import Guarantee, Violation


def missed(stream: Stream, history: History) -> list[Violation]:
    """Known changes inside the stream's window that it did not deliver: a gap.
    The window ends at the last event or progress notification, not at a response's
    header.revision: etcd sends catch-up batches with the store's current revision."""
    if stream.start is None:
        return []  # never created: reported as such
    violations = []
    for (revision, key), step in history.steps_between(stream.start, stream.reached):
        if stream.spec.wants(step.change.type, key) and (revision, key) not in stream.delivered:
            violations.append(Violation(
                Guarantee.RELIABLE, stream.name, revision, key,
                f"missed {step.change} ({step.source}) although the watch, from "
                f"{stream.start}, reached {stream.reached}"))
    return violations


def _same(one: Event, other: Event) -> bool:
    return (one.type, one.kv) == (other.type, other.kv)  # prev_kv depends on the request


def disagreements(streams: Sequence[Stream]) -> list[Violation]:
    """Every watcher that got an event for (revision, key) got the same one."""
    first: dict[tuple[int, bytes], tuple[str, Event]] = {}
    violations = []
    for stream in streams:
        for (revision, key), event in stream.delivered.items():
            name, reference = first.setdefault((revision, key), (stream.name, event))
            if not _same(event, reference):
                violations.append(Violation(Guarantee.AGREED, stream.name, revision, key,
                                            f"got {event}, but {name!r} got {reference}"))
    return violations
