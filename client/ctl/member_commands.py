"""member add, remove, update and promote, with etcdctl's argument checks, in its
order: the arguments, then the hex ID, then --peer-urls (all exit 128), then the
client's URL check and the server's answer (exit 1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from petcd.client.ctl import gofmt, member_output
from petcd.client.ctl.command import Command, Context
from petcd.client.ctl.flags import EXIT_BAD_ARGS, EXIT_ERROR, CtlError, Flag

PEER_URLS_FLAG = Flag("peer-urls", "string", "")
Response = TypeVar("Response")


def _member_id(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "member ID is not provided")
    try:
        return gofmt.parse_uint(ctx.args[0], 16)
    except ValueError as exc:
        raise CtlError(EXIT_BAD_ARGS, f"bad member ID arg ({exc}), expecting ID in Hex"
                       ) from None


def _peer_urls(ctx: Context) -> list[str]:
    text = ctx.flag("peer-urls")
    if not text:
        raise CtlError(EXIT_BAD_ARGS, "member peer urls not provided")
    return text.split(",")


def _name(ctx: Context) -> str:
    if not ctx.args:
        raise CtlError(EXIT_BAD_ARGS, "member name not provided")
    if len(ctx.args) > 1:
        # etcdctl's hint for a URL given without the flag.
        hints = "".join(f", did you mean --peer-urls={arg}" for arg in ctx.args
                        if arg.lower().startswith("http"))
        raise CtlError(EXIT_BAD_ARGS, "too many arguments" + hints)
    return ctx.args[0]


def _client_checked(call: Callable[[], Response]) -> Response:
    """The call, with the client's own refusal of a peer URL as etcdctl's exit 1."""
    try:
        return call()
    except ValueError as exc:
        raise CtlError(EXIT_ERROR, str(exc)) from None


def run_member_add(ctx: Context) -> None:
    name = _name(ctx)
    peer_urls = _peer_urls(ctx)
    client = ctx.client()
    resp = _client_checked(lambda: client.member_add(peer_urls, ctx.flag("learner")))
    member_output.add(ctx.printer, resp, name, ctx.flag("peer-urls"))


def run_member_remove(ctx: Context) -> None:
    member_id = _member_id(ctx)
    resp = ctx.client().member_remove(member_id)
    member_output.changed(ctx.printer, "removed from", member_id, resp)


def run_member_update(ctx: Context) -> None:
    member_id = _member_id(ctx)
    peer_urls = _peer_urls(ctx)
    client = ctx.client()
    resp = _client_checked(lambda: client.member_update(member_id, peer_urls))
    member_output.changed(ctx.printer, "updated in", member_id, resp)


def run_member_promote(ctx: Context) -> None:
    member_id = _member_id(ctx)
    resp = ctx.client().member_promote(member_id)
    member_output.changed(ctx.printer, "promoted in", member_id, resp)


COMMANDS = [
    Command(("member", "add"), [PEER_URLS_FLAG, Flag("learner", "bool", False)],
            run_member_add),
    Command(("member", "remove"), [], run_member_remove),
    Command(("member", "update"), [PEER_URLS_FLAG], run_member_update),
    Command(("member", "promote"), [], run_member_promote),
]
