"""Scenario tests of the Raft core, each named after the trap it guards against.

They run real cores: either whole clusters in the simulator harness with faults placed
by hand, or (for Figure 8) cores whose messages the test delivers one by one. The
Checker watches every scenario, so each also proves the safety invariants held.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from petcd.actors.raft.bootstrap import bootstrap
from petcd.actors.raft.core import CAMPAIGN_TRANSFER, RaftConfig, RaftCore
from petcd.actors.raft.types import (Message, MessageType as T, PersistedState, ProposalDropped,
                                     Role, Snapshot)
from petcd.storage.raftstate import (ConfChange, ConfChangeType, ConfState, Entry, HardState,
                                     SnapshotMeta)

from .checker import Checker, InvariantViolation
from .harness import Cluster, Network, SimNode

ELECTION_TICKS = 10


def make_cluster(members: int, seed: int = 1, spares: int = 0, **kw) -> tuple[Cluster, Checker]:
    checker = Checker()
    cluster = Cluster(members, spares, random.Random(seed), checker,
                      election_ticks=ELECTION_TICKS, **kw)
    return cluster, checker


def elect(cluster: Cluster) -> SimNode:
    assert cluster.wait_for(lambda: cluster.leader() is not None, 6 * ELECTION_TICKS)
    leader = cluster.leader()
    assert leader is not None
    return leader


def commit_one(cluster: Cluster, node_id: int, data: bytes, max_ticks: int = 20) -> bool:
    """Propose at `node_id`; True once `node_id` applied it."""
    if not cluster.propose(node_id, data):
        return False
    node = cluster.nodes[node_id]
    start = node.sm.applied
    return cluster.wait_for(
        lambda: any(e.data == data for e in node.core.log.entries  # type: ignore[union-attr]
                    if start < e.index <= node.sm.applied), max_ticks)


def role(cluster: Cluster, node_id: int) -> Role:
    return cluster.nodes[node_id].core.role  # type: ignore[union-attr]


# -- Figure 8 (Raft paper §5.4.2) --------------------------------------------------------


def _core(node_id: int, term: int, vote: int, entries: list[tuple[int, int]],
          commit: int) -> RaftCore:
    """A core restored from disk: `entries` as (index, term), after a 5-voter snapshot."""
    conf = ConfState(frozenset({1, 2, 3, 4, 5}))
    snap = Snapshot(SnapshotMeta(1, 1, conf))
    log = tuple(Entry(t, i, 0, b"x%d" % i) for i, t in entries)
    state = PersistedState(HardState(term, vote, commit), snap, log)
    return RaftCore(RaftConfig(node_id, election_ticks=ELECTION_TICKS), random.Random(node_id),
                    state, applied=1)


def _drain(core: RaftCore) -> list[Message]:
    """Take a Ready as if its writes were durable at once; return what it sends."""
    out: list[Message] = []
    while core.has_ready():
        rd = core.ready()
        core.advance(rd)
        out += rd.send_now
        for m in rd.after_persist:
            if m.dst == core.id:
                core.step(m)
            else:
                out.append(m)
    return out


def test_figure8_leader_never_commits_a_previous_term_entry_by_counting_replicas():
    # (c) of Figure 8: S1 leads term 4; index 2 holds its term-2 entry, already on S2;
    # S5 holds a different entry at index 2, from term 3.
    s1 = _core(1, 3, 0, [(2, 2)], commit=1)
    s5 = _core(5, 3, 5, [(2, 3)], commit=1)
    s3 = _core(3, 3, 0, [], commit=1)
    s1.step(Message(T.TIMEOUT_NOW, 2, 1, term=3))  # S1 campaigns for term 4
    for m in _drain(s1):
        if m.type == T.VOTE and m.dst in (2, 3):
            s1.step(Message(T.VOTE_RESP, m.dst, 1, term=m.term))
    _drain(s1)
    assert s1.role == Role.LEADER and s1.term == 4
    assert s1.log.term(3) == 4  # its no-op
    # S2 and S3 acknowledge index 2 (the term-2 entry) but not yet the no-op: the
    # term-2 entry is now on a majority (S1, S2, S3) ...
    for follower in (2, 3):
        s1.step(Message(T.APP_RESP, follower, 1, term=4, index=2))
    _drain(s1)
    # ... and still must not count as committed: S5 can win term 5 with votes from
    # S2, S3, S4 (its last term 3 beats their term 2) and overwrite index 2.
    assert s1.log.committed == 1
    s3.step(Message(T.APP, 1, 3, term=4, index=1, log_term=1, commit=1,
                    entries=(Entry(2, 2, 0, b"x2"),)))
    _drain(s3)
    for _ in range(ELECTION_TICKS):  # S1 crashes: S3's leader lease runs out
        s3.tick()
    _drain(s3)
    s3.step(Message(T.VOTE, 5, 3, term=5, index=s5.log.last_index, log_term=s5.log.last_term))
    assert [m.reject for m in _drain(s3) if m.type == T.VOTE_RESP] == [False]
    # Once the no-op of term 4 is on a majority, both entries commit (§5.4.2).
    for follower in (2, 3):
        s1.step(Message(T.APP_RESP, follower, 1, term=4, index=3))
    _drain(s1)
    assert s1.log.committed == 3


# -- pre-vote (thesis §9.6) ------------------------------------------------------------


@pytest.mark.parametrize("pre_vote", [True, False])
def test_partitioned_member_rejoining_does_not_depose_a_healthy_leader(pre_vote):
    cluster, _ = make_cluster(3, seed=3, pre_vote=pre_vote)
    leader = elect(cluster)
    term = leader.core.term  # type: ignore[union-attr]
    lonely = next(n for n in cluster.nodes if n != leader.id)
    cluster.isolate(lonely)
    cluster.run_ticks(8 * ELECTION_TICKS)  # it times out again and again
    cluster.net.heal()
    cluster.run_ticks(3 * ELECTION_TICKS)
    if pre_vote:
        # Its pre-votes all failed, so its term never moved and the leader stays.
        assert cluster.nodes[lonely].core.term == term  # type: ignore[union-attr]
        assert cluster.leader() is leader and leader.core.term == term  # type: ignore[union-attr]
    else:
        # Without pre-vote the trap is real: the rejoining member's higher term
        # forces the healthy leader to step down.
        assert leader.core.term > term  # type: ignore[union-attr]


# -- check quorum and ReadIndex (thesis §6.2, §6.4) ---------------------------------------------


def test_leader_in_the_minority_steps_down_and_cannot_serve_read_index():
    cluster, checker = make_cluster(5, seed=5)
    old = elect(cluster)
    assert commit_one(cluster, old.id, b"before")
    minority = [old.id, next(n for n in cluster.nodes if n != old.id)]
    majority = [n for n in cluster.nodes if n not in minority]
    cluster.net.cut(minority, majority)
    checker.read_started(old, b"stale-read")
    old.core.read_index(b"stale-read")  # type: ignore[union-attr]
    served: list[int] = []
    checker.on_read_state = lambda node, index, ctx: served.append(index)  # type: ignore[method-assign]
    # Within two election timeouts the old leader gives up (check quorum) ...
    assert cluster.wait_for(lambda: role(cluster, old.id) != Role.LEADER, 2 * ELECTION_TICKS)
    assert served == []  # ... and it never answered the read: no quorum confirmed it
    # Meanwhile the majority elects a leader and commits.
    assert cluster.wait_for(lambda: any(role(cluster, n) == Role.LEADER for n in majority),
                            6 * ELECTION_TICKS)
    new = next(n for n in majority if role(cluster, n) == Role.LEADER)
    assert commit_one(cluster, new, b"after")
    with pytest.raises(ProposalDropped):
        old.core.read_index(b"again")  # type: ignore[union-attr]  # no leader it knows of


def test_reads_queued_before_one_ready_share_one_heartbeat_round():
    cluster, _ = make_cluster(3, seed=3)
    leader = elect(cluster)
    assert commit_one(cluster, leader.id, b"in term")  # reads are served from here on
    core = leader.core
    assert core is not None
    cluster.step()  # settle what the commit left to send
    _drain(core)
    for context in (b"r1", b"r2", b"r3"):
        core.read_index(context)
    beats = [m for m in _drain(core) if m.type == T.HEARTBEAT]
    followers = sorted(n for n in cluster.nodes if n != leader.id)
    assert sorted(m.dst for m in beats) == followers  # one per follower, not one per read
    assert {m.context for m in beats} == {b"r3"}
    core.step(Message(T.HEARTBEAT_RESP, followers[0], leader.id, term=core.term,
                      context=b"r3"))
    rd = core.ready()
    core.advance(rd)
    committed = core.log.committed
    assert [(r.context, r.index) for r in rd.read_states] == \
        [(b"r1", committed), (b"r2", committed), (b"r3", committed)]


# -- membership (thesis §4) ------------------------------------------------------------


def test_removing_the_leader_hands_off_and_the_rest_carry_on():
    cluster, _ = make_cluster(3, seed=7)
    leader = elect(cluster)
    assert cluster.propose_conf_change(leader.id, ConfChange(ConfChangeType.REMOVE, leader.id))
    rest = [n for n in cluster.nodes if n != leader.id]
    assert cluster.wait_for(lambda: any(role(cluster, n) == Role.LEADER for n in rest),
                            6 * ELECTION_TICKS)
    new = next(n for n in rest if role(cluster, n) == Role.LEADER)
    assert cluster.nodes[new].core.conf.voters == set(rest)  # type: ignore[union-attr]
    assert commit_one(cluster, new, b"after removal")
    core = leader.core
    assert core is not None and core.removed and core.handed_off
    for _ in range(10 * ELECTION_TICKS):  # it never campaigns again
        cluster.run_ticks(1)
        assert core.role == Role.FOLLOWER
    with pytest.raises(ProposalDropped, match="removed"):
        core.propose(b"x")


def test_removing_the_leader_of_a_two_member_cluster_while_the_follower_misses_the_commit():
    cluster, _ = make_cluster(2, seed=11)
    leader = elect(cluster)
    other = 2 if leader.id == 1 else 1
    assert cluster.propose_conf_change(leader.id, ConfChange(ConfChangeType.REMOVE, leader.id))
    # The removal commits (both members have it), then the leader's messages to the
    # follower are lost for a while: the follower does not learn that it committed.
    assert cluster.wait_for(lambda: leader.core.removed, 5 * ELECTION_TICKS)  # type: ignore[union-attr]
    cluster.net.cut([leader.id], [other], one_way=True)
    cluster.run_ticks(3 * ELECTION_TICKS)
    # The trap: had the removed leader gone quiet, the follower (which still counts
    # it) could never win an election against the removed leader's longer log.
    cluster.net.heal()
    survivor = cluster.nodes[other]
    assert cluster.wait_for(lambda: survivor.core.role == Role.LEADER  # type: ignore[union-attr]
                            and survivor.core.conf.voters == {other}, 8 * ELECTION_TICKS)  # type: ignore[union-attr]
    cluster.nodes[leader.id].crash(tear=False)  # the removed member is gone for good
    assert commit_one(cluster, other, b"alone now")


def test_removing_the_follower_of_a_two_member_cluster():
    cluster, _ = make_cluster(2, seed=13)
    leader = elect(cluster)
    other = 2 if leader.id == 1 else 1
    assert cluster.propose_conf_change(leader.id, ConfChange(ConfChangeType.REMOVE, other))
    assert cluster.wait_for(lambda: leader.core.conf.voters == {leader.id},  # type: ignore[union-attr]
                            5 * ELECTION_TICKS)
    cluster.nodes[other].crash(tear=False)  # gone for good: one voter is now a quorum
    assert commit_one(cluster, leader.id, b"alone")


def test_one_configuration_change_at_a_time():
    cluster, _ = make_cluster(3, seed=17, spares=2)
    leader = elect(cluster)
    assert cluster.propose_conf_change(leader.id, ConfChange(ConfChangeType.ADD_LEARNER, 4))
    with pytest.raises(ProposalDropped, match="already pending"):
        leader.core.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 5))  # type: ignore[union-attr]
    assert cluster.wait_for(lambda: 4 in leader.core.conf.learners, 5 * ELECTION_TICKS)  # type: ignore[union-attr]
    assert cluster.propose_conf_change(leader.id, ConfChange(ConfChangeType.ADD_VOTER, 4))
    assert cluster.wait_for(lambda: 4 in leader.core.conf.voters, 5 * ELECTION_TICKS)  # type: ignore[union-attr]
    learner = cluster.nodes[4]
    assert cluster.wait_for(lambda: learner.sm.applied == leader.sm.applied, 5 * ELECTION_TICKS)


# -- leader transfer (thesis §3.10) -------------------------------------------------------


def test_transfer_to_a_lagging_member_catches_it_up_first():
    cluster, _ = make_cluster(3, seed=19)
    leader = elect(cluster)
    laggard = next(n for n in cluster.nodes if n != leader.id)
    cluster.isolate(laggard)
    for n in range(30):
        assert commit_one(cluster, leader.id, b"w%d" % n)
    last = leader.core.log.last_index  # type: ignore[union-attr]
    assert cluster.nodes[laggard].core.log.last_index < last  # type: ignore[union-attr]
    cluster.net.heal()
    leader.core.transfer_leader(laggard)  # type: ignore[union-attr]
    with pytest.raises(ProposalDropped, match="transfer"):
        leader.core.propose(b"during transfer")  # type: ignore[union-attr]
    assert cluster.wait_for(lambda: role(cluster, laggard) == Role.LEADER, 3 * ELECTION_TICKS)
    new = cluster.nodes[laggard].core
    assert new is not None and new.log.last_index > last  # all 30 writes, then its no-op
    assert commit_one(cluster, laggard, b"after transfer")


# -- learners (thesis §4.2.1) -------------------------------------------------------------


def test_a_learner_never_votes_or_counts_for_commit():
    cluster, _ = make_cluster(3, seed=23, spares=1)
    leader = elect(cluster)
    assert cluster.propose_conf_change(leader.id, ConfChange(ConfChangeType.ADD_LEARNER, 4))
    assert cluster.wait_for(lambda: cluster.nodes[4].sm.applied == leader.sm.applied,
                            5 * ELECTION_TICKS)
    # Cut each of the other two voters off on its own: only the leader and the
    # learner still talk, which would be "2 of 4 members" if the learner counted.
    others = [n for n in (1, 2, 3) if n != leader.id]
    for n in others:
        cluster.isolate(n)
    commit_before = leader.core.log.committed  # type: ignore[union-attr]
    assert cluster.propose(leader.id, b"needs a voter")
    cluster.run_ticks(ELECTION_TICKS // 2)
    learner = cluster.nodes[4].core
    assert learner is not None and learner.log.last_index > commit_before  # it has the entry
    assert leader.core.log.committed == commit_before  # type: ignore[union-attr]  # not committed
    # The leader steps down (check quorum) and, with only the learner, is never elected.
    assert cluster.wait_for(lambda: role(cluster, leader.id) != Role.LEADER, 2 * ELECTION_TICKS)
    for _ in range(6 * ELECTION_TICKS):
        cluster.run_ticks(1)
        assert role(cluster, 4) == Role.FOLLOWER  # a learner never campaigns
        assert all(role(cluster, n) != Role.LEADER for n in (1, 2, 3))
    cluster.net.heal()
    assert cluster.wait_for(lambda: cluster.leader() is not None and
                            cluster.leader().core.log.committed > commit_before,  # type: ignore[union-attr]
                            8 * ELECTION_TICKS)


# -- storage acknowledgements (etcd raft's "ABA problem", rawnode.go) ----------------------


def _append_from(leader: int, term: int, *entries: tuple[int, int]) -> Message:
    """An append after the five bootstrap entries; `entries` as (index, term)."""
    data = tuple(Entry(t, i, 0, b"%d@%d" % (i, t)) for i, t in entries)
    return Message(T.APP, leader, 2, term=term, index=5, log_term=1, commit=5, entries=data)


@pytest.mark.parametrize("ack_term_checked", [True, False])
def test_an_fsync_acknowledged_after_two_leader_changes_does_not_count_what_a_later_save_overwrites(
        monkeypatch, ack_term_checked):
    if not ack_term_checked:  # the core before acks carried their term: as if issued now
        on_ack = RaftCore._on_storage_ack
        monkeypatch.setattr(RaftCore, "_on_storage_ack",
                            lambda core, m: on_ack(core, replace(m, term=core.term)))
    checker = Checker()
    rng = random.Random(29)
    net = Network(rng, checker)  # what member 2 sends goes nowhere: only its disk matters
    b = SimNode(2, RaftConfig(2, election_ticks=ELECTION_TICKS), bootstrap([1, 2, 3, 4, 5]),
                rng, checker)
    b.process(0, net, lambda: 0)
    b.fsync_stalled = True  # every save below is still being written when the next arrives
    # etcd's steps 2-7: leader A (1) of term 2 sends 6..8; leader C (3) of term 3
    # overwrites them with its own; A, re-elected in term 4, puts its 6..8 back, plus 9.
    for append in (_append_from(1, 2, (6, 2), (7, 2), (8, 2)),
                   _append_from(3, 3, (6, 3), (7, 3), (8, 3)),
                   _append_from(1, 4, (6, 2), (7, 2), (8, 2), (9, 4))):
        b.core.step(append)  # type: ignore[union-attr]
        b.process(0, net, lambda: 0)
    assert [save.entries[0].term for _, save in b.saving] == [2, 3, 2]
    # Step 8: the first save becomes durable; its ack names (8, term 2), which the
    # in-memory log holds again. The second save (term 3 at 6..8) is next to reach the
    # disk: counting 6..8 as durable now would be a lie until the third one does.
    b.fsync_stalled = False
    if not ack_term_checked:
        with pytest.raises(InvariantViolation, match=r"counts \(8, 2\) as durable, its disk "
                                                     r"holds term 3 there"):
            b.persist_due(0, net)
        return
    b.persist_due(0, net)
    log = b.core.log  # type: ignore[union-attr]
    assert log.persisted == 9 and not b.saving
    assert [(e.index, e.term) for e in b.disk.entries[5:]] == [(6, 2), (7, 2), (8, 2), (9, 4)]


def test_an_ack_ignored_after_a_term_change_is_made_up_by_the_term_changes_own_save():
    checker = Checker()
    rng = random.Random(31)
    net = Network(rng, checker)
    b = SimNode(2, RaftConfig(2, election_ticks=ELECTION_TICKS), bootstrap([1, 2, 3, 4, 5]),
                rng, checker)
    b.process(0, net, lambda: 0)
    b.fsync_stalled = True
    b.core.step(_append_from(1, 2, (6, 2), (7, 2)))  # type: ignore[union-attr]
    b.process(0, net, lambda: 0)
    # Before that save is durable, a candidate of term 3 (leadership handed to it) asks
    # for B's vote: no entries follow, so no ack for 6..7 would be issued in term 3 but
    # for the one the vote's save carries.
    b.core.step(Message(T.VOTE, 3, 2, term=3, index=7, log_term=2,  # type: ignore[union-attr]
                        context=CAMPAIGN_TRANSFER))
    b.process(0, net, lambda: 0)
    assert [save.hard_state.vote for _, save in b.saving] == [0, 3]  # type: ignore[union-attr]
    b.fsync_stalled = False
    b.persist_due(0, net)
    assert b.core.log.persisted == 7  # type: ignore[union-attr]
