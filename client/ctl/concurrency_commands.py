"""lock and elect, as etcdctl 3.4's (etcdctl/ctlv3/command/lock_command.go,
elect_command.go; the binary was the judge), on the server's v3lock and v3election
services where etcdctl runs clientv3/concurrency's recipes itself: the keys, values,
revisions and output are the same.

    lock <lockname> [exec-command arg1 arg2 ...]   (--ttl: the session's, default 10)
    elect <election-name> [proposal]               elect -l <election-name>

- lock prints the lock's key as `get` would print it and holds the lock until
  SIGINT or SIGTERM (then unlocks, exit 0); with a command, runs it with
  ETCD_LOCK_KEY and ETCD_LOCK_REV in its environment instead, unlocks, and fails
  with Go's exec error ("exit status 3", exit 1) if it failed.
- elect prints the leader key once elected and leads until SIGINT or SIGTERM (then
  resigns, exit 0); elect -l prints the leader, then each new one, until a signal.
- A signal while still waiting for the lock or the election: "Error: context
  canceled", exit 1 (the server withdraws the request). The session's lease lost:
  "session expired" / "elect: session expired", exit 1.
- Beyond etcdctl: petcdctl revokes its session's lease on the way out (etcdctl
  leaves it to expire), and `elect -l` holds no lease (etcdctl grants one it never
  uses).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.api.v3electionpb import v3election_pb2 as epb
from petcd.client.client import Client
from petcd.client.ctl import go_exec
from petcd.client.ctl.command import Command, Context
from petcd.client.ctl.flags import EXIT_BAD_ARGS, EXIT_ERROR, CtlError, Flag
from petcd.client.errors import EtcdError

LOCK_TTL_S = 10  # etcdctl 3.4's --ttl default
# etcdctl's texts.
LOCK_ARGS = "lock takes a lock name argument and an optional command to execute"
ELECT_ARGS = "elect takes one election name argument and an optional proposal argument"
NO_PROPOSAL = "no proposal argument but -l not set"
PROPOSAL_AND_LISTEN = "proposal given but -l is set"
CANCELED = "context canceled"
LOCK_LOST = "lock lost on init"
SESSION_EXPIRED = "session expired"
ELECT_SESSION_EXPIRED = "elect: session expired"
OBSERVER_LOST = "elect: observer lost"
POLL_S = 0.2  # how often a holder checks its session while waiting for a signal


class Stopped(Exception):
    """SIGINT or SIGTERM arrived (raised in the main thread by the handler)."""


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While the body runs, SIGINT and SIGTERM raise Stopped in the main thread (once:
    a second signal during the clean-up is ignored), as etcdctl's signal.Notify turns
    them into a cancel."""
    def handler(_signum, _frame) -> None:
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)
        raise Stopped

    previous = {number: signal.signal(number, handler)
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


def _wait_for_signal(lost) -> bool:
    """Until a signal (True) or `lost()` (False)."""
    try:
        while not lost():
            time.sleep(POLL_S)
    except Stopped:
        return True
    return False


def _show_key(ctx: Context, client: Client, key: bytes) -> pb.RangeResponse:
    resp = client.get(key)
    if resp.kvs:
        ctx.printer.get(resp)
        sys.stdout.buffer.flush()
    return resp


def run_lock(ctx: Context) -> None:
    if not ctx.args:
        raise CtlError(EXIT_BAD_ARGS, LOCK_ARGS)
    name, command = ctx.args[0], ctx.args[1:]
    ttl = ctx.flag("ttl") if ctx.flag("ttl") > 0 else 60  # concurrency.WithTTL ignores <= 0
    client = ctx.client()
    with stop_on_signals():
        try:
            with client.lock(name, ttl=ttl) as held:
                if command:
                    _run_locked(command, held.key, held.acquired_revision)
                    return
                if not _show_key(ctx, client, held.key).kvs:
                    raise CtlError(EXIT_ERROR, LOCK_LOST)
                if not _wait_for_signal(lambda: held.lost):
                    raise CtlError(EXIT_ERROR, SESSION_EXPIRED)
        except Stopped:  # still waiting for the lock
            raise CtlError(EXIT_ERROR, CANCELED) from None


def _run_locked(command: tuple[str, ...], key: bytes, revision: int) -> None:
    sys.stdout.buffer.flush()
    env = {**os.environ, "ETCD_LOCK_KEY": key.decode(errors="surrogateescape"),
           "ETCD_LOCK_REV": str(revision)}
    problem = go_exec.run(command, env)
    if problem:
        raise CtlError(EXIT_ERROR, problem)


def run_elect(ctx: Context) -> None:
    if len(ctx.args) not in (1, 2):
        raise CtlError(EXIT_BAD_ARGS, ELECT_ARGS)
    listen = ctx.flag("listen")
    if len(ctx.args) == 1 and not listen:
        raise CtlError(EXIT_BAD_ARGS, NO_PROPOSAL)
    if len(ctx.args) == 2 and listen:
        raise CtlError(EXIT_BAD_ARGS, PROPOSAL_AND_LISTEN)
    with stop_on_signals():
        if listen:
            _observe(ctx, ctx.args[0])
        else:
            _campaign(ctx, ctx.args[0], ctx.args[1])


def _campaign(ctx: Context, name: str, proposal: str) -> None:
    client = ctx.client()
    with client.election(name) as election:
        try:
            leader = election.campaign(proposal)
            _show_key(ctx, client, leader.key)
        except Stopped:
            raise CtlError(EXIT_ERROR, CANCELED) from None
        if not _wait_for_signal(lambda: election.lost):
            raise CtlError(EXIT_ERROR, ELECT_SESSION_EXPIRED)
        election.resign()


def _observe(ctx: Context, name: str) -> None:
    with ctx.client().observe_election(name) as observation:
        try:
            while not observation.ended:
                resp = observation.get(POLL_S)
                if resp is not None:
                    ctx.printer.get(_as_range(resp))
                    sys.stdout.buffer.flush()
        except Stopped:
            return
        except EtcdError:
            pass  # no endpoint would serve it: etcdctl's observer ends the same way
    raise CtlError(EXIT_ERROR, OBSERVER_LOST)


def _as_range(resp: epb.LeaderResponse) -> pb.RangeResponse:
    """clientv3/concurrency's Observe hands etcdctl a GetResponse of the header and
    the leader's key-value (no count)."""
    return pb.RangeResponse(header=resp.header, kvs=[resp.kv])


COMMANDS = [
    Command(("lock",), [Flag("ttl", "int", LOCK_TTL_S)], run_lock),
    Command(("elect",), [Flag("listen", "bool", False, short="l")], run_elect),
]
