"""Who this member is, decided before its actors start: a new cluster's founder, a
member joining a running cluster, or a member restarting on its data.

    the data dir has a WAL     restart: the member and cluster IDs are the WAL's (as
                               etcd, the --initial-cluster flags are then ignored); if
                               the other members say it was removed, it stops (etcd's
                               "the member has been permanently removed from the
                               cluster", exit 0); --force-new-cluster rewrites its log
                               to a one-member cluster first (force_new_cluster.py)
    --initial-cluster-state    join: the running members (asked over their peer URLs,
      existing                 join.py) name the member whose peer URLs are this one's
                               --initial-advertise-peer-urls: MemberAdd made it. Its
                               ID, the cluster's ID and everyone's peer URLs come from
                               the answer, and its WAL starts empty: the leader sends
                               the log or a snapshot.
    otherwise (new)            the IDs hash --initial-cluster (MemberContext.from_settings)

The cluster-size advice (an even number of voters, or more than 7) is logged for a new
cluster here and for MemberAdd by the leader (actors/network/membership.py).
"""

from __future__ import annotations

import ssl
from dataclasses import replace
from typing import Any

from petcd.actors.bus import peertls
from petcd.actors.member import MemberContext, Peer, advise_size
from petcd.actors.wal.startup import decode_metadata
from petcd.config import Settings, ids
from petcd.storage.wal import WalError, read_metadata, wal_exists

from .force_new_cluster import force_new_cluster
from .join import ClusterView, Relayed, ask_members

JOIN_TIMEOUT_S = 10.0  # a member is usually started right after its MemberAdd
RESTART_CHECK_TIMEOUT_S = 1.0  # peers may all be restarting too: don't wait long


class BootstrapError(Exception):
    """The member cannot start as configured: log `str(self)` and exit `status`."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class RemovedMember(Exception):
    """The running cluster removed this member."""


def member_context(settings: Settings, log: Any) -> MemberContext:
    ctx = MemberContext.from_settings(settings)
    if wal_exists(settings.wal_dir):
        return _restarting(ctx, log)
    if settings.initial_cluster_state == "existing":
        return _joining(ctx, log)
    advise_size(len(ctx.initial_peers), log)
    return ctx


def _restarting(ctx: MemberContext, log: Any) -> MemberContext:
    try:
        member_id, cluster_id = decode_metadata(read_metadata(ctx.wal_dir))
    except (WalError, ValueError, OSError) as err:
        # The WAL actor reads the whole WAL and says precisely what is wrong.
        log.warning("cannot read the WAL's member and cluster IDs", error=str(err))
        return ctx
    if ctx.settings.discovery_endpoints:
        log.warning("discovery token is ignored since cluster already initialized; valid logs "
                    "are found", wal_dir=str(ctx.wal_dir))
    if (member_id, cluster_id) != (ctx.member_id, ctx.cluster_id):
        log.info("restarting with the data dir's identity; --initial-cluster flags ignored",
                 data_dir_member_id=ids.format_id(member_id),
                 data_dir_cluster_id=ids.format_id(cluster_id),
                 flags_member_id=ids.format_id(ctx.member_id))
        ctx = replace(ctx, member_id=member_id, cluster_id=cluster_id, initial_peers=())
    if ctx.settings.force_new_cluster:
        try:
            force_new_cluster(ctx, log)
        except (WalError, OSError) as err:
            raise BootstrapError(f"cannot force a new cluster: {err}") from err
        return ctx
    view = ask_members(_other_peer_urls(ctx.settings), RESTART_CHECK_TIMEOUT_S,
                       relay=_relay(ctx, log))
    if view is not None and view.cluster_id == cluster_id and member_id in view.removed:
        raise RemovedMember()
    return ctx


def _joining(ctx: MemberContext, log: Any) -> MemberContext:
    s = ctx.settings
    others = _other_peer_urls(s)
    mine = [str(u) for u in s.initial_advertise_peer_urls]
    view = ask_members(others, JOIN_TIMEOUT_S,
                       accept=lambda v: v.member_with_urls(mine) is not None,
                       relay=_relay(ctx, log))
    if view is None:
        raise BootstrapError("cannot fetch cluster info from peer urls: could not retrieve "
                             "cluster information from the given URLs")
    _check_matches(s, view)
    member_id = view.member_with_urls(mine)
    assert member_id is not None, "checked by _check_matches"
    names = {tuple(sorted(str(u) for u in m.peer_urls)): m.name for m in s.initial_cluster}
    peers = tuple(Peer(m, names.get(tuple(sorted(urls)), ""), urls) for m, urls in view.members)
    log.info("joining an existing cluster", joining_member_id=ids.format_id(member_id),
             cluster_id=ids.format_id(view.cluster_id), members=len(peers))
    return replace(ctx, member_id=member_id, cluster_id=view.cluster_id, initial_peers=peers)


def _relay(ctx: MemberContext, log: Any) -> Relayed | None:
    """With peer TLS on, the query goes through a relay too (join.Relayed)."""
    try:
        tls = peertls.peer_tls(ctx.settings)
        if tls is None:
            return None
        _, client = peertls.contexts(tls, log)
    except (OSError, ssl.SSLError, ValueError) as err:
        raise BootstrapError(f"peer TLS: {err}") from err
    return Relayed(ctx.run_dir, client, log)


def _check_matches(s: Settings, view: ClusterView) -> None:
    """etcd's ValidateClusterAndAssignIDs: --initial-cluster names the running
    cluster's members, each by its peer URLs."""
    prefix = f"error validating peerURLs {_describe(view)}"
    if len(s.initial_cluster) != len(view.members):
        raise BootstrapError(f"{prefix}: member count is unequal")
    for m in s.initial_cluster:
        if view.member_with_urls([str(u) for u in m.peer_urls]) is None:
            urls = sorted(str(u) for u in m.peer_urls)
            raise BootstrapError(f"{prefix}: unmatched member while checking PeerURLs "
                                 f"(\"{m.name}\" {urls})")


def _describe(view: ClusterView) -> str:
    members = " ".join(f"{ids.format_id(m)}={','.join(urls)}" for m, urls in view.members)
    return f"{{ClusterID:{ids.format_id(view.cluster_id)} Members:[{members}]}}"


def _other_peer_urls(s: Settings) -> list[str]:
    mine = {str(u) for u in s.initial_advertise_peer_urls}
    return [str(u) for m in s.initial_cluster for u in m.peer_urls if str(u) not in mine]
