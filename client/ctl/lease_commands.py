"""lease grant|revoke|timetolive|list|keep-alive, as etcdctl 3.4's
(etcdctl/ctlv3/command/lease_command.go; the binary was the judge).

- A TTL is decimal, a lease ID hexadecimal, both Go's strconv.ParseInt (a sign is
  allowed; "-5" alone is taken for a flag, so it needs `--` as in etcdctl); a bad one
  exits 128 with ParseInt's message.
- grant and revoke failures exit 1 ("failed to grant lease (...)"); timetolive, list
  and keep-alive failures exit 2 (etcdctl's ExitBadConnection), as etcdctl's do.
- timetolive of a lease that does not exist prints "already expired" (exit 0);
  keep-alive --once of one fails with etcd's "requested lease not found" (exit 2);
  keep-alive of one ends at once: "lease ... expired or revoked." (simple format
  only), exit 0, as when a lease being kept alive is revoked.
"""

from __future__ import annotations

import sys
import threading

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.client.ctl import gofmt, lease_output
from petcd.client.ctl.command import Command, Context
from petcd.client.ctl.flags import EXIT_BAD_ARGS, EXIT_ERROR, CtlError, Flag
from petcd.client.errors import EtcdError

EXIT_BAD_CONNECTION = 2  # etcdctl's ExitBadConnection
POLL_S = 1.0  # a bound on each wait for the keep-alive's news (it also notifies)


def _one_arg(ctx: Context, message: str) -> str:
    if len(ctx.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, message)
    return ctx.args[0]


def lease_from_arg(text: str) -> int:
    try:
        return gofmt.parse_int(text, 16)
    except ValueError as exc:
        raise CtlError(EXIT_BAD_ARGS, f"bad lease ID arg ({exc}), expecting ID in Hex") from None


def _bad_connection(exc: EtcdError) -> CtlError:
    return CtlError(EXIT_BAD_CONNECTION, exc.message)


def run_grant(ctx: Context) -> None:
    text = _one_arg(ctx, "lease grant command needs TTL argument")
    try:
        ttl = gofmt.parse_int(text, 10)
    except ValueError as exc:
        raise CtlError(EXIT_BAD_ARGS, f"bad TTL ({exc})") from None
    try:
        resp = ctx.client().lease_grant(ttl)
    except EtcdError as exc:
        raise CtlError(EXIT_ERROR, f"failed to grant lease ({exc.message})") from None
    lease_output.grant(ctx.printer, resp)


def run_revoke(ctx: Context) -> None:
    lease_id = lease_from_arg(_one_arg(ctx, "lease revoke command needs 1 argument"))
    try:
        resp = ctx.client().lease_revoke(lease_id)
    except EtcdError as exc:
        raise CtlError(EXIT_ERROR, f"failed to revoke lease ({exc.message})") from None
    lease_output.revoke(ctx.printer, lease_id, resp)


def run_time_to_live(ctx: Context) -> None:
    text = _one_arg(ctx, "lease timetolive command needs lease ID as argument")
    lease_id, keys = lease_from_arg(text), ctx.flag("keys")
    try:
        resp = ctx.client().lease_time_to_live(lease_id, keys=keys)
    except EtcdError as exc:
        raise _bad_connection(exc) from None
    lease_output.time_to_live(ctx.printer, resp, keys)


def run_list(ctx: Context) -> None:
    try:
        resp = ctx.client().lease_leases()  # etcdctl ignores any arguments
    except EtcdError as exc:
        raise _bad_connection(exc) from None
    lease_output.leases(ctx.printer, resp)


def run_keep_alive(ctx: Context) -> None:
    text = _one_arg(ctx, "lease keep-alive command needs lease ID as argument")
    lease_id = lease_from_arg(text)
    if ctx.flag("once"):
        try:
            resp = ctx.client().lease_keep_alive_once(lease_id)
        except EtcdError as exc:
            raise _bad_connection(exc) from None
        lease_output.keep_alive(ctx.printer, resp)
        return
    _keep_alive_until_lost(ctx, lease_id)
    if ctx.printer.name == "simple":
        ctx.stdout(f"lease {lease_id:016x} expired or revoked.\n")


def _keep_alive_until_lost(ctx: Context, lease_id: int) -> None:
    """Print each renewal until the lease is gone (the main thread prints, so an
    unsupported format's error ends the command as any other)."""
    renewed: list[pb.LeaseKeepAliveResponse] = []
    arrived = threading.Condition()

    def on_renewed(resp: pb.LeaseKeepAliveResponse) -> None:
        with arrived:
            renewed.append(resp)
            arrived.notify()

    def on_lost(_reason: str) -> None:
        with arrived:
            arrived.notify()

    with ctx.client().keep_alive(lease_id, on_renewed=on_renewed,
                                 on_lost=on_lost) as keeping:
        while True:
            with arrived:
                arrived.wait_for(lambda: renewed or keeping.lost, POLL_S)
                batch, renewed[:] = list(renewed), []
            for resp in batch:
                lease_output.keep_alive(ctx.printer, resp)
                sys.stdout.buffer.flush()
            if keeping.lost and not batch:
                return


COMMANDS = [
    Command(("lease", "grant"), [], run_grant),
    Command(("lease", "revoke"), [], run_revoke),
    Command(("lease", "timetolive"), [Flag("keys", "bool", False)], run_time_to_live),
    Command(("lease", "list"), [], run_list),
    Command(("lease", "keep-alive"), [Flag("once", "bool", False)], run_keep_alive),
]
