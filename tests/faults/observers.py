"""Watchers and leases beside the writers of a fault run: etcd's watch guarantees and
lease expiry, checked under the faults of the nemesis test (test_nemesis.py) and the
soak (scripts/soak), which both use this one mechanism.

While the faults go on, through petcd's own client (petcd.client):
- three watchers record every response and when it came: every key from the first
  revision with prev_kv, the writers' prefix from "now", and one started half-way
  through from a revision already passed (it catches up from the store's history).
  The client resumes a watch on another member when its member dies;
- a keeper renews a lease of KEPT_TTL_S, with a key attached, every second through
  whichever member answers (the next one when one does not);
- every GRANT_EVERY_S a lease of UNKEPT_TTL_S is granted, a key attached, and the
  lease left to expire.

`settle()`, once the faults and the writers have stopped: waits for the unkept leases
to expire on every member, reads the last revision and every key, and asks each
watcher for progress until it has reached that revision.

The checks then say:
- watch guarantees (tests/watchcheck: ordered, unique, atomic, reliable, agreed,
  bookmarkable, prev_kv, ...) over every write: the writers' puts (from their
  linearizability history), the lease keys' puts, and each unkept lease's expiry as
  a delete at a revision nobody was told (placed where a watcher saw it);
- the kept lease never expires: no member ever said it was gone, its key is on every
  member at the end, and no watcher saw that key deleted. Void if no renewal was
  answered for a whole TTL: that is reported as a failure of its own;
- the unkept leases do expire: their keys are gone from every member, and no lease
  but the kept one is left, within a TTL, a new leader's grace and EXPIRY_SLACK_S of
  the faults' end (of settle()) (a leader change restarts a lease's TTL: only an idle cluster
  bounds its expiry); and none expired early: no watcher saw a key deleted before
  its lease's TTL had passed since the grant was sent (the leader starts the TTL
  when it applies the grant, after it was sent, and a watcher sees a delete after
  it was made, so a correct cluster is never blamed).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.mvccpb import kv_pb2
from petcd.client import Client
from petcd.client import requests as rq
from petcd.client.errors import EtcdError
from petcd.client.lease import keep_alive_once
from petcd.client.watch import Watch as ClientWatch
from tests.cluster.members import ELECTION_MS, Cluster, HttpError, b64
from tests.lincheck import History, Kind, Outcome
from tests.lincheck.recording import DEFINITE_FAILURES
from tests.watchcheck import Watch, WatchSpec, Write, assert_ok, delete, put

KEPT_TTL_S = 15  # long beside one fault and its recovery (a few seconds)
KEEP_ALIVE_EVERY_S = 1.0
KEEP_ALIVE_TIMEOUT_S = 2.0  # then the next member is asked
UNKEPT_TTL_S = 2  # petcd's minimum here is 1 s (3/2 of an election timeout, rounded up)
GRANT_EVERY_S = 2.0
GRANT_STOP_BEFORE_END_S = 5.0  # the last unkept lease expires before the faults end
CALL_TIMEOUT_S = 3.0  # a grant, a put, a read
WATCH_TIMEOUT_S = 30.0  # a watch gives up after this long with no stream on any member
# Beyond TTL and grace, for the revoke to be proposed, committed and applied everywhere
# on a loaded 2-core machine.
EXPIRY_SLACK_S = 10.0
CATCH_UP_TIMEOUT_S = 30.0
PROGRESS_EVERY_S = 0.2
POLL_S = 0.2  # how long a recorder waits for a response before it checks for the end
JOIN_TIMEOUT_S = 10.0
ALL_KEYS = rq.ALL_KEYS  # as key and range_end: every key
KEPT_KEY = b"l/kept"
UNKEPT_PREFIX = b"l/u"
_DELETE = kv_pb2.Event.DELETE


@dataclass
class Recorder:
    """One watcher: every response in the order received, and when each came (also
    test_watch_guarantees.py's)."""

    name: str
    client: Client
    request: pb.WatchCreateRequest
    responses: list[pb.WatchResponse] = field(default_factory=list)
    arrived_s: list[float] = field(default_factory=list)  # time.monotonic(), per response
    reached: int = 0  # every event up to this revision was received (event or progress)
    error: BaseException | None = None
    watch: ClientWatch | None = None

    def run(self, stop: threading.Event) -> None:
        r = self.request
        try:
            filters = set(r.filters)
            with self.client.watch(r.key, r.range_end or None, start_revision=r.start_revision,
                                   prev_kv=r.prev_kv, progress_notify=r.progress_notify,
                                   no_put=pb.WatchCreateRequest.NOPUT in filters,
                                   no_delete=pb.WatchCreateRequest.NODELETE in filters) as watch:
                self.watch = watch
                while not stop.is_set() and not watch.ended:
                    resp = watch.get(timeout_s=POLL_S)
                    if resp is not None:
                        self._take(resp)
        except Exception as err:  # noqa: BLE001 - reported by the checks
            self.error = err

    def _take(self, resp: pb.WatchResponse) -> None:
        self.arrived_s.append(time.monotonic())
        self.responses.append(resp)
        if resp.events:
            self.reached = max(self.reached, resp.events[-1].kv.mod_revision)
        elif not resp.created and not resp.canceled:
            self.reached = max(self.reached, resp.header.revision)  # progress

    @property
    def canceled(self) -> bool:
        return any(resp.canceled for resp in self.responses)

    def deletes(self) -> Iterator[tuple[bytes, float]]:
        """(key, when received) of every DELETE event."""
        for resp, arrived_s in zip(self.responses, self.arrived_s, strict=True):
            for event in resp.events:
                if event.type == _DELETE:
                    yield event.kv.key, arrived_s


class Keeper(threading.Thread):
    """Renews one lease every KEEP_ALIVE_EVERY_S through whichever member answers,
    noting when each answered renewal was sent: the leader renewed it after that, so
    the lease lives at least a TTL from there."""

    def __init__(self, endpoints: list[str], lease_id: int, ttl_s: int, asked_s: float) -> None:
        super().__init__(daemon=True, name="lease-keeper")
        self.clients = [Client([e], command_timeout_s=KEEP_ALIVE_TIMEOUT_S) for e in endpoints]
        self.lease_id, self.ttl_s = lease_id, ttl_s
        self.renewed_s = [asked_s]  # the grant was sent first; then each answered renewal
        self.refusals: list[str] = []  # members that said the lease was gone
        self.stop_flag = threading.Event()

    def run(self) -> None:
        turn = 0
        request = pb.LeaseKeepAliveRequest(ID=self.lease_id)
        while not self.stop_flag.wait(KEEP_ALIVE_EVERY_S):
            client = self.clients[turn % len(self.clients)]
            sent_s = time.monotonic()
            try:
                resp = client.unary(keep_alive_once, request, repeatable=True)
            except EtcdError:
                resp = None
            if resp is None:
                turn += 1  # no answer from this member: ask the next one
            elif resp.TTL <= 0:
                self.refusals.append(f"{client.endpoints[0]} at +{sent_s - self.renewed_s[0]:.1f} s")
                turn += 1
            else:
                self.renewed_s.append(sent_s)

    def longest_gap_s(self, until_s: float) -> float:
        """The longest time with no renewal sent that was answered, up to `until_s`."""
        times = [*self.renewed_s, until_s]
        return max(b - a for a, b in zip(times, times[1:]))

    def close(self) -> None:
        self.stop_flag.set()
        self.join(JOIN_TIMEOUT_S)
        for client in self.clients:
            client.close()


@dataclass(frozen=True, slots=True)
class Unkept:
    """A lease left to expire, with a key that may be attached to it."""

    lease_id: int
    ttl_s: int  # as granted
    asked_s: float  # when the grant was sent (time.monotonic())
    key: bytes
    revision: int | None  # the put's; None: its outcome is unknown


class Granter(threading.Thread):
    """Every GRANT_EVERY_S until `until_s`: a lease of UNKEPT_TTL_S and a key on it."""

    def __init__(self, client: Client, until_s: float) -> None:
        super().__init__(daemon=True, name="lease-granter")
        self.client, self.until_s = client, until_s
        self.unkept: list[Unkept] = []
        self.writes: list[Write] = []  # each key's put and its expiry, for watchcheck
        self.stop_flag = threading.Event()

    def run(self) -> None:
        number = 0
        while not self.stop_flag.wait(GRANT_EVERY_S) and time.monotonic() < self.until_s:
            number += 1
            self.grant(number)

    def grant(self, number: int) -> None:
        asked_s = time.monotonic()
        try:
            lease = self.client.lease_grant(UNKEPT_TTL_S)
        except EtcdError:
            return  # granted or not, no key is on it: it expires unseen
        key, value = UNKEPT_PREFIX + b"%05d" % number, b"unkept %d" % number
        try:
            revision = self.client.put(key, value, lease=lease.ID).header.revision
        except EtcdError as err:
            if err.code in DEFINITE_FAILURES:  # the lease expired first: no key
                return
            revision = None
        self.writes += [Write((put(key, value, lease.ID),), revision, "lease granter"),
                        Write((delete(key),), None, f"expiry of lease {lease.ID:x}")]
        self.unkept.append(Unkept(lease.ID, lease.TTL, asked_s, key, revision))


class Observers:
    """The watchers, the keeper and the granter of one fault run (see the module)."""

    def __init__(self, cluster: Cluster, writers_prefix: str, planned_s: float) -> None:
        self.cluster = cluster
        self.endpoints = [f"{m.host}:{m.client_port}" for m in cluster.members]
        self.client = Client(self.endpoints, command_timeout_s=CALL_TIMEOUT_S)
        self.stop_watching, self.no_late = threading.Event(), threading.Event()
        self.recorders: list[Recorder] = []
        self.threads: list[threading.Thread] = []  # one per recorder
        self.left_over: list[str] = []  # what had not expired when settle() gave up
        self.final: pb.RangeResponse | None = None  # every key, read by settle()
        self.settled_s = 0.0  # when settle() was done
        began_s = time.monotonic()
        self.keeper, self.kept_write, first = self._kept_lease()
        self.granter = Granter(self.client, began_s + planned_s - GRANT_STOP_BEFORE_END_S)
        self._watch("all", ALL_KEYS, ALL_KEYS, start_revision=first, prev_kv=True)
        self._watch("writers", *rq.key_range(writers_prefix, prefix=True))
        self.late = threading.Thread(target=self._start_late, args=(first, planned_s / 2),
                                     daemon=True, name="late-watch")
        for thread in (self.keeper, self.granter, self.late):
            thread.start()

    def _kept_lease(self) -> tuple[Keeper, Write, int]:
        """The kept lease and its key, before any fault: both acknowledged (the
        revision of the put is the third)."""
        asked_s = time.monotonic()
        lease = self.client.lease_grant(KEPT_TTL_S)
        revision = self.client.put(KEPT_KEY, b"kept", lease=lease.ID).header.revision
        return (Keeper(self.endpoints, lease.ID, lease.TTL, asked_s),
                Write((put(KEPT_KEY, b"kept", lease.ID),), revision, "keeper"), revision)

    def _watch(self, name: str, key: bytes, range_end: bytes, **options) -> None:
        turn = len(self.recorders) % len(self.endpoints)  # each starts on another member
        client = Client(self.endpoints[turn:] + self.endpoints[:turn],
                        command_timeout_s=WATCH_TIMEOUT_S)
        request = rq.watch_create_request(key, range_end, **options)
        recorder = Recorder(name, client, request)
        thread = threading.Thread(target=recorder.run, args=(self.stop_watching,),
                                  daemon=True, name=f"watch-{name}")
        self.recorders.append(recorder)
        self.threads.append(thread)
        thread.start()

    def _start_late(self, first: int, after_s: float) -> None:
        """Half-way to `after_s`, note how far the first watcher got; at `after_s`,
        watch every key from there."""
        if self.no_late.wait(after_s / 2):
            return
        past = self.recorders[0].reached or first
        if not self.no_late.wait(after_s / 2):
            self._watch("late", ALL_KEYS, ALL_KEYS, start_revision=past)

    # -- after the faults -------------------------------------------------------------

    def settle(self) -> float:
        """Stops granting; waits for the unkept leases to expire (noting what did not);
        reads every key; has every watcher catch up to that revision; stops them.
        Returns how long it took."""
        began_s = time.monotonic()
        self.no_late.set()
        self.late.join(JOIN_TIMEOUT_S)
        self.granter.stop_flag.set()
        self.granter.join(JOIN_TIMEOUT_S)
        bound_s = UNKEPT_TTL_S + ELECTION_MS / 1000 + EXPIRY_SLACK_S
        deadline = time.monotonic() + bound_s
        while (left := self._left_over()) and time.monotonic() < deadline:
            time.sleep(PROGRESS_EVERY_S)
        self.left_over = [f"{what} ({bound_s:.1f} s after the faults)" for what in left]
        self.final = self._read_everything()
        self._catch_up(self.final.header.revision)
        self.stop_watching.set()
        for thread in self.threads:
            thread.join(JOIN_TIMEOUT_S)
        self.settled_s = time.monotonic()
        return self.settled_s - began_s

    def _left_over(self) -> list[str]:
        """Unkept lease keys still on some member, and leases but the kept one."""
        try:
            found = [f"{m.name} holds {n} unkept lease keys" for m in self.cluster.members
                     if (n := m.count(UNKEPT_PREFIX.decode(), serializable=True))]
            leases = {lease.ID for lease in self.client.lease_leases().leases}
        except (OSError, HttpError, EtcdError) as err:
            return [f"could not look: {err}"]
        others = sorted(leases - {self.keeper.lease_id})
        return found + ([f"leases {[f'{x:x}' for x in others]} are left"] if others else [])

    def _read_everything(self) -> pb.RangeResponse:
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while True:
            try:
                return self.client.get(ALL_KEYS, ALL_KEYS)
            except EtcdError as err:
                assert time.monotonic() < deadline, f"no member answers a read: {err}"
                time.sleep(PROGRESS_EVERY_S)

    def _catch_up(self, last: int) -> None:
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while time.monotonic() < deadline:
            behind = [r for r in self.recorders
                      if r.reached < last and r.error is None and not r.canceled]
            if not behind:
                return
            for recorder in behind:
                if recorder.watch is not None:
                    recorder.watch.request_progress()
            time.sleep(PROGRESS_EVERY_S)

    # -- the checks (after settle) ----------------------------------------------------

    def check(self, history: History, story: str) -> None:
        try:
            self.check_watches(history)
            self.check_kept_lease()
            self.check_unkept_leases()
        except AssertionError as err:
            raise AssertionError(f"{err}\n{story}") from None

    def check_watches(self, history: History) -> None:
        assert self.final is not None, "settle() first"
        last = self.final.header.revision
        for r in self.recorders:
            assert r.error is None, f"watcher {r.name} failed: {r.error!r}"
            assert not r.canceled, f"watcher {r.name} was canceled: {r.responses[-1]}"
            assert r.reached >= last, f"watcher {r.name} reached {r.reached}, not {last}"
        writes = [*writes_of(history), self.kept_write, *self.granter.writes]
        assert_ok(writes, [Watch(r.name, WatchSpec.of(r.request), r.responses)
                           for r in self.recorders], final=self.final.kvs)

    def check_kept_lease(self) -> None:
        keeper = self.keeper
        gap_s = keeper.longest_gap_s(time.monotonic())
        assert gap_s < keeper.ttl_s, f"no renewal of the kept lease was answered for " \
            f"{gap_s:.1f} s (TTL {keeper.ttl_s} s) by any member"
        assert not keeper.refusals, f"kept lease {keeper.lease_id:x} said to be gone by " \
            f"{keeper.refusals}"
        deleted = [r.name for r in self.recorders for key, _ in r.deletes() if key == KEPT_KEY]
        assert not deleted, f"watchers {deleted} saw the kept lease's key deleted"
        try:
            for m in self.cluster.members:
                kvs = m.call("/v3/kv/range", {"key": b64(KEPT_KEY), "serializable": True})
                held = kvs.get("kvs", [])
                assert held and int(held[0].get("lease", 0)) == keeper.lease_id, \
                    f"{m.name} has lost the kept lease's key: {kvs}"
            left_s = self.client.lease_time_to_live(keeper.lease_id).TTL
        except (OSError, HttpError, EtcdError) as err:
            raise AssertionError(f"could not read the kept lease's key or TTL: {err}") from None
        assert left_s > 0, f"kept lease {keeper.lease_id:x} is gone (TTL {left_s})"

    def check_unkept_leases(self) -> None:
        assert not self.left_over, f"unkept leases did not expire: {self.left_over}"
        first_seen_s: dict[bytes, float] = {}
        for r in self.recorders:
            for key, arrived_s in r.deletes():
                first_seen_s[key] = min(arrived_s, first_seen_s.get(key, arrived_s))
        for unkept in self.granter.unkept:
            seen_s = first_seen_s.get(unkept.key)
            assert seen_s is not None or unkept.revision is None, \
                f"no watcher saw the expiry of {unkept}"
            if seen_s is not None:
                lived_s = seen_s - unkept.asked_s
                assert lived_s >= unkept.ttl_s, f"{unkept.key!r} deleted {lived_s:.2f} s " \
                    f"after lease {unkept.lease_id:x} of {unkept.ttl_s} s was asked for"

    # -- the soak's report ------------------------------------------------------------

    def watch_summary(self) -> str:
        events = sum(len(resp.events) for r in self.recorders for resp in r.responses)
        resumed = sum(sum(resp.created for resp in r.responses) - 1 for r in self.recorders)
        names = ", ".join(r.name for r in self.recorders)
        return f"watchers: {len(self.recorders)} ({names}), {events} events, {resumed} resumed"

    def lease_summary(self) -> str:
        keeper, unkept = self.keeper, self.granter.unkept
        acknowledged = sum(u.revision is not None for u in unkept)
        return (f"leases: kept one renewed {len(keeper.renewed_s) - 1} times (longest wait "
                f"{keeper.longest_gap_s(self.settled_s or time.monotonic()):.1f} s of "
                f"{keeper.ttl_s}), {len(unkept)} left to expire ({acknowledged} with an "
                f"acknowledged key)")

    def close(self) -> None:
        self.no_late.set()
        self.stop_watching.set()
        self.granter.stop_flag.set()
        self.keeper.close()
        for thread in [*self.threads, self.granter]:
            thread.join(JOIN_TIMEOUT_S)
        for r in self.recorders:
            r.client.close()
        self.client.close()


@contextlib.contextmanager
def observing(cluster: Cluster, writers_prefix: str, planned_s: float) -> Iterator[Observers]:
    """Observers of `cluster` (once it has a leader) for a fault period of about
    `planned_s`, stopped at the end."""
    cluster.wait_leader()
    observers = Observers(cluster, writers_prefix, planned_s)
    try:
        yield observers
    finally:
        observers.close()


def writes_of(history: History) -> list[Write]:
    """The puts of a linearizability history as watchcheck's writes: answered ones at
    their revision, unanswered ones at none; those that failed were never applied."""
    writes = []
    for op in history.ops():
        assert op.kind in (Kind.PUT, Kind.GET), f"only puts are turned into writes: {op}"
        if op.kind is Kind.PUT and op.outcome is not Outcome.FAILED:
            change = put(str(op.key).encode(), str(op.arg).encode())
            writes.append(Write((change,), op.revision, op.client))
    return writes
