"""Fault after fault under concurrent clients: what every member ends with agrees with
every answer a client was given.

For DURATION_S a seeded nemesis SIGKILLs whole members, SIGKILLs single actors,
pauses whole members (SIGSTOP, then SIGCONT) and kills the leader, one fault at a
time, restarting what it killed. Meanwhile writers overwrite a small key space with
unique values through random members, and a reader makes linearizable reads. The
snapshot count is low, so members compact their logs, and one back from a fault may
catch up from a snapshot, while all this goes on.

What a user of etcd relies on, checked against the real processes:
- each acknowledged put has its own revision, and one client's acknowledged puts have
  increasing revisions (they were made one after the other);
- a linearizable read is never older than a put acknowledged before it started;
- every answer, put or read, fits one order of the puts in real time: the recorded
  history is linearizable, and revisions never go back (tests/lincheck);
- afterwards every member holds, at each acknowledged revision, the value that put
  wrote; each key's latest value is its last acknowledged put's, or one of the puts
  whose answer was lost (never an older one, never one nobody wrote); and every member
  has the same keys, the same history and the same HashKV;
- watchers (every key, the writers' prefix, one started half-way from a past revision)
  get what etcd's watch guarantees promise, resuming on another member when theirs
  dies; a lease kept alive through the faults never expires; leases left alone do
  expire, and none before its TTL (tests/faults/observers.py, shared with the soak).

PETCD_NEMESIS_SEED picks another sequence of faults (the seed is printed on failure).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.cluster.members import Cluster, HttpError, Member, b64, running, unb64, wait_until
from tests.faults.convergence import converged
from tests.faults.observers import observing
from tests.lincheck import History, Kind, assert_linearizable

SEED = int(os.environ.get("PETCD_NEMESIS_SEED", "7"))
DURATION_S = 30.0
MIN_FAULTS = 10  # struck even if the machine is slow to restart members: up to...
MAX_DURATION_S = 90.0  # ...this long in all
WRITERS = 3
KEYS_PER_WRITER = 20
PREFIX = "n"
FLAGS = ["--snapshot-count", "300", "--snapshot-catchup-entries", "100"]
REQUEST_TIMEOUT_S = 3.0
RECOVERY_TIMEOUT_S = 30.0
HISTORY_SAMPLE = 150  # acknowledged puts whose revision is read back on every member
READY = "ready to serve client requests"


@dataclass(frozen=True)
class Ack:
    key: str
    value: str
    revision: int


class Writer(threading.Thread):
    """Puts unique values on its own keys, one at a time, through random live members."""

    def __init__(self, cluster: Cluster, number: int, acks: list[Ack], history: History) -> None:
        super().__init__(daemon=True)
        self.cluster, self.number, self.history = cluster, number, history
        self.acks = acks  # shared by all writers (list.append is atomic)
        self.mine: list[Ack] = []
        self.in_doubt: set[str] = set()  # values of puts that got no answer
        self.stop_flag = threading.Event()
        self.rng = random.Random(SEED * 100 + number)

    def run(self) -> None:
        i = 0
        while not self.stop_flag.is_set():
            live = [m for m in self.cluster.members if m.alive]
            if not live:
                time.sleep(0.05)
                continue
            key = f"{PREFIX}{self.number}-{i % KEYS_PER_WRITER:02d}"
            value = f"{self.number}.{i}"
            i += 1
            call = self.history.invoke(f"writer {self.number}", Kind.PUT, key, value)
            try:
                resp = self.rng.choice(live).call(
                    "/v3/kv/put", {"key": b64(key), "value": b64(value)}, timeout_s=REQUEST_TIMEOUT_S)
            except (OSError, HttpError) as err:
                if _refused(err):
                    call.failed()
                    time.sleep(0.05)  # not listening (yet): the put was never sent
                else:
                    call.unknown()
                    self.in_doubt.add(value)
                continue
            ack = Ack(key, value, int(resp["header"]["revision"]))
            call.ok(revision=ack.revision)
            self.mine.append(ack)
            self.acks.append(ack)


def _refused(err: Exception) -> bool:
    return isinstance(getattr(err, "reason", err), ConnectionRefusedError)


class Reader(threading.Thread):
    """Linearizable reads: none may show a revision older than one already acknowledged."""

    def __init__(self, cluster: Cluster, acks: list[Ack], history: History) -> None:
        super().__init__(daemon=True)
        self.cluster, self.acks, self.history = cluster, acks, history
        self.reads = 0
        self.stale: list[str] = []
        self.stop_flag = threading.Event()
        self.rng = random.Random(SEED)

    def run(self) -> None:
        while not self.stop_flag.is_set():
            live = [m for m in self.cluster.members if m.alive]
            if not live:
                time.sleep(0.05)
                continue
            floor = max((a.revision for a in list(self.acks)), default=0)
            member = self.rng.choice(live)
            key = f"{PREFIX}{self.rng.randrange(WRITERS)}-00"
            call = self.history.invoke("reader", Kind.GET, key)
            try:
                resp = member.call("/v3/kv/range", {"key": b64(key)}, timeout_s=REQUEST_TIMEOUT_S)
            except (OSError, HttpError):
                call.unknown()  # an unanswered read is left out of the check
                continue
            self.reads += 1
            revision = int(resp["header"]["revision"])
            kvs = resp.get("kvs", [])
            call.ok(unb64(kvs[0]["value"]) if kvs else None, revision=revision)
            if revision < floor:
                self.stale.append(f"{member.name} answered at revision {revision} after "
                                  f"revision {floor} was acknowledged")
            time.sleep(0.02)


class Nemesis:
    def __init__(self, cluster: Cluster, rng: random.Random) -> None:
        self.cluster, self.rng = cluster, rng
        self.done: list[str] = []
        self.readies = {m.name: 0 for m in cluster.members}  # "ready" lines before the start

    def restart(self, m: Member) -> None:
        self.readies[m.name] = len(m.log_events(READY))
        self.cluster.start(m)

    def ready(self, m: Member) -> bool:
        """Up to "ready" since its last start (so actor_pids is current). Counted from
        the start: a start that crashed before it was ready (a failpoint) said nothing."""
        return len(m.log_events(READY)) > self.readies[m.name]

    def strike(self) -> None:
        fault: Callable[[], str] = self.rng.choice(
            [self.kill_member, self.kill_actor, self.pause_member, self.kill_leader])
        self.done.append(fault())
        self.await_recovery()

    def kill_member(self, member: Member | None = None) -> str:
        m = member or self.rng.choice(self.cluster.members)
        m.kill()
        time.sleep(self.rng.uniform(0.2, 2.0))
        self.restart(m)
        return f"SIGKILL {m.name}"

    def kill_leader(self) -> str:
        leader = self.cluster.wait_leader(RECOVERY_TIMEOUT_S)
        return self.kill_member(leader) + " (leader)"

    def kill_actor(self) -> str:
        m = self.rng.choice(self.cluster.members)
        actor = self.rng.choice(["raft", "wal", "apply", "network"])
        os.kill(m.actor_pids()[actor], signal.SIGKILL)
        assert m.proc is not None
        assert m.proc.wait(15) != 0, f"{m.name} went on without its {actor} actor"
        self.restart(m)
        return f"SIGKILL {m.name}'s {actor} actor"

    def pause_member(self) -> str:
        m = self.rng.choice(self.cluster.members)
        assert m.proc is not None
        pause_s = self.rng.uniform(0.5, 2.5)
        os.killpg(m.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(pause_s)
        finally:
            os.killpg(m.proc.pid, signal.SIGCONT)
        return f"SIGSTOP {m.name} for {pause_s:.1f} s"

    def await_recovery(self) -> None:
        """Every member serving (a restarted one has announced itself) under one leader."""
        self.cluster.wait_leader(RECOVERY_TIMEOUT_S)
        for m in self.cluster.members:
            assert wait_until(lambda m=m: self.ready(m) and m.status(), RECOVERY_TIMEOUT_S), \
                f"{m.name} did not come back after: {self.done}"


def test_faults_in_a_row_lose_no_acknowledged_write_and_members_agree(tmp_path):
    rng = random.Random(SEED)
    with running(tmp_path, 3, FLAGS) as cluster, observing(cluster, PREFIX, DURATION_S) as observers:
        acks: list[Ack] = []
        history = History()
        writers = [Writer(cluster, n, acks, history) for n in range(WRITERS)]
        reader = Reader(cluster, acks, history)
        for t in [*writers, reader]:
            t.start()
        nemesis = Nemesis(cluster, rng)
        started = time.monotonic()
        while (time.monotonic() - started < DURATION_S
               or len(nemesis.done) < MIN_FAULTS and time.monotonic() - started < MAX_DURATION_S):
            time.sleep(rng.uniform(0.3, 1.2))
            nemesis.strike()
        for t in [*writers, reader]:
            t.stop_flag.set()
        for t in [*writers, reader]:
            t.join(2 * REQUEST_TIMEOUT_S)
        story = f"seed {SEED}, faults: {nemesis.done}"
        print(f"{len(acks)} puts acknowledged, {sum(len(w.in_doubt) for w in writers)} in doubt, "
              f"{reader.reads} linearizable reads; {story}")
        assert len(nemesis.done) >= MIN_FAULTS, story
        assert len(acks) >= 300 and reader.reads >= 100, (len(acks), reader.reads, story)
        assert not reader.stale, (reader.stale[:5], story)
        checked = time.monotonic()
        report = assert_linearizable(history)
        print(f"linearizable: {report} in {time.monotonic() - checked:.2f} s")
        check_acknowledged_order(writers, story)
        settled_s = observers.settle()  # the last unkept leases expire: no more changes
        print(f"{observers.watch_summary()}; {observers.lease_summary()}; "
              f"settled in {settled_s:.2f} s")
        revision = converged(cluster, story, RECOVERY_TIMEOUT_S)
        check_history(cluster, acks, revision, rng, story)
        check_latest_values(cluster, writers, revision, story)
        checked = time.monotonic()
        observers.check(history, story)
        print(f"watchers and leases checked in {time.monotonic() - checked:.2f} s")


def check_acknowledged_order(writers: list[Writer], story: str) -> None:
    revisions = [a.revision for w in writers for a in w.mine]
    assert len(revisions) == len(set(revisions)), f"two puts acknowledged at one revision; {story}"
    for w in writers:
        mine = [a.revision for a in w.mine]
        assert mine == sorted(mine), f"writer {w.number}: revisions went back; {story}"


def _range(m: Member, key: str, revision: int, range_end: str | None = None) -> list[dict]:
    body = {"key": b64(key), "revision": str(revision), "serializable": True}
    if range_end is not None:
        body["range_end"] = b64(range_end)
    return m.call("/v3/kv/range", body).get("kvs", [])


def check_history(cluster: Cluster, acks: list[Ack], revision: int, rng: random.Random,
                  story: str) -> None:
    """Every member holds each sampled acknowledged put at its revision."""
    for ack in rng.sample(acks, min(HISTORY_SAMPLE, len(acks))):
        for m in cluster.members:
            kvs = _range(m, ack.key, ack.revision)
            assert kvs and unb64(kvs[0]["value"]) == ack.value, (m.name, ack, kvs, story)
            assert int(kvs[0]["mod_revision"]) == ack.revision, (m.name, ack, kvs, story)
    prefix_end = PREFIX[:-1] + chr(ord(PREFIX[-1]) + 1)
    everything = [_range(m, PREFIX, revision, prefix_end) for m in cluster.members]
    assert all(kvs == everything[0] for kvs in everything), f"members differ; {story}"


def check_latest_values(cluster: Cluster, writers: list[Writer], revision: int, story: str) -> None:
    """Each key's value is its last acknowledged put's, or a later unanswered one's."""
    prefix_end = PREFIX[:-1] + chr(ord(PREFIX[-1]) + 1)
    final = {unb64(kv["key"]): kv for kv in _range(cluster.members[0], PREFIX, revision, prefix_end)}
    for w in writers:
        last: dict[str, Ack] = {}
        for ack in w.mine:
            last[ack.key] = ack
        for key, ack in last.items():
            kv = final.get(key)
            assert kv is not None, f"{key} is gone; last acknowledged {ack}; {story}"
            value, mod_revision = unb64(kv["value"]), int(kv["mod_revision"])
            assert mod_revision >= ack.revision, f"{key}: {value} at {mod_revision} " \
                f"is older than the acknowledged {ack}; {story}"
            if mod_revision == ack.revision:
                assert value == ack.value, (key, value, ack, story)
            else:
                later = value in w.in_doubt and _seq(value) > _seq(ack.value)
                assert later, f"{key}: {value} at {mod_revision} was never written " \
                    f"after {ack}; {story}"


def _seq(value: str) -> int:
    """The writer's put number in one of its values ("<writer>.<put number>")."""
    return int(value.split(".")[1])
