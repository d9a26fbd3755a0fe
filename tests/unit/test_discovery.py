"""The pure rules of v3 discovery (nodes/discovery.py) and its flags' checks, against
etcd 3.6's v3discovery and embed.Config.Validate."""

from __future__ import annotations

import pytest

from petcd.config import ConfigError, InitialMember, Url, load
from petcd.nodes import discovery
from petcd.nodes.discovery import DiscoveryError, Registration

TOKEN = "tok"


def reg(member: str, value: str, revision: int) -> Registration:
    return Registration(discovery.member_key(TOKEN, member), value, revision)


def test_keys_are_etcds():
    assert discovery.size_key(TOKEN) == "/_etcd/registry/tok/_config/size"
    assert discovery.members_prefix(TOKEN) == "/_etcd/registry/tok/members"
    assert discovery.member_key(TOKEN, "8e9e05c52164694d") == "/_etcd/registry/tok/members/8e9e05c52164694d"


def test_registration_value_is_urls_map_string_sorted():
    urls = (Url("http", "10.0.0.2", 2380), Url("http", "10.0.0.1", 2380))
    assert discovery.registration_value("infra1", urls) == \
        "infra1=http://10.0.0.1:2380,infra1=http://10.0.0.2:2380"


@pytest.mark.parametrize("text, size", [("3", 3), ("1", 1), ("+5", 5), ("007", 7)])
def test_size_parses_as_go_parse_int(text, size):
    assert discovery.parse_size([text.encode()]) == size


@pytest.mark.parametrize("text", ["0", "-3", "three", "3.0", " 3", "", "1_0"])
def test_bad_size_is_etcds_error(text):
    with pytest.raises(DiscoveryError, match="^discovery: size key is bad$"):
        discovery.parse_size([text.encode()])


def test_missing_size_is_etcds_error():
    with pytest.raises(DiscoveryError, match="^discovery: size key not found$"):
        discovery.parse_size([])


def test_registrations_are_ordered_by_create_revision_not_arrival():
    found: tuple[Registration, ...] = ()
    for r in (reg("b", "m2=http://h:2", 9), reg("a", "m1=http://h:1", 4), reg("c", "m3=http://h:3", 6)):
        found = discovery.added(found, r)
    assert [r.create_revision for r in found] == [4, 6, 9]
    assert discovery.initial_cluster_text(found, 2) == "m1=http://h:1,m3=http://h:3"


@pytest.mark.parametrize("new, reason", [
    (Registration("/_etcd/registry/other/members/a", "m=http://h:1", 5), "invalid peer registry key"),
    (reg("z", "", 5), "invalid peer info returned from discovery service"),   # a delete event
    (reg("a", "m1=http://h:1", 7), "found duplicate peer from discovery service"),
])
def test_rejected_registrations_say_why_as_etcd(new, reason):
    assert discovery.rejection((reg("a", "m1=http://h:1", 4),), new, TOKEN) == reason


def test_a_good_registration_is_accepted():
    assert discovery.rejection((reg("a", "m1=http://h:1", 4),), reg("b", "m2=http://h:2", 5), TOKEN) is None


def test_full_means_size_registered_before_this_member():
    found = (reg("a", "m1=http://h:1", 4), reg("b", "m2=http://h:2", 5), reg("c", "m3=http://h:3", 6))
    own = discovery.member_key(TOKEN, "d")
    assert discovery.is_full(found, 3, own)
    assert not discovery.is_full(found[:2], 3, own)
    assert not discovery.is_full(found, 3, discovery.member_key(TOKEN, "c"))
    # Registered, but fourth by create revision: refused, as etcd's checkCluster walk.
    late = (*found, reg("d", "m4=http://h:4", 7))
    assert discovery.is_full(late, 3, own)


def test_discovered_text_parses_into_the_initial_cluster():
    assert discovery.parse_discovered("m1=http://h:1,m2=http://h:2,m2=http://h:3") == (
        InitialMember("m1", (Url("http", "h", 1),)),
        InitialMember("m2", (Url("http", "h", 2), Url("http", "h", 3))))


def test_discovered_duplicate_url_and_bad_url_are_etcds_errors():
    with pytest.raises(DiscoveryError, match="^discovery cluster m1=http://h:1,m2=http://h:1 has duplicate url$"):
        discovery.parse_discovered("m1=http://h:1,m2=http://h:1")
    with pytest.raises(DiscoveryError, match="^discovery: invalid peer URL$"):
        discovery.parse_discovered("m1=ftp://h:1")


# The flags, as embed.Config.Validate checks them.

def error_of(*argv: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(list(argv), {})
    return str(info.value)


def test_discovery_with_initial_cluster_is_etcds_conflict():
    assert error_of("--discovery-endpoints", "127.0.0.1:2379", "--discovery-token", "t",
                    "--initial-cluster", "default=http://localhost:2380") == (
        'multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", '
        '"discovery-endpoints" or "discovery-srv"')


@pytest.mark.parametrize("argv", [["--discovery-endpoints", "127.0.0.1:2379"], ["--discovery-token", "t"]])
def test_endpoints_and_token_go_together(argv):
    assert error_of(*argv) == "both --discovery-token and --discovery-endpoints must be set"


def test_empty_endpoint_is_refused():
    assert error_of("--discovery-endpoints", "127.0.0.1:2379,,127.0.0.1:2479", "--discovery-token", "t") == \
        "--discovery-endpoints must not contain empty endpoints"


def test_discovery_is_not_for_joining_an_existing_cluster():
    assert error_of("--discovery-endpoints", "a:1", "--discovery-token", "t",
                    "--initial-cluster-state", "existing") == \
        "discovery URL should not be set when joining existing initial cluster"


def test_discovery_flags_keep_the_temporary_cluster_of_one():
    settings = load(["--name", "m1", "--discovery-endpoints", "a:1, b:2,a:1", "--discovery-token", "t"], {})
    assert settings.discovery_endpoints == ("a:1", "b:2")
    assert settings.initial_cluster == (InitialMember("m1", (Url("http", "localhost", 2380),)),)

