"""A simple token's life on one member (actors/network/auth.py TokenClock): etcd's
simpleTokenTTLKeeper, a TTL since the last use, on a clock the test moves."""

from __future__ import annotations

from petcd.actors.network.auth import TokenClock


def test_a_token_lives_ttl_since_its_last_use() -> None:
    clock = TokenClock(ttl_s=300)
    assert clock.use("a.1", now=0.0)
    assert clock.use("a.1", now=299.0)  # used: its TTL starts again
    assert clock.use("a.1", now=598.0)
    assert not clock.use("a.1", now=899.0)  # idle past the TTL
    assert not clock.use("a.1", now=899.5)  # and dead for good, not restarted


def test_memory_is_bounded_least_recently_used_first() -> None:
    clock = TokenClock(ttl_s=10, capacity=2)
    for token in ("a.1", "b.2", "c.3"):
        assert clock.use(token, now=0.0)
    # a.1 was forgotten: its clock starts again at its next use (the store decides
    # whether it exists at all).
    assert clock.use("a.1", now=100.0)
    assert not clock.use("c.3", now=100.0)
