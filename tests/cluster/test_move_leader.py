"""MoveLeader on the JSON gateway (POST /v3/maintenance/transfer-leadership), as etcd's
Maintenance.MoveLeader answers it, against a real 3-member cluster."""

from __future__ import annotations

import time

import pytest

from .members import Cluster, HttpError, Member, wait_until

pytestmark = pytest.mark.timeout(90)

PATH = "/v3/maintenance/transfer-leadership"


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("move-leader"), 3)
    c.start()
    yield c
    c.stop()


def member_id(m: Member) -> str:
    return m.status()["header"]["member_id"]


def error_of(m: Member, body: dict) -> tuple[int, dict]:
    with pytest.raises(HttpError) as info:
        m.call(PATH, body)
    return info.value.status, info.value.body


def test_the_leader_hands_over_to_each_follower_and_answers_once_it_leads(three):
    for _ in range(2):
        leader = three.wait_leader()
        target = next(m for m in three.members if m is not leader)
        started = time.monotonic()
        assert leader.call(PATH, {"targetID": member_id(target)}) == {}  # etcd's empty answer
        took_s = time.monotonic() - started
        # Answered only once the old leader saw the new one: it leads now.
        assert leader.status()["leader"] == member_id(target)
        assert wait_until(lambda t=target: three.leader() is t, 5)
        assert took_s < 5
        target.put(f"after-move-{target.name}", "ok")  # the new leader serves writes
        assert all(m.get(f"after-move-{target.name}") == "ok" for m in three.members)


def test_moving_to_the_leader_itself_is_done_at_once(three):
    leader = three.wait_leader()
    term = leader.status()["header"]["raft_term"]
    assert leader.call(PATH, {"targetID": member_id(leader)}) == {}
    assert three.leader() is leader and leader.status()["header"]["raft_term"] == term


def test_a_follower_refuses_with_not_leader(three):
    leader = three.wait_leader()
    follower = next(m for m in three.members if m is not leader)
    status, body = error_of(follower, {"targetID": member_id(follower)})
    assert status == 400
    assert body == {"error": "etcdserver: not leader", "code": 9,
                    "message": "etcdserver: not leader"}


@pytest.mark.parametrize("body", [{"targetID": "12345"}, {}, {"targetID": 0}])
def test_a_target_that_is_not_a_voting_member_is_a_bad_transferee(three, body):
    leader = three.wait_leader()
    status, err = error_of(leader, body)
    assert status == 400
    assert err == {"error": "etcdserver: bad leader transferee", "code": 9,
                   "message": "etcdserver: bad leader transferee"}
    assert three.leader() is leader


def test_a_bad_body_is_invalid_argument(three):
    leader = three.wait_leader()
    status, err = error_of(leader, {"targetID": "not a number"})
    assert status == 400 and err["code"] == 3


def test_a_transfer_to_a_member_that_is_down_times_out_and_leadership_stays(three):
    leader = three.wait_leader()
    down = next(m for m in three.members if m is not leader)
    down_id = member_id(down)
    assert down.stop() == 0
    try:
        started = time.monotonic()
        status, err = error_of(leader, {"targetID": down_id})
        took_s = time.monotonic() - started
        assert status == 500
        assert err["code"] == 2  # Unknown: etcd maps no gRPC code to this error
        assert err["message"] == "etcdserver: request timed out, leader transfer took too long"
        assert 5 <= took_s < 9  # the request timeout: 5 s + 2 x election timeout
        # Raft gave up on the transfer after an election timeout: the leader leads on.
        assert wait_until(lambda: three.leader() is leader, 5)
        leader.put("after-failed-move", "ok")
    finally:
        three.start(down)
    three.wait_leader()
    assert wait_until(lambda: down.get("after-failed-move") == "ok", 20)
