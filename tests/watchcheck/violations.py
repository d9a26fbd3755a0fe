"""What the checker reports: one Violation per broken promise, named after it."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Guarantee(enum.Enum):
    """etcd's watch guarantees (api_guarantees.md#watch-apis), split finely enough that
    a message says what broke. RELIABLE, AGREED and INVENTED together are etcd's
    "reliable"; FILTERED covers the key range, NOPUT/NODELETE and the start revision."""

    ORDERED = "ordered"
    UNIQUE = "unique"
    ATOMIC = "atomic"
    RELIABLE = "reliable"  # no gap
    AGREED = "agreed"  # every watcher sees the same event for a revision and key
    INVENTED = "invented"  # every event comes from a recorded write
    FILTERED = "filtered"
    KV = "kv"
    PREV_KV = "prev_kv"
    BOOKMARKABLE = "bookmarkable"
    CANCELED = "canceled"
    CREATED = "created"


@dataclass(frozen=True, slots=True)
class Violation:
    guarantee: Guarantee
    watcher: str
    revision: int | None  # None when the violation is not about one revision
    key: bytes | None
    detail: str

    def __str__(self) -> str:
        where = "".join([
            f" revision {self.revision}" if self.revision is not None else "",
            f" key {self.key!r}" if self.key is not None else "",
        ])
        return f"{self.guarantee.value}: watcher {self.watcher!r}{where}: {self.detail}"


class WatchGuaranteeError(AssertionError):
    def __init__(self, violations: list[Violation]) -> None:
        assert violations, "raised without a violation"
        self.violations = violations
        lines = "\n".join(f"  {violation}" for violation in violations)
        super().__init__(f"{len(violations)} watch guarantee violation(s):\n{lines}")
