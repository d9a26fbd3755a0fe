"""A linearizability checker for the KV history of cluster tests.

Test threads record each call they make into a `History` (history.py; or through
`RecordingClient`, petcd's client recording for them, recording.py): who, what (put,
get, delete, compare-and-put of one key), when sent, when answered, and how it ended:
ok with its result and header revision, failed (etcd guarantees it was not applied),
or unknown (timed out, connection lost, leader changed: it may take effect at any time
after it was sent, or never). Afterwards `check(history)` says, for every key, whether
some order of the ops, each taking effect at one instant between its call and its
answer, explains every result (search.py), and checks revisions against real time
across keys (revisions.py); `assert_linearizable` raises with the story of each
violation.

Cost: one search per key (checker.py). With a handful of clients the search rarely
backtracks and runs in about O(n * w) for a key's n ops of which w overlap at once;
memoization bounds even bad cases by the distinct (ops linearized, value) pairs, and
past `max_states_per_key` of them the key is reported undecided rather than hanging.
"""

from .checker import LinearizabilityError, Report, assert_linearizable, check
from .history import Call, History, Kind, Op, Outcome
from .recording import RecordingClient
from .search import KeyVerdict, Status

__all__ = [
    "Call", "History", "KeyVerdict", "Kind", "LinearizabilityError", "Op", "Outcome", "RecordingClient",
    "Report", "Status", "assert_linearizable", "check",
]
