"""The leases' deadlines (actors/network/lessor.py) on an injected clock: only the
primary renews and expires; a new leader goes on from the last checkpoint, less its
age, with one grace of an election timeout that is never checkpointed; checkpoints
are due once per interval for leases that outlive it."""

from __future__ import annotations

import pytest

from petcd.actors.network.lessor import Lessor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_follower_holds_no_deadline(clock):
    lessor = Lessor(checkpoint_interval_s=300, clock=clock)
    lessor.granted(1, 10)
    clock.now += 1000
    assert lessor.expired(10) == []
    with pytest.raises(AssertionError):
        lessor.renew(1)


def test_leases_expire_on_the_primary_unless_renewed(clock):
    lessor = Lessor(checkpoint_interval_s=300, clock=clock)
    lessor.promote(extend_s=0)
    lessor.granted(1, 10)
    lessor.granted(2, 5)
    clock.now += 6
    assert lessor.expired(10) == [2]
    renewed = lessor.renew(1)
    assert renewed is not None and renewed.ttl_s == 10 and not renewed.clear_checkpoint
    clock.now += 9
    assert lessor.expired(10) == [2]
    assert lessor.time_left_s(1) == (10, 1)
    assert lessor.renew(2) is None, "an expired lease is not renewed"
    lessor.revoked(2)
    assert lessor.time_left_s(2) is None and lessor.expired(10) == []


def test_promotion_goes_on_from_the_checkpoint_and_demotion_forgets(clock):
    lessor = Lessor(checkpoint_interval_s=300, clock=clock)
    lessor.reset([(1, 60, 0), (2, 60, 7_000)])  # 2 was checkpointed with 7 s left
    lessor.promote(extend_s=1.0)
    assert lessor.time_left_s(1) == (60, 61) and lessor.time_left_s(2) == (60, 8)
    clock.now += 8.5
    assert lessor.expired(10) == [2]
    lessor.demote()
    assert lessor.expired(10) == []


def test_a_checkpoint_ages_and_the_grace_is_not_carried_over(clock):
    """etcd issue 9888: elections in a row must not renew a lease."""
    lessor = Lessor(checkpoint_interval_s=300, clock=clock)
    lessor.granted(1, 30)
    for _ in range(50):  # 50 leaders, each checkpointing before it hands over
        lessor.promote(extend_s=1.0)
        clock.now += 0.3
        [(lease_id, remaining_ms)] = lessor.all_checkpoints()
        lessor.demote()
        lessor.checkpointed(lease_id, remaining_ms)
        clock.now += 0.1  # the transfer: the next leader applied the checkpoint earlier
    lessor.promote(extend_s=1.0)
    # 20 s have passed: 10 s of the lease are left, plus one grace
    assert lessor.time_left_s(1) == (30, 11)


def test_a_renew_clears_a_checkpoint(clock):
    lessor = Lessor(checkpoint_interval_s=300, clock=clock)
    lessor.reset([(1, 60, 30_000)])
    lessor.promote(extend_s=0)
    renewed = lessor.renew(1)
    assert renewed is not None and renewed.clear_checkpoint
    assert not lessor.renew(1).clear_checkpoint  # type: ignore[union-attr]


def test_checkpoints_are_due_each_interval_for_long_leases_only(clock):
    lessor = Lessor(checkpoint_interval_s=10, clock=clock)
    lessor.promote(extend_s=0)
    lessor.granted(1, 100)
    lessor.granted(2, 5)  # shorter than an interval: never checkpointed
    assert lessor.due_checkpoints(10) == []
    clock.now += 10
    assert lessor.due_checkpoints(10) == [(1, 90_000)]
    assert lessor.due_checkpoints(10) == [], "scheduled again an interval later"
    clock.now += 10
    assert lessor.due_checkpoints(10) == [(1, 80_000)]


def test_expired_is_bounded_and_most_overdue_first(clock):
    lessor = Lessor(checkpoint_interval_s=300, clock=clock)
    lessor.promote(extend_s=0)
    for lease_id in range(1, 6):
        lessor.granted(lease_id, 10 - lease_id)
    clock.now += 20
    assert lessor.expired(3) == [5, 4, 3]
    lessor.postpone([5, 4, 3], delay_s=3)
    assert lessor.expired(10) == [2, 1]
