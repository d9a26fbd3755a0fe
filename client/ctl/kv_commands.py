"""put, get, del, txn and compaction, with etcdctl's flags, checks and messages."""

from __future__ import annotations

import sys

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.client import requests
from petcd.client.ctl import flags as fl
from petcd.client.ctl import gofmt, printers, txn_grammar
from petcd.client.ctl.command import Command, Context
from petcd.client.ctl.flags import EXIT_BAD_ARGS, EXIT_BAD_FEATURE, CtlError, Flag

PUT_FLAGS = [Flag("prev-kv", "bool", False), Flag("lease", "string", "0"),
             Flag("ignore-value", "bool", False), Flag("ignore-lease", "bool", False)]
GET_FLAGS = [Flag("consistency", "string", "l"), Flag("order", "string", ""),
             Flag("sort-by", "string", ""), Flag("limit", "int", 0),
             Flag("prefix", "bool", False), Flag("from-key", "bool", False),
             Flag("rev", "int", 0), Flag("keys-only", "bool", False),
             Flag("count-only", "bool", False), Flag("print-value-only", "bool", False)]
DEL_FLAGS = [Flag("prefix", "bool", False), Flag("prev-kv", "bool", False),
             Flag("from-key", "bool", False)]
TXN_FLAGS = [Flag("interactive", "bool", False, short="i")]
COMPACTION_FLAGS = [Flag("physical", "bool", False)]

_SORT_TARGETS = {"CREATE": "create", "KEY": "key", "MODIFY": "mod", "VALUE": "value",
                 "VERSION": "version", "": "key"}
_SORT_ORDERS = {"ASCEND": "ascend", "DESCEND": "descend", "": "none"}


def _bad_args(message: str) -> CtlError:
    return CtlError(EXIT_BAD_ARGS, message)


def put_request(parsed: fl.Parsed) -> pb.PutRequest:
    args, values = parsed.args, parsed.values
    if not args:
        raise _bad_args("put command needs 1 argument and input from stdin or 2 arguments")
    if values["ignore-value"] and len(args) > 1:
        raise _bad_args("put command needs only 1 argument when 'ignore-value' is set")
    value = b""
    if not values["ignore-value"]:
        value = args[1].encode() if len(args) > 1 else sys.stdin.buffer.read()
        if len(args) == 1 and not value:
            raise _bad_args("put command needs 1 argument and input from stdin or 2 arguments")
    try:
        lease = gofmt.parse_int(values["lease"], 16)
    except ValueError as exc:
        raise _bad_args(f"bad lease ID ({exc}), expecting ID in Hex") from None
    return requests.put_request(args[0], value, lease=lease, prev_kv=values["prev-kv"],
                                ignore_value=values["ignore-value"],
                                ignore_lease=values["ignore-lease"])


def _range_options(args: tuple[str, ...], values: dict, name: str) -> dict:
    """Key range options shared by get and del, with their usage errors."""
    if not args:
        raise _bad_args(f"{name} command needs one argument as key and an optional "
                        "argument as range_end")
    if values["prefix"] and values["from-key"]:
        raise _bad_args("`--prefix` and `--from-key` cannot be set at the same time, "
                        "choose one")
    if len(args) > 1 and (values["prefix"] or values["from-key"]):
        raise _bad_args("too many arguments, only accept one argument when `--prefix` "
                        "or `--from-key` is set")
    return {"key": args[0], "range_end": args[1] if len(args) > 1 else None,
            "prefix": values["prefix"], "from_key": values["from-key"]}


def range_request(parsed: fl.Parsed) -> pb.RangeRequest:
    values = parsed.values
    options = _range_options(parsed.args, values, "get")
    if values["keys-only"] and values["count-only"]:
        raise _bad_args("`--keys-only` and `--count-only` cannot be set at the same "
                        "time, choose one")
    if values["consistency"] not in ("l", "s"):
        raise CtlError(EXIT_BAD_FEATURE,
                       f'unknown consistency flag "{values["consistency"]}"')
    order, target = values["order"].upper(), values["sort-by"].upper()
    if order not in _SORT_ORDERS:
        raise CtlError(EXIT_BAD_FEATURE, f"bad sort order {values['order']}")
    if target not in _SORT_TARGETS:
        raise CtlError(EXIT_BAD_FEATURE, f"bad sort target {values['sort-by']}")
    sort_order = _SORT_ORDERS[order]
    if target in ("KEY", "") and sort_order == "ascend":
        sort_order = "none"  # clientv3: keys come sorted ascending anyway
    return requests.range_request(
        **options, limit=values["limit"], revision=max(values["rev"], 0),
        sort_target=_SORT_TARGETS[target], sort_order=sort_order,
        keys_only=values["keys-only"], count_only=values["count-only"],
        serializable=values["consistency"] == "s")


def delete_request(parsed: fl.Parsed) -> pb.DeleteRangeRequest:
    options = _range_options(parsed.args, parsed.values, "del")
    return requests.delete_request(**options, prev_kv=parsed.values["prev-kv"])


def run_put(ctx: Context) -> None:
    request = put_request(ctx.parsed)
    resp = ctx.client().call(request)
    ctx.printer.put(resp)


def run_get(ctx: Context) -> None:
    request = range_request(ctx.parsed)
    resp = ctx.client().call(request)
    if ctx.flag("count-only") and not isinstance(ctx.printer, printers.FieldsPrinter):
        raise _bad_args("--count-only is only for `--write-out=fields`")
    if ctx.flag("print-value-only"):
        if not isinstance(ctx.printer, printers.SimplePrinter):
            raise _bad_args("print-value-only is only for `--write-out=simple`")
        ctx.printer.value_only = True
    ctx.printer.get(resp)


def run_del(ctx: Context) -> None:
    request = delete_request(ctx.parsed)
    resp = ctx.client().call(request)
    ctx.printer.delete(resp)


def _request_op(line: str) -> pb.RequestOp:
    args = txn_grammar.argify(line)
    if len(args) < 2:
        raise CtlError(fl.EXIT_INVALID_INPUT, f"invalid txn compare request: {line}")
    name, rest = args[0], args[1:]
    build = {"put": (PUT_FLAGS, put_request, "request_put"),
             "get": (GET_FLAGS, range_request, "request_range"),
             "del": (DEL_FLAGS, delete_request, "request_delete_range")}.get(name)
    if build is None:
        raise CtlError(fl.EXIT_INVALID_INPUT, f"invalid txn request: {line}")
    flag_set, make, field = build
    try:
        parsed = fl.parse(flag_set, rest)
    except CtlError:
        raise CtlError(fl.EXIT_INVALID_INPUT, f"invalid txn request: {line}") from None
    return pb.RequestOp(**{field: make(parsed)})


def run_txn(ctx: Context) -> None:
    if ctx.args:
        raise _bad_args("txn command does not accept argument")
    lines = iter(sys.stdin.readline, "")
    blocks = []
    for prompt, parse in (("compares:", txn_grammar.parse_compare),
                          ("success requests (get, put, del):", _request_op),
                          ("failure requests (get, put, del):", _request_op)):
        if ctx.flag("interactive"):
            ctx.stdout(prompt + "\n")
            sys.stdout.flush()
        blocks.append(txn_grammar.read_block(lines, parse))
    request = pb.TxnRequest(compare=blocks[0], success=blocks[1], failure=blocks[2])
    resp = ctx.client().call(request)
    ctx.printer.txn(resp)


def run_compaction(ctx: Context) -> None:
    if len(ctx.args) != 1:
        raise _bad_args("compaction command needs 1 argument")
    try:
        revision = int(ctx.args[0], 10)
    except ValueError:
        raise CtlError(fl.EXIT_ERROR, f'strconv.ParseInt: parsing "{ctx.args[0]}": '
                                      "invalid syntax") from None
    ctx.client().compact(revision, physical=ctx.flag("physical"))
    ctx.stdout(f"compacted revision {revision}\n")


COMMANDS = [
    Command(("put",), PUT_FLAGS, run_put),
    Command(("get",), GET_FLAGS, run_get),
    Command(("del",), DEL_FLAGS, run_del),
    Command(("txn",), TXN_FLAGS, run_txn),
    Command(("compaction",), COMPACTION_FLAGS, run_compaction),
]
