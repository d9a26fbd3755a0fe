"""etcdctl's txn input: three blocks, each ended by an empty line.

    mod("key1") > "0"            compares: target("key") op "operand"
    value("key2") = "v"          targets: ver(sion), c(reate), m(od), val(ue), lease
                                 ops: = == != > <
    put key1 "overwrote-key1"    success requests: put/get/del lines with their flags
                                 (arguments split as etcdctl's argify does)
    put key1 "created-key1"      failure requests

Strings are Go double-quoted strings (escapes allowed); a lease operand is hex.
"""

from __future__ import annotations

import ast
import re

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.client import requests
from petcd.client.ctl import gofmt
from petcd.client.ctl.flags import EXIT_INVALID_INPUT, CtlError

_TARGETS = {"ver": "version", "version": "version", "c": "create", "create": "create",
            "m": "mod", "mod": "mod", "val": "value", "value": "value", "lease": "lease"}
_GO_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_ARG = re.compile(r"""\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^'\"\s]\S*[^'\"\s]?""")


def unquote(literal: str) -> str:
    """A Go double-quoted string literal's value (ValueError if malformed)."""
    try:
        value = ast.literal_eval(literal)
    except (SyntaxError, ValueError):
        raise ValueError(f"invalid quoted string {literal}") from None
    if not isinstance(value, str):
        raise ValueError(f"invalid quoted string {literal}")
    return value


def argify(line: str) -> list[str]:
    """etcdctl's argify: words, "double quoted" (Go escapes) or 'single quoted'."""
    args = []
    for word in _ARG.findall(line):
        if word.startswith("'"):
            word = word[1:-1]
        elif word.startswith('"'):
            try:
                word = unquote(word)
            except ValueError as exc:
                raise CtlError(EXIT_INVALID_INPUT, str(exc)) from None
        args.append(word)
    return args


def _scan_quoted(text: str, pos: int) -> tuple[str, int] | None:
    """fmt.Sscanf's %q at `pos` (leading spaces skipped): (value, end) or None."""
    match = _GO_STRING.match(text, len(text) - len(text[pos:].lstrip(" ")))
    if match is None:
        return None
    try:
        return unquote(match.group(0)), match.end()
    except ValueError:
        return None


def _scan_compare(rest: str) -> tuple[list[str], bool]:
    """fmt.Sscanf(rest, `%q) %s %q`): the values scanned and whether all three were."""
    scanned: list[str] = []
    got = _scan_quoted(rest, 0)
    if got is None or not rest[got[1]:].startswith(")"):
        return ([got[0]] if got else []), False
    scanned.append(got[0])
    op = re.match(r"\s+(\S+)", rest[got[1] + 1:])  # Go: a format space needs one
    if op is None:
        return scanned, False
    scanned.append(op.group(1))
    value = _scan_quoted(rest, got[1] + 1 + op.end())
    if value is None:
        return scanned, False
    return scanned + [value[0]], True


def parse_compare(line: str) -> pb.Compare:
    target, paren, rest = line.partition("(")
    if not paren:
        raise CtlError(EXIT_INVALID_INPUT, f"malformed comparison: {line}")
    scanned, complete = _scan_compare(rest)
    if not complete:
        key, op, operand = (scanned + ["", "", ""])[:3]
        raise CtlError(EXIT_INVALID_INPUT, f"malformed comparison: {line}; got {target}("
                                           f"{gofmt.quote(key.encode())}) {op} "
                                           f"{gofmt.quote(operand.encode())}")
    key, op, operand = scanned
    if target not in _TARGETS:
        raise CtlError(EXIT_INVALID_INPUT,
                       f"malformed comparison: {line} (unknown target {target})")
    kind = _TARGETS[target]
    try:
        value = operand if kind == "value" else int(operand, 16 if kind == "lease" else 10)
        return requests.compare(kind, key, op, value)
    except ValueError:
        raise CtlError(EXIT_INVALID_INPUT, f"invalid txn compare request: {line}") from None


def read_block(lines, parse) -> list:
    """Parse lines up to the next empty one; EOF before it is etcdctl's "EOF" error."""
    parsed = []
    for raw in lines:
        if not raw.endswith("\n"):
            break  # etcdctl's reader fails on a last line without its newline
        line = raw.strip()
        if not line:
            return parsed
        parsed.append(parse(line))
    raise CtlError(EXIT_INVALID_INPUT, "EOF")
