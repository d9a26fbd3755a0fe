"""One watch's stream as a sequence: created first, events in order and once each,
each revision whole, nothing outside what was asked, bookmarks kept, nothing after a
cancel, and a compaction cancel only when the watch needed compacted revisions."""

from __future__ import annotations

from collections.abc import Set

from .events import Event
from .history import History
from .streams import Response, Stream
from .violations import Guarantee, Violation


class _Walk:
    """The position of one stream as its responses are read in order."""

    def __init__(self, stream: Stream, history: History, compactions: Set[int]) -> None:
        self.stream = stream
        self.history = history
        self.compactions = compactions
        self.violations: list[Violation] = []
        self.seen: set[tuple[int, bytes]] = set()
        self.last_revision = 0  # of the last event
        self.last_response = -1  # index of the response that carried it
        self.bookmark = 0  # highest progress notification so far
        self.canceled_by: Response | None = None

    def report(self, guarantee: Guarantee, revision: int | None, key: bytes | None,
               detail: str) -> None:
        self.violations.append(Violation(guarantee, self.stream.name, revision, key, detail))

    def run(self) -> list[Violation]:
        responses = self.stream.responses
        if responses and not responses[0].created:
            self.report(Guarantee.CREATED, None, None,
                        f"the stream begins with {responses[0].label}, not a created response")
        for response in responses:
            self.on_response(response)
        return self.violations

    def on_response(self, response: Response) -> None:
        if response.created and response.events:
            self.report(Guarantee.CREATED, response.revision, None,
                        f"created {response.label} carries {len(response.events)} events")
        if response.fragmented and not self.stream.spec.fragment:
            self.report(Guarantee.ATOMIC, response.revision, None,
                        f"{response.label} came in fragments, but the watch did not ask fragment")
        if response.is_progress:
            self.on_progress(response)
        for event in response.events:
            self.on_event(response, event)
        self.check_order_within_revisions(response)
        if response.canceled:
            self.on_cancel(response)

    def on_progress(self, response: Response) -> None:
        if response.revision < self.bookmark:
            self.report(Guarantee.BOOKMARKABLE, response.revision, None,
                        f"progress went back from {self.bookmark} in {response.label}")
        if response.revision < self.last_revision:
            # A client resumes after a bookmark: from here it would get events again.
            self.report(Guarantee.BOOKMARKABLE, response.revision, None,
                        f"progress in {response.label} is below the event at "
                        f"{self.last_revision} already delivered")
        self.bookmark = max(self.bookmark, response.revision)

    def on_event(self, response: Response, event: Event) -> None:
        revision, key = event.revision, event.key
        if self.canceled_by is not None:
            self.report(Guarantee.CANCELED, revision, key, f"{event} in {response.label}, "
                        f"after the cancel in {self.canceled_by.label}")
        if (revision, key) in self.seen:
            self.report(Guarantee.UNIQUE, revision, key,
                        f"{event} delivered again in {response.label}")
            return
        if revision < self.last_revision:
            self.report(Guarantee.ORDERED, revision, key,
                        f"{event} in {response.label} came after revision {self.last_revision}")
        elif revision == self.last_revision and response.index != self.last_response:
            self.report(Guarantee.ATOMIC, revision, key,
                        f"revision {revision} split: {event} in {response.label}, other events of "
                        f"it in response #{self.last_response}")
        if revision <= self.bookmark:
            self.report(Guarantee.BOOKMARKABLE, revision, key,
                        f"{event} in {response.label}, after progress at {self.bookmark}")
        self.check_wanted(response, event)
        self.seen.add((revision, key))
        if revision >= self.last_revision:
            self.last_revision, self.last_response = revision, response.index

    def check_wanted(self, response: Response, event: Event) -> None:
        spec, start = self.stream.spec, self.stream.start
        if not spec.covers(event.key):
            self.report(Guarantee.FILTERED, event.revision, event.key,
                        f"{event} in {response.label} is outside the watched {spec.watched}")
        if spec.filters(event.type):
            self.report(Guarantee.FILTERED, event.revision, event.key,
                        f"{event} in {response.label}, but the watch filters {event.type.name}")
        if start is not None and event.revision < start:
            self.report(Guarantee.FILTERED, event.revision, event.key,
                        f"{event} in {response.label} is below the start revision {start}")

    def check_order_within_revisions(self, response: Response) -> None:
        """Events of one revision come in the order the write made its changes."""
        by_revision: dict[int, dict[bytes, None]] = {}  # dicts keep order, drop duplicates
        for event in response.events:
            by_revision.setdefault(event.revision, {})[event.key] = None
        for revision, unique_keys in by_revision.items():
            keys = list(unique_keys)
            written = [key for key in self.history.order(revision) if key in keys]
            if set(written) == set(keys) and written != keys:
                self.report(Guarantee.ORDERED, revision, None,
                            f"{response.label} has the keys of revision {revision} as {keys}, "
                            f"the write made them as {written}")

    def on_cancel(self, response: Response) -> None:
        self.canceled_by = response
        compacted = response.compact_revision
        if not compacted:
            return
        if compacted not in self.compactions:
            self.report(Guarantee.CANCELED, compacted, None,
                        f"{response.label} cancels for a compaction at {compacted}, "
                        f"but none was recorded there")
        wanted = max(self.stream.start or 0, self.last_revision + 1, self.bookmark + 1)
        if wanted >= compacted:
            # etcd cancels a watch only if the next revision it needs is below the
            # store's compaction revision (watchable_store.go, chooseAll).
            self.report(Guarantee.CANCELED, compacted, None,
                        f"{response.label} cancels for a compaction at {compacted}, but the watch "
                        f"needed revisions from {wanted} on, which that compaction kept")


def sequence_violations(stream: Stream, history: History, compactions: Set[int]) -> list[Violation]:
    return _Walk(stream, history, compactions).run()
