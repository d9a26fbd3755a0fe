"""Partitions of a real network (tests/faults/netns.py): what etcd's users rely on.

Each member runs in its own network namespace; links are cut on the bridge between
them, while the test's client still reaches every member. Asserted, as a user sees it
through the JSON gateway:
- the majority side elects a leader, and serves writes and linearizable reads;
- a minority member answers a linearizable read or a write with etcd's error ("no
  leader", "request timed out", "leader changed") within the request timeout, never
  with a value older than a write acknowledged on the other side;
- a leader cut off from its followers steps down (check-quorum), and does not raise
  its term while cut off, so when it is back it does not depose the new leader
  (pre-vote);
- after healing, every member has applied the same log: same revision, same HashKV;
- a leader cut off for longer than a lease's TTL revokes nothing; the majority keeps
  the lease its clients renew and expires the one nobody renews.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import pytest
from petcd.actors.network.requests import request_timeout_s

from tests.cluster.members import ELECTION_MS, HttpError, Member, b64, unb64, wait_until
from tests.faults.convergence import converged
from tests.lincheck import History, Kind, assert_linearizable

from .netns import NetnsCluster, cluster_on_network, netem_unavailable, unavailable

REQUEST_TIMEOUT_S = request_timeout_s(ELECTION_MS)  # petcd's, as etcd's: 5 s + 2 elections
CLIENT_TIMEOUT_S = REQUEST_TIMEOUT_S + 2.0  # the member answers first
ANSWER_SLACK_S = 1.0  # an error may come this much after the request timeout
ELECTION_S = ELECTION_MS / 1000
NEW_LEADER_TIMEOUT_S = 10 * ELECTION_S  # randomized timeouts, pre-vote, then the vote
STEP_DOWN_TIMEOUT_S = 2 * ELECTION_S + 1.0  # check-quorum looks once an election timeout
CONVERGE_TIMEOUT_S = 30.0
NETEM_WRITES = 20
LOSS_PERCENT = 10
LEASE_TTL_S = 3  # shorter than the cut below: only renewals keep a lease alive
KEEP_ALIVE_EVERY_S = 0.5
MINORITY_ERRORS = {"etcdserver: no leader", "etcdserver: request timed out",
                   "etcdserver: leader changed"}


@pytest.fixture
def on_network(tmp_path) -> Callable[[int], AbstractContextManager[NetnsCluster]]:
    """on_network(size): a context manager of a started cluster on its own network."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    return lambda size: cluster_on_network(tmp_path, size)


@dataclass(frozen=True, slots=True)
class Answer:
    value: str | None  # of a read that succeeded
    error: str | None  # etcd's message, when it failed
    took_s: float


@pytest.fixture(autouse=True)
def history() -> Iterator[History]:
    """Every put and linearizable read a test makes, recorded as made; at the end the
    whole history must be linearizable (tests/lincheck): a minority member that served
    a stale read, or a lost acknowledged write, fails it even where no assertion looked."""
    recorded = History()
    _recording.append(recorded)
    try:
        yield recorded
    finally:
        _recording.remove(recorded)
    assert_linearizable(recorded)


# The running test's history: a plain list, as the test's client threads must see it
# too (a thread does not inherit its starter's context variables).
_recording: list[History] = []


def ask(m: Member, kind: Kind, key: str, body: dict) -> Answer:
    path = "/v3/kv/put" if kind == Kind.PUT else "/v3/kv/range"
    recorded = _recording[-1] if _recording else None
    call = None if recorded is None else recorded.invoke(
        m.name, kind, key, unb64(body["value"]) if kind == Kind.PUT else None)
    start = time.monotonic()
    try:
        resp = m.call(path, body, timeout_s=CLIENT_TIMEOUT_S)
    except HttpError as err:
        if call is not None:
            call.unknown()  # no leader, timed out, leader changed: it may still happen
        return Answer(None, err.body.get("message"), time.monotonic() - start)
    except OSError as err:  # no answer within CLIENT_TIMEOUT_S, or no connection
        if call is not None:
            call.unknown()
        return Answer(None, f"no answer: {err}", time.monotonic() - start)
    kvs = resp.get("kvs", [])
    value = unb64(kvs[0].get("value", "")) if kvs else None
    if call is not None:
        call.ok(value if kind == Kind.GET else None, revision=int(resp["header"]["revision"]))
    return Answer(value, None, time.monotonic() - start)


def get(m: Member, key: str) -> Answer:
    return ask(m, Kind.GET, key, {"key": b64(key)})


def put(m: Member, key: str, value: str) -> Answer:
    return ask(m, Kind.PUT, key, {"key": b64(key), "value": b64(value)})


def get_serializable(m: Member, key: str) -> str | None:
    return m.get(key, serializable=True)


def concurrently(*calls: Callable[[], Answer]) -> list[Answer]:
    """Runs the calls at once (each bounded by CLIENT_TIMEOUT_S), their answers in order."""
    answers: list[Answer | None] = [None] * len(calls)

    def run(i: int) -> None:
        answers[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(CLIENT_TIMEOUT_S + 5)
    assert all(a is not None for a in answers), "a client call did not return"
    return [a for a in answers if a is not None]


def assert_refused_in_time(answer: Answer, what: str) -> None:
    assert answer.error in MINORITY_ERRORS, f"{what}: {answer}"
    assert answer.took_s <= REQUEST_TIMEOUT_S + ANSWER_SLACK_S, f"{what}: {answer}"


def member_id(m: Member) -> str:
    return m.status()["header"]["member_id"]


def leader_among(members: list[Member]) -> Member | None:
    """The one of `members` they all follow, if they agree on one of them."""
    ids = {m.status().get("leader") for m in members}
    by_id = {member_id(m): m for m in members}
    return by_id.get(ids.pop()) if len(ids) == 1 else None


def wait_leader_among(members: list[Member], timeout_s: float = NEW_LEADER_TIMEOUT_S) -> Member:
    found: list[Member] = []
    assert wait_until(lambda: found.append(leader_among(members)) or found[-1] is not None,
                      timeout_s), f"no leader among {[m.name for m in members]} in {timeout_s}s"
    return found[-1]


def put_on_majority(members: list[Member], key: str, value: str) -> None:
    """A write through any member of the majority side, retried until one is acknowledged
    (an election may still be settling)."""
    deadline = time.monotonic() + NEW_LEADER_TIMEOUT_S + REQUEST_TIMEOUT_S
    while time.monotonic() < deadline:
        for m in members:
            if put(m, key, value).error is None:
                return
    raise AssertionError(f"no member of {[m.name for m in members]} acknowledged {key}={value}")


def test_an_isolated_leader_steps_down_and_rejoins_without_an_election(on_network):
    with on_network(3) as cluster:
        old = cluster.wait_leader()
        others = [m for m in cluster.members if m is not old]
        assert put(old, "k", "before").error is None
        old_term = int(old.status()["raftTerm"])

        cluster.network.isolate(old.name)
        assert wait_until(lambda: "leader" not in old.status(), STEP_DOWN_TIMEOUT_S), \
            "the isolated leader did not step down (check-quorum)"
        new = wait_leader_among(others)
        put_on_majority(others, "k", "after")
        assert [get(m, "k").value for m in others] == ["after", "after"]

        read, write = concurrently(lambda: get(old, "k"), lambda: put(old, "k", "minority"))
        assert_refused_in_time(read, "linearizable read on the isolated member")
        assert_refused_in_time(write, "write on the isolated member")
        assert get_serializable(old, "k") == "before"  # it has the old value: refusing mattered
        new_term = int(new.status()["raftTerm"])
        assert int(old.status()["raftTerm"]) == old_term, "pre-vote: no term bump while cut off"

        cluster.network.heal()
        assert wait_until(lambda: leader_among(cluster.members) is new, CONVERGE_TIMEOUT_S)
        converged(cluster)
        assert int(new.status()["raftTerm"]) == new_term, "the rejoining member forced an election"
        expected = {"after"} if write.error == "etcdserver: no leader" else {"after", "minority"}
        values = {get(m, "k").value for m in cluster.members}
        assert len(values) == 1 and values <= expected, values


def test_five_members_split_two_three_then_three_two(on_network):
    """The second split leaves on the majority side the two members of the first
    minority and one member of the first majority: that one alone holds the write the
    first majority acknowledged, so Raft's vote restriction makes it the leader, and the
    write survives."""
    with on_network(5) as cluster:
        first = cluster.wait_leader()
        a, b, c, d, e = [first] + [m for m in cluster.members if m is not first]
        cluster.network.split([a.name, b.name], [c.name, d.name, e.name])
        wait_leader_among([c, d, e])
        put_on_majority([c, d, e], "k", "first-split")
        assert get(d, "k").value == "first-split"
        assert get_serializable(a, "k") is None and get_serializable(b, "k") is None

        cluster.network.split([a.name, b.name, c.name], [d.name, e.name])
        assert wait_leader_among([a, b, c]) is c, "only c has the acknowledged write"
        assert get(a, "k").value == "first-split"
        put_on_majority([a, b, c], "k", "second-split")
        assert get(b, "k").value == "second-split"

        cluster.network.heal()
        converged(cluster)
        assert {get(m, "k").value for m in cluster.members} == {"second-split"}


def test_a_member_cut_from_the_leader_only_never_serves_a_stale_read(on_network):
    """c cannot reach the leader but reaches b, which reaches both (a bridge member);
    then only c's packets to the leader are lost (a one-way cut: over TCP it soon stops
    both ways, see netns.py). The leader and b are a majority and go on; c may not
    serve a linearizable read of an older value."""
    with on_network(3) as cluster:
        leader = cluster.wait_leader()
        b, c = [m for m in cluster.members if m is not leader]
        assert put(leader, "k", "0").error is None
        for number, one_way in enumerate((False, True), start=1):
            cluster.network.cut(c.name, leader.name, one_way=one_way)
            put_on_majority([leader, b], "k", str(number))
            answers = concurrently(*(lambda m=m: get(m, "k") for m in cluster.members))
            for m, answer in zip(cluster.members, answers):
                if m is c and answer.error is not None:
                    assert_refused_in_time(answer, "read on the cut-off member")
                else:
                    assert answer.value == str(number), f"{m.name}: {answer}"
            cluster.network.heal()
            converged(cluster)


def test_a_lossy_network_loses_no_write(on_network):
    """A tenth of what members send each other lost at random (nftables: runs where
    netem does not): TCP resends, Raft resends, elections may come and go. Every
    acknowledged write is on every member afterwards; a linearizable read of it
    returns it, or an error while an election goes on, never an older value."""
    with on_network(3) as cluster:
        cluster.wait_leader()
        cluster.network.lose(LOSS_PERCENT)
        for i in range(NETEM_WRITES):
            put_on_majority(cluster.members, f"k{i:02d}", str(i))
            read = get(cluster.members[i % 3], f"k{i:02d}")
            assert read.value == str(i) or read.error in MINORITY_ERRORS, read
        assert cluster.network.lost_packets() > 0
        cluster.network.heal()
        converged(cluster)
        assert all(m.count("k") == NETEM_WRITES for m in cluster.members)


def test_a_slow_lossy_network_delays_but_loses_no_write(on_network):
    """netem on every member's link: delay with jitter, loss, duplication, reordering.
    Every acknowledged write is on every member afterwards; a linearizable read of it
    returns it, or an error while an election goes on, never an older value."""
    reason = netem_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with on_network(3) as cluster:
        cluster.wait_leader()
        for m in cluster.members:
            cluster.network.netem(m.name, "delay", "20ms", "10ms", "loss", "3%",
                                  "duplicate", "2%", "reorder", "10%")
        for i in range(NETEM_WRITES):
            put_on_majority(cluster.members, f"k{i:02d}", str(i))
            read = get(cluster.members[i % 3], f"k{i:02d}")  # an election may be going on
            assert read.value == str(i) or read.error in MINORITY_ERRORS, read
        converged(cluster)
        assert all(m.count("k") == NETEM_WRITES for m in cluster.members)


def exists(m: Member, key: str) -> bool:
    """A linearizable read left out of the history (for keys that leases delete)."""
    return bool(m.call("/v3/kv/range", {"key": b64(key)}).get("kvs"))


class LeaseKeeper(threading.Thread):
    """Renews a lease every KEEP_ALIVE_EVERY_S through the members it is given, the next
    one when one does not answer, as a client library fails over."""

    def __init__(self, members: list[Member], lease_id: str) -> None:
        super().__init__(daemon=True)
        self.members, self.lease_id = members, lease_id
        self.stop_flag = threading.Event()
        self.gone = False  # a member answered TTL <= 0: the lease had expired

    def run(self) -> None:
        turn = 0
        while not self.stop_flag.wait(KEEP_ALIVE_EVERY_S):
            m = self.members[turn % len(self.members)]
            try:
                resp = m.call("/v3/lease/keepalive", {"ID": self.lease_id},
                              timeout_s=KEEP_ALIVE_EVERY_S * 2)
            except (HttpError, OSError):
                turn += 1  # no leader yet on this side, or no answer: ask the next
                continue
            if int(resp.get("result", {}).get("TTL", 0)) <= 0:
                self.gone = True


def test_an_isolated_leader_revokes_no_lease_and_the_majority_keeps_it_alive(on_network):
    """Leases across a partition, as a service registry sees them: the leader is cut off
    for longer than a lease's TTL while a client renews the lease through the other
    members. The majority's new leader takes the leases over, keeps the renewed one
    alive (no gap between the old leader's renewals and its own lets it lapse) and
    revokes the one nobody renews; the cut-off leader revokes nothing (etcd issues 15247
    and 12528; here its proposals cannot commit and check-quorum deposes it, which
    test_leases.py's stopped leader complements); after healing every member agrees."""
    with on_network(3) as cluster:
        old = cluster.wait_leader()
        others = [m for m in cluster.members if m is not old]
        kept = old.call("/v3/lease/grant", {"TTL": LEASE_TTL_S})["ID"]
        unkept = old.call("/v3/lease/grant", {"TTL": LEASE_TTL_S})["ID"]
        assert ask(old, Kind.PUT, "kept", {"key": b64("kept"), "value": b64("v"),
                                            "lease": kept}).error is None
        # Not in the history: its lease's expiry deletes it, which no client asked for.
        old.call("/v3/kv/put", {"key": b64("unkept"), "value": b64("v"), "lease": unkept})
        keeper = LeaseKeeper(others, kept)
        keeper.start()
        try:
            cluster.network.isolate(old.name)
            time.sleep(LEASE_TTL_S + 2 * ELECTION_S + 1.0)  # past the TTL on both sides
            assert get_serializable(old, "kept") == "v", "the cut-off leader revoked a lease"
            new = wait_leader_among(others)
            assert wait_until(lambda: not exists(new, "unkept"), LEASE_TTL_S + 5), \
                "the majority's leader did not revoke the lease nobody renews"
            cluster.network.heal()
            converged(cluster)
        finally:
            keeper.stop_flag.set()
            keeper.join(5)
        assert not keeper.gone, "a keep-alive found the kept lease expired"
        for m in cluster.members:
            assert get(m, "kept").value == "v", m.name
            assert not exists(m, "unkept"), m.name
            ttl = m.call("/v3/lease/timetolive", {"ID": kept})
            assert int(ttl["TTL"]) > 0, (m.name, ttl)
            # The kept key was put once and never deleted: its first version is current.
            kv = m.call("/v3/kv/range", {"key": b64("kept")})["kvs"][0]
            assert kv["version"] == "1" and kv["lease"] == kept, (m.name, kv)
