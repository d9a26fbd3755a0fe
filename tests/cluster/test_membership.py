"""Membership changes on real members: MemberAdd/Remove/Update/Promote over the JSON
gateway, members joining with --initial-cluster-state existing, learners, removal of
the leader, a removed member stopping, a lost member replaced, a member moved to a new
peer URL, and etcd's refusals. Writers are Python clients; the one of the 3 -> 5 -> 3
test is given one member and follows the membership (auto sync)."""

from __future__ import annotations

import base64
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from petcd.client import Client, EtcdError
from tests.ports import free_ports

from .members import Cluster, HttpError, Member, running, wait_until

WAIT_S = 30.0


def member_list(m: Member) -> list[dict]:
    return m.call("/v3/cluster/member/list", {"linearizable": True})["members"]


def member_ids(m: Member) -> dict[str, bool]:
    """Member id -> is learner, as `m` lists them."""
    return {x["ID"]: bool(x.get("isLearner")) for x in member_list(m)}


def member_id(m: Member, via: Member) -> str:
    resp = via.call("/v3/cluster/member/list", {"linearizable": True})
    return next(x["ID"] for x in resp["members"] if m.peer_url in x["peerURLs"])


def retry_call(m: Member, path: str, body: dict, timeout_s: float = WAIT_S) -> dict:
    """Call until it succeeds: a learner catching up, a member just started. On
    giving up, the error says what each try got."""
    deadline = time.monotonic() + timeout_s
    tries: list[str] = []
    while True:
        try:
            return m.call(path, body)
        except (HttpError, OSError) as err:
            tries.append(f"{time.monotonic():.1f}: {err}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} never succeeded: {tries}") from err
            time.sleep(0.2)


def error_of(m: Member, path: str, body: dict) -> str:
    with pytest.raises(HttpError) as err:
        m.call(path, body)
    return err.value.body["message"]


class Background:
    """`step(live members)` in a thread, over and over, from `with` until its end."""

    def __init__(self, cluster: Cluster, step: Callable[[list[Member]], None]) -> None:
        self.cluster = cluster
        self.step = step
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):  # noqa: ANN204 (the subclass)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(30)

    def _run(self) -> None:
        while not self.done.is_set():
            self.step([m for m in self.cluster.members if m.alive])


class Writer(Background):
    """Puts keys w0, w1, ... through one client; remembers what was acknowledged."""

    def __init__(self, cluster: Cluster, client: Client) -> None:
        super().__init__(cluster, self._put_next)
        self.client = client
        self.acked: list[str] = []
        self.n = 0

    def _put_next(self, _live: list[Member]) -> None:
        try:
            self.client.put(f"w{self.n}", str(self.n))
            self.acked.append(f"w{self.n}")
        except EtcdError:
            pass  # not acknowledged: it may or may not have been applied
        self.n += 1
        time.sleep(0.01)


def endpoint(m: Member) -> str:
    return f"{m.host}:{m.client_port}"


def handed_over_before_its_removal(old_leader: Member, old_id: str) -> bool:
    """In the removed leader's log, the last leader it saw before applying its own
    removal is another member: it had handed leadership over."""
    hex_id = f"{int(old_id):x}"
    events = old_leader.log_events()
    removal = next(i for i, e in enumerate(events) if e.get("event") == "conf change applied"
                   and (e.get("change"), e.get("target_member")) == ("REMOVE", hex_id))
    seen = [e["leader"] for e in events[:removal] if e.get("event") == "leader changed"]
    return bool(seen) and seen[-1] not in (hex_id, "0")


class LeaderLog(Background):
    """Polls every live member's status: (term -> leaders seen) must stay one each."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster, self._poll)
        self.by_term: dict[str, set[str]] = {}

    def _poll(self, live: list[Member]) -> None:
        for m in live:
            try:
                s = m.status()
            except (HttpError, OSError):
                continue
            if s.get("leader"):
                self.by_term.setdefault(s["raftTerm"], set()).add(s["leader"])
        time.sleep(0.05)


def test_three_to_five_to_three_under_writes(tmp_path):
    with running(tmp_path, 3) as c:
        m1 = c.members[0]
        client = Client([endpoint(m1)], auto_sync_interval_s=0.2)  # m1 alone, to begin with
        with client, Writer(c, client) as writer, LeaderLog(c) as leaders:
            c.wait_leader()
            assert wait_until(lambda: writer.acked, WAIT_S), "writes go through first"
            learner = c.add_member(m1, learner=True)
            assert member_ids(m1)[member_id(learner, m1)] is True
            retry_call(m1, "/v3/cluster/member/promote", {"ID": member_id(learner, m1)})
            assert member_ids(m1)[member_id(learner, m1)] is False
            # Four voters: advised against, not refused.
            assert any(m.log_events("cluster size not recommended") for m in c.members)
            fifth = c.add_member(m1)
            first = writer.acked[0]
            assert wait_until(lambda: fifth.get(first, serializable=True) is not None, WAIT_S)
            assert len(member_ids(fifth)) == 5
            assert wait_until(lambda: set(client.endpoints) == {endpoint(m) for m in c.members},
                              WAIT_S), "the client learns the new members"
            # Back to three: the leader first (it hands over), then m1 (the client's
            # first endpoint) or, if m1 led, another old member.
            old_leader = c.wait_leader()
            survivor = fifth if old_leader is not fifth else learner
            old_id = member_id(old_leader, survivor)
            retry_call(survivor, "/v3/cluster/member/remove", {"ID": old_id})
            assert wait_until(lambda: not old_leader.alive, WAIT_S), "a removed member stops"
            assert old_leader.proc is not None and old_leader.proc.returncode == 0
            assert handed_over_before_its_removal(old_leader, old_id)
            other = m1 if m1.alive else next(m for m in c.members[:3] if m.alive)
            retry_call(survivor, "/v3/cluster/member/remove", {"ID": member_id(other, survivor)})
            assert wait_until(lambda: not other.alive, WAIT_S)
            without_m1 = len(writer.acked)
            # Writes go on through the members the client learned of, m1 gone.
            assert wait_until(lambda: len(writer.acked) > without_m1 + 20, WAIT_S)
            assert wait_until(lambda: set(client.endpoints) == {
                endpoint(m) for m in c.members if m.alive}, WAIT_S), "and forgets the removed"
        remaining = [m for m in c.members if m.alive]
        assert len(remaining) == 3 and len(writer.acked) > 10
        assert all(len(ls) == 1 for ls in leaders.by_term.values()), leaders.by_term
        last = writer.acked[-1]
        for m in remaining:  # every acknowledged write, on every remaining member
            assert wait_until(lambda m=m: m.get(last, serializable=True) is not None, WAIT_S)
            got = m.call("/v3/kv/range", {"key": "dw==", "range_end": "eA==", "keys_only": True,
                                          "serializable": True}).get("kvs", [])
            keys = {base64.b64decode(kv["key"]).decode() for kv in got}
            assert set(writer.acked) <= keys
            assert len(member_ids(m)) == 3


def test_etcds_refusals_change_nothing(tmp_path):
    with running(tmp_path, 3) as c:
        c.wait_leader()
        m1, m3 = c.members[0], c.members[2]
        before = member_ids(m1)
        add = "/v3/cluster/member/add"
        assert error_of(m1, add, {"peerURLs": ["not a url"]}) == \
            "etcdserver: given member URLs are invalid"
        assert error_of(m1, add, {"peerURLs": []}) == "etcdserver: given member URLs are invalid"
        assert error_of(m1, add, {"peerURLs": [m3.peer_url]}) == \
            "etcdserver: Peer URLs already exists"
        assert error_of(m1, "/v3/cluster/member/remove", {"ID": "12345"}) == \
            "etcdserver: member not found"
        assert error_of(m1, "/v3/cluster/member/update",
                        {"ID": "12345", "peerURLs": ["http://127.0.0.1:1"]}) == \
            "etcdserver: member not found"
        assert error_of(m1, "/v3/cluster/member/update",
                        {"ID": member_id(m1, m1), "peerURLs": [m3.peer_url]}) == \
            "etcdserver: Peer URLs already exists"
        assert error_of(m1, "/v3/cluster/member/promote", {"ID": member_id(m3, m1)}) == \
            "etcdserver: can only promote a learner member"
        assert member_ids(m1) == before
        # A learner that never started has nothing of the log: not promotable. And only
        # one learner at a time (--max-learners 1).
        learner = c.add_member(m1, learner=True, start=False)
        assert error_of(m1, "/v3/cluster/member/promote", {"ID": member_id(learner, m1)}) == \
            "etcdserver: can only promote a learner member which is in sync with leader"
        assert error_of(m1, add, {"peerURLs": ["http://127.0.0.1:9"], "isLearner": True}) == \
            "etcdserver: too many learner members in cluster"
        retry_call(m1, "/v3/cluster/member/remove", {"ID": member_id(learner, m1)})
        # With a voter down, a change that needs it is refused (strict reconfig check).
        m3.stop()
        time.sleep(6)  # the leader stops counting it as connected after 5 s
        assert error_of(m1, add, {"peerURLs": ["http://127.0.0.1:9"]}) == \
            "etcdserver: unhealthy cluster"
        leader = c.wait_leader()
        live = next(m for m in c.members[:2] if m is not leader)
        assert error_of(m1, "/v3/cluster/member/remove", {"ID": member_id(live, m1)}) == \
            "etcdserver: unhealthy cluster"
        assert member_ids(m1) == before
        # The member that is down may go.
        retry_call(m1, "/v3/cluster/member/remove", {"ID": member_id(m3, m1)})
        assert len(member_ids(m1)) == 2


def test_changes_go_one_at_a_time_and_keep_a_quorum_of_started_members(tmp_path):
    with running(tmp_path, 3) as c:
        leader = c.wait_leader()
        a, b, d = (f"http://127.0.0.1:{port}" for port in free_ports(3))
        # Eight learner adds of peer URL a at once. The leader takes them one by one:
        # all but the first find a taken (checked together, several would pass and a
        # would be several members' URL).
        with ThreadPoolExecutor(8) as pool:
            answers = sorted(pool.map(lambda _: _add(leader, a, learner=True), range(8)), key=str)
        assert answers == [4] + 7 * ["etcdserver: Peer URLs already exists"]
        learner = next(x["ID"] for x in member_list(leader) if x["peerURLs"] == [a])
        retry_call(leader, "/v3/cluster/member/remove", {"ID": learner})
        # Five voters, two never started: one more, or one fewer started, is refused.
        for url in (b, d):  # retried while the leader does not yet hear from all
            retry_call(leader, "/v3/cluster/member/add", {"peerURLs": [url]})
        before = member_ids(leader)
        not_enough = "etcdserver: re-configuration failed due to not enough started members"
        assert error_of(leader, "/v3/cluster/member/add", {"peerURLs": [a]}) == not_enough
        follower = next(m for m in c.members if m is not leader)
        assert error_of(leader, "/v3/cluster/member/remove", {"ID": member_id(follower, leader)}) == \
            not_enough
        assert member_ids(leader) == before and len(before) == 5
        leader.put("still", "writable")  # three of five started: a quorum


def _add(via: Member, peer_url: str, learner: bool) -> int | str:
    """The number of members after the add, or etcd's error message."""
    try:
        answer = via.call("/v3/cluster/member/add", {"peerURLs": [peer_url], "isLearner": learner})
    except HttpError as err:
        return err.body["message"]
    return len(answer["members"])


def test_a_removed_member_stops_and_never_comes_back(tmp_path):
    with running(tmp_path, 3) as c:
        leader = c.wait_leader()
        gone = next(m for m in c.members if m is not leader)
        leader.put("k", "v")
        # Retried while the leader has not heard from every member lately ("unhealthy
        # cluster": nothing changed), as an operator would.
        retry_call(leader, "/v3/cluster/member/remove", {"ID": member_id(gone, leader)})
        assert wait_until(lambda: not gone.alive, WAIT_S)
        assert gone.proc is not None and gone.proc.returncode == 0
        assert "the member has been permanently removed from the cluster" in gone.log_text()
        c.start(gone)  # with its old data: refuses, with etcd's words
        assert gone.proc is not None and gone.proc.wait(WAIT_S) == 0
        assert gone.log_text().count("permanently removed") >= 2
        leader.put("k2", "v2")
        assert len(member_ids(leader)) == 2


def test_a_lost_member_is_replaced_by_a_fresh_one_that_catches_up_by_snapshot(tmp_path):
    args = ["--snapshot-count", "20", "--snapshot-catchup-entries", "5"]
    with running(tmp_path, 3, extra_args=args) as c:
        leader = c.wait_leader()
        lost = next(m for m in c.members if m is not leader)
        lost.kill()
        shutil.rmtree(lost.data_dir)  # the machine is gone
        for i in range(60):
            leader.put(f"k{i}", str(i))
        leader.call("/v3/cluster/member/remove", {"ID": member_id(lost, leader)})
        fresh = c.add_member(leader)
        assert wait_until(lambda: fresh.get("k59", serializable=True) == "59", WAIT_S)
        assert fresh.count("k", serializable=True) == 60
        assert fresh.log_events("snapshot applied"), "it caught up from a snapshot"
        fresh.put("after", "1")
        assert leader.get("after") == "1"


def test_a_member_moves_to_a_new_peer_url_keeping_its_id_and_data(tmp_path):
    with running(tmp_path, 3) as c:
        client = Client([endpoint(m) for m in c.members])
        with client, Writer(c, client) as writer:
            leader = c.wait_leader()
            assert wait_until(lambda: writer.acked, WAIT_S), "writes go through first"
            moving = next(m for m in c.members if m is not leader)
            old_id = member_id(moving, leader)
            term = leader.status()["raftTerm"]
            assert moving.stop() == 0
            away_from = len(writer.acked)
            client_port, peer_port = free_ports(2)
            moved = Member(moving.name, client_port, peer_port,
                           moving.data_dir.parent / "moved", moving.log_path,
                           list(moving.extra_args))
            shutil.copytree(moving.data_dir, moved.data_dir)
            leader.call("/v3/cluster/member/update",
                        {"ID": old_id, "peerURLs": [moved.peer_url]})
            c.members[c.members.index(moving)] = moved
            # The two others kept the quorum: writes went on while it was away.
            assert wait_until(lambda: len(writer.acked) > away_from + 10, WAIT_S)
            moved.start(f"{moved.name}={moved.peer_url}", c.token)
            first = writer.acked[0]
            assert wait_until(lambda: moved.get(first, serializable=True) is not None, WAIT_S)
            assert member_id(moved, leader) == old_id
            time.sleep(0.5)
        # Never without a quorum: the same leader all along, in the same term.
        assert c.wait_leader() is leader and leader.status()["raftTerm"] == term
        last = writer.acked[-1]
        assert wait_until(lambda: moved.get(last, serializable=True) is not None, WAIT_S)
        listed = leader.call("/v3/cluster/member/list", {})["members"]
        assert [x["peerURLs"] for x in listed if x["ID"] == old_id] == [[moved.peer_url]]


def test_force_new_cluster_on_the_survivor_of_a_lost_quorum_keeps_the_data(tmp_path):
    with running(tmp_path, 3) as c:
        leader = c.wait_leader()
        for i in range(20):
            leader.put(f"k{i}", str(i))
        survivor = next(m for m in c.members if m is not leader)
        assert wait_until(lambda: survivor.get("k19", serializable=True) == "19", WAIT_S)
        for m in c.members:
            if m is not survivor:
                m.kill()  # two machines lost: no quorum
        with pytest.raises(HttpError):
            survivor.put("lost", "quorum")
        assert survivor.stop() == 0
        survivor.extra_args.append("--force-new-cluster")
        c.start(survivor)
        assert c.wait_leader() is survivor
        assert survivor.count("k") == 20 and survivor.get("k7") == "7"
        survivor.put("after", "1")
        assert list(member_ids(survivor)) == [member_id(survivor, survivor)]
        assert survivor.log_events("forcing a new one-member cluster from this member's data")
        # Started again (flag or not), it stays what it became.
        assert survivor.stop() == 0
        c.start(survivor)
        assert c.wait_leader() is survivor and survivor.get("after") == "1"
        # A lost member that comes back learns it was removed and stops.
        back = next(m for m in c.members if m is not survivor)
        c.start(back)
        assert back.proc is not None and back.proc.wait(WAIT_S) == 0
        assert "permanently removed" in back.log_text()
