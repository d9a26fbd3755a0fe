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

Cost: one search per key (checker.py), so it grows with the ops of one key and how
many overlap, not with the history's length. Measured (CPython, one core): 5,000 ops
over 20 keys and 10 clients, 5% unanswered, check in well under a second (a few
thousand states); the nemesis test's ~4,800 ops in 0.13 s; proving a violation costs
more, as every order of the prefix must fail (about 70,000 states, under a second,
for one falsified read in the 5,000). Many clients on one key with unanswered writes
can need more than `max_states_per_key` (200,000, a few seconds): that key is then
reported undecided, never passed and never a hang.
"""

from .checker import LinearizabilityError, Report, assert_linearizable, check
from .history import Call, History, Kind, Op, Outcome
from .recording import RecordingClient
from .search import KeyVerdict, Status

__all__ = [
    "Call", "History", "KeyVerdict", "Kind", "LinearizabilityError", "Op", "Outcome", "RecordingClient",
    "Report", "Status", "assert_linearizable", "check",
]
