"""member list, endpoint health|status|hashkv, defrag, alarm, snapshot save and
move-leader, with etcdctl's per-endpoint reporting and exit codes."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from petcd.client.ctl import gofmt, printers
from petcd.client.ctl.command import Command, Context
from petcd.client.ctl.flags import (EXIT_BAD_ARGS, EXIT_ERROR, EXIT_INTERRUPTED,
                                    CtlError, Flag)
from petcd.client.errors import EtcdError

CLUSTER_FLAG = Flag("cluster", "bool", False)
# etcd answers a permission error only after the read went through consensus.
_PERMISSION_DENIED = "etcdserver: permission denied"


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def endpoints_of(ctx: Context) -> list[str]:
    """--endpoints, or with --cluster every member's client URLs."""
    if not ctx.flag("cluster"):
        return ctx.endpoints
    try:
        members = ctx.client().member_list().members
    except EtcdError as exc:
        raise CtlError(EXIT_ERROR, "failed to fetch endpoints from etcd cluster member "
                                   f"list: {exc.message}") from None
    return [url for member in members for url in member.clientURLs]


def run_member_list(ctx: Context) -> None:
    ctx.printer.member_list(ctx.client().member_list())


def _health_of(ctx: Context, endpoint: str) -> printers.EndpointHealth:
    """etcdctl 3.4's check: a linearizable read of the key "health" (active alarms do
    not count; later etcdctl versions also list alarms)."""
    started = time.monotonic()
    try:
        ctx.client([endpoint]).get("health")
    except EtcdError as exc:
        if exc.message != _PERMISSION_DENIED:
            return printers.EndpointHealth(endpoint, False, time.monotonic() - started,
                                           exc.message)
    return printers.EndpointHealth(endpoint, True, time.monotonic() - started, "")


def run_endpoint_health(ctx: Context) -> int:
    endpoints = endpoints_of(ctx)
    with ThreadPoolExecutor(max_workers=max(1, min(len(endpoints), 16))) as pool:
        futures = [pool.submit(_health_of, ctx, ep) for ep in endpoints]
        healths = [f.result() for f in as_completed(futures)]  # etcdctl: as they finish
    ctx.printer.endpoint_health(healths)
    if not all(h.healthy for h in healths):
        raise CtlError(EXIT_ERROR, "unhealthy cluster")
    return 0


def run_endpoint_status(ctx: Context) -> int:
    statuses, failed = [], False
    client = ctx.client()
    for endpoint in endpoints_of(ctx):
        try:
            statuses.append(printers.EndpointStatus(endpoint, client.status(endpoint)))
        except EtcdError as exc:
            failed = True
            ctx.stderr(f"Failed to get the status of endpoint {endpoint} ({exc.message})\n")
    ctx.printer.endpoint_status(statuses)
    return EXIT_ERROR if failed else 0


def run_endpoint_hashkv(ctx: Context) -> None:
    hashes, last_error = [], None
    client = ctx.client()
    for endpoint in endpoints_of(ctx):
        try:
            hashes.append(printers.EndpointHash(
                endpoint, client.hash_kv(ctx.flag("rev"), endpoint)))
        except EtcdError as exc:
            last_error = exc
            ctx.stderr(f"Failed to get the hash of endpoint {endpoint} ({exc.message})\n")
    ctx.printer.endpoint_hash(hashes)
    if last_error is not None:
        raise CtlError(EXIT_ERROR, last_error.message)


def run_defrag(ctx: Context) -> int:
    failed = False
    client = ctx.client()
    for endpoint in endpoints_of(ctx):
        try:
            client.defragment(endpoint)
        except EtcdError as exc:
            failed = True
            ctx.stderr(f"Failed to defragment etcd member[{endpoint}] ({exc.message})\n")
            continue
        ctx.stdout(f"Finished defragmenting etcd member[{endpoint}]\n")
    return EXIT_ERROR if failed else 0


def run_alarm_list(ctx: Context) -> None:
    ctx.printer.alarm(ctx.client().alarm_list())


def run_alarm_disarm(ctx: Context) -> None:
    ctx.printer.alarm(ctx.client().alarm_disarm())


def run_snapshot_save(ctx: Context) -> None:
    if len(ctx.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "snapshot save expects one argument")
    path = ctx.args[0]
    if len(ctx.endpoints) != 1:
        raise CtlError(EXIT_INTERRUPTED, "snapshot must be requested to one selected "
                                         f"node, not multiple {_go_list(ctx.endpoints)}")
    try:
        ctx.client().snapshot(path)
    except EtcdError as exc:
        raise CtlError(EXIT_INTERRUPTED, exc.message) from None
    except OSError as exc:
        reason = (exc.strerror or str(exc))
        raise CtlError(EXIT_INTERRUPTED, f"could not open {exc.filename} (open "
                                         f"{exc.filename}: {reason[:1].lower()}{reason[1:]})"
                       ) from None
    ctx.stdout(f"Snapshot saved at {path}\n")


def run_move_leader(ctx: Context) -> None:
    if len(ctx.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "move-leader command needs 1 argument")
    try:
        target = gofmt.parse_uint(ctx.args[0], 16)
    except ValueError as exc:
        raise CtlError(EXIT_BAD_ARGS, str(exc)) from None
    client = ctx.client()
    for endpoint in ctx.endpoints:
        status = client.status(endpoint)  # etcdctl stops at the first failure
        if status.HasField("header") and status.header.member_id == status.leader:
            resp = client.move_leader(target, endpoint)
            ctx.printer.move_leader(status.leader, target, resp)
            return
    raise CtlError(EXIT_BAD_ARGS, f"no leader endpoint given at {_go_list(ctx.endpoints)}")


COMMANDS = [
    Command(("member", "list"), [], run_member_list),
    Command(("endpoint", "health"), [CLUSTER_FLAG], run_endpoint_health),
    Command(("endpoint", "status"), [CLUSTER_FLAG], run_endpoint_status),
    Command(("endpoint", "hashkv"), [CLUSTER_FLAG, Flag("rev", "int", 0)],
            run_endpoint_hashkv),
    Command(("defrag",), [CLUSTER_FLAG], run_defrag),
    Command(("alarm", "list"), [], run_alarm_list),
    Command(("alarm", "disarm"), [], run_alarm_disarm),
    Command(("snapshot", "save"), [], run_snapshot_save),
    Command(("move-leader",), [], run_move_leader),
]
