"""Bootstrap by discovery: etcd 3.6's v3 discovery protocol
(server/etcdserver/api/v3discovery/discovery.go), the rules here and the entry point.

The discovery service is any etcd v3 cluster (etcd or petcd). Its registry for one
new cluster lives under a token chosen by the operator, who first puts the size:

    /_etcd/registry/<token>/_config/size               "3"
    /_etcd/registry/<token>/members/<member ID hex>    "infra1=http://10.0.0.1:2380"

Each member (1) reads the size and the registrations, and stops if `size` others got
there first; (2) puts its own key (a plain put, as etcd: a member that restarts before
it has a WAL registers again and keeps its create revision, so its place); (3) waits,
watching the members prefix, until `size` have registered; (4) takes the first `size`
by create revision as its --initial-cluster. Members that registered simultaneously
may outnumber the size: ordering by create revision makes every member pick the same
ones, and the others get "discovery: cluster is full".

A member bootstrapped this way hashes the discovery token, not --initial-cluster-token,
into its member and cluster IDs (etcd's Config.PeerURLsMapAndToken), so every member
knows the others' IDs from their URLs alone; the registration key is that member ID.

On a restart (a WAL exists) discovery is skipped, as etcd skips it: the member's IDs
are its WAL's (nodes/bootstrap.py), so the discovery service need not be up.

The talking is in nodes/discovery_service.py and runs in a forked child: gRPC must not
load into the supervisor, which forks the actors later (see nodes/actor_main.py).
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import NoReturn

from petcd.actors.skeleton import EXIT_FAILED, EXIT_OK
from petcd.config import ConfigError, InitialMember, Settings, Url, verify_bootstrap
from petcd.config.errors import BadValue
from petcd.config.urls import parse_initial_cluster
from petcd.storage.wal import wal_exists

REGISTRY_PREFIX = "/_etcd/registry"
MAX_ANSWER_BYTES = 1 << 20  # an initial cluster text; 7 members need a few hundred bytes

# etcd's errors, word for word.
ERR_INVALID_URL = "discovery: invalid peer URL"
ERR_BAD_SIZE_KEY = "discovery: size key is bad"
ERR_SIZE_NOT_FOUND = "discovery: size key not found"
ERR_FULL_CLUSTER = "discovery: cluster is full"
ERR_TOO_MANY_RETRIES = "discovery: too many retries"

_GO_INT = re.compile(r"[+-]?[0-9]+")  # what strconv.ParseInt(s, 10, 0) accepts


class DiscoveryError(Exception):
    """Discovery cannot give this member an initial cluster; `str()` is etcd's text."""


@dataclass(frozen=True, slots=True)
class Registration:
    key: str              # /_etcd/registry/<token>/members/<member ID hex>
    value: str            # "name=peer-url[,name=peer-url]", --initial-cluster's form
    create_revision: int  # in the discovery service: the order of registration


def size_key(token: str) -> str:
    return f"{REGISTRY_PREFIX}/{token}/_config/size"


def members_prefix(token: str) -> str:
    # No trailing slash, as etcd's path.Join gives it: etcd reads this prefix.
    return f"{REGISTRY_PREFIX}/{token}/members"


def member_key(token: str, member_id_hex: str) -> str:
    return f"{members_prefix(token)}/{member_id_hex}"


def registration_value(name: str, peer_urls: Iterable[Url]) -> str:
    """This member's entry as etcd writes it (types.URLsMap.String: pairs sorted)."""
    return ",".join(sorted(f"{name}={url}" for url in peer_urls))


def parse_size(values: Sequence[bytes]) -> int:
    """The expected cluster size from the values read at the size key (none or one)."""
    if not values:
        raise DiscoveryError(ERR_SIZE_NOT_FOUND)
    text = values[0].decode("utf-8", "replace")
    if not _GO_INT.fullmatch(text) or int(text) <= 0:
        raise DiscoveryError(ERR_BAD_SIZE_KEY)
    return int(text)


def rejection(found: Sequence[Registration], new: Registration, token: str) -> str | None:
    """Why etcd's clusterInfo.add skips `new` (it logs a warning), or None to add it.
    A deleted key's watch event has no value, and is skipped here too."""
    if not new.key.startswith(members_prefix(token)):
        return "invalid peer registry key"
    if "=" not in new.value:
        return "invalid peer info returned from discovery service"
    if any(r.key == new.key for r in found):
        return "found duplicate peer from discovery service"
    return None


def added(found: Sequence[Registration], new: Registration) -> tuple[Registration, ...]:
    """`found` with `new`, in create revision order: the order every member agrees on."""
    return tuple(sorted((*found, new), key=lambda r: r.create_revision))


def is_full(found: Sequence[Registration], size: int, own_key: str) -> bool:
    """`size` members registered and this one is not among them (etcd's checkCluster
    walk: a member beyond the first `size` is refused even if it had registered)."""
    assert size > 0, size
    return len(found) >= size and own_key not in (r.key for r in found[:size])


def initial_cluster_text(found: Sequence[Registration], size: int) -> str:
    """The first `size` registrations as --initial-cluster text (getInitClusterStr)."""
    assert len(found) >= size > 0, (len(found), size)
    return ",".join(r.value for r in found[:size])


def parse_discovered(text: str) -> tuple[InitialMember, ...]:
    """The initial cluster from discovery's text, refused in etcd's words."""
    urls = [entry.partition("=")[2].strip() for entry in text.split(",") if entry.strip()]
    if len(set(urls)) != len(urls):
        raise DiscoveryError(f"discovery cluster {text} has duplicate url")
    try:
        return parse_initial_cluster(text)
    except BadValue:
        raise DiscoveryError(ERR_INVALID_URL) from None


def discovered_or_exit(settings: Settings) -> Settings:
    """`settings` with discovery's initial cluster and token; unchanged without
    --discovery-endpoints. Exits with status 1 (etcd's) if discovery fails."""
    if not settings.discovery_endpoints or wal_exists(settings.wal_dir):
        return settings
    text = _answer_from_child(settings)
    try:
        discovered = replace(settings, initial_cluster=parse_discovered(text),
                             initial_cluster_token=settings.discovery_token)
        verify_bootstrap(discovered)  # a registry edited by hand may have lost this member
    except (DiscoveryError, ConfigError) as err:
        print(f"petcd: error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_FAILED) from None
    return discovered


def _answer_from_child(settings: Settings) -> str:
    """Run discovery in a forked child; its answer comes back through a pipe. The
    wait is as long as discovery's: peers may take long to come, as with etcd; the
    child ends itself if this process dies (discovery_service checks its parent)."""
    read_fd, write_fd = os.pipe()
    parent_pid = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(settings, write_fd, parent_pid)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        answer = pipe.read(MAX_ANSWER_BYTES + 1)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if status != EXIT_OK or not answer or len(answer) > MAX_ANSWER_BYTES:
        raise SystemExit(EXIT_FAILED)  # the child has logged why
    return answer.decode("utf-8")


def _child(settings: Settings, write_fd: int, parent_pid: int) -> NoReturn:
    status = EXIT_FAILED
    try:
        from petcd.nodes import discovery_service  # gRPC in this process only
        text = discovery_service.run(settings, parent_pid)
        if text is not None:
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(text.encode("utf-8"))
            status = EXIT_OK
    except SystemExit as exit_:  # the supervisor is gone: nothing to report to
        print(f"petcd: {exit_}", file=sys.stderr)
    except BaseException:  # noqa: BLE001 - a child must never return into the supervisor
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(status)
