"""How etcdctl 3.4 prints user, role and auth commands (printer_simple.go,
printer_fields.go, printer.go's printerRPC; the binary was the judge):

- simple: one sentence per change ("Role r created", "Permission of range [a, b) is
  revoked from role r"...); role get lists "KV Read:" then "KV Write:" with each
  permission as a key, "[key, end)" or "[key, <open ended>", plus " (prefix key)"
  when the end is the key's prefix end.
- json and protobuf: the response message.
- fields: the header, then role get's permissions and role list's names; user get
  and user list are not supported there (exit 4, after the call).
- table: not supported (exit 4, after the call).
- auth enable and disable print their sentence whatever -w says; auth status (etcdctl
  3.5's) prints two lines, or the message in json and protobuf.
"""

from __future__ import annotations

from typing import Any

from petcd.api.authpb import auth_pb2
from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.client import requests
from petcd.client.ctl import gofmt
from petcd.client.ctl.printers import Printer

OPEN_END = b"\x00"


def changed(printer: Printer, sentence: str, resp: Any) -> None:
    """A change whose simple output is one sentence, fields' the header."""
    if printer.name == "simple":
        printer.write(sentence + "\n")
    elif printer.name == "fields":
        _header(printer, resp.header)
    else:
        printer.message(resp)


def role_get(printer: Printer, name: str, resp: pb.AuthRoleGetResponse) -> None:
    if printer.name == "simple":
        printer.write(_role_text(name, resp))
    elif printer.name == "fields":
        _header(printer, resp.header)
        for perm in resp.perm:
            # Go's Println(`"PermType" : `, ...) puts a second space before the name.
            printer.write(f'"PermType" :  {auth_pb2.Permission.Type.Name(perm.permType)}\n'
                          f'"Key" : {gofmt.quote(perm.key)}\n'
                          f'"RangeEnd" : {gofmt.quote(perm.range_end)}\n')
    else:
        printer.message(resp)


def role_list(printer: Printer, resp: pb.AuthRoleListResponse) -> None:
    if printer.name == "simple":
        printer.write("".join(f"{role}\n" for role in resp.roles))
    elif printer.name == "fields":
        _header(printer, resp.header)
        printer.write('"Roles" :' + "".join(f" {gofmt.quote(r.encode())}" for r in resp.roles)
                      + "\n")
    else:
        printer.message(resp)


def user_get(printer: Printer, name: str, resp: pb.AuthUserGetResponse) -> None:
    if printer.name == "simple":
        printer.write(f"User: {name}\nRoles:" + "".join(f" {r}" for r in resp.roles) + "\n")
    else:
        printer.message(resp)


def user_list(printer: Printer, resp: pb.AuthUserListResponse) -> None:
    if printer.name == "simple":
        printer.write("".join(f"{user}\n" for user in resp.users))
    else:
        printer.message(resp)


def auth_status(printer: Printer, resp: pb.AuthStatusResponse) -> None:
    """etcdctl 3.5's (3.4 has no auth status): fields and table are not supported."""
    if printer.name == "simple":
        printer.write(f"Authentication Status: {str(resp.enabled).lower()}\n"
                      f"AuthRevision: {resp.authRevision}\n")
    else:
        printer.message(resp)


def revoked_permission(name: str, key: str, range_end: bytes) -> str:
    """The sentence of role revoke-permission (key as typed, end as sent)."""
    if not range_end:
        return f"Permission of key {key} is revoked from role {name}"
    if range_end != OPEN_END:
        return f"Permission of range [{key}, {_text(range_end)}) is revoked from role {name}"
    return f"Permission of range [{key}, <open ended> is revoked from role {name}"


def _role_text(name: str, resp: pb.AuthRoleGetResponse) -> str:
    lines = [f"Role {name}", "KV Read:"]
    lines += [_perm_text(p) for p in resp.perm
              if p.permType in (auth_pb2.Permission.READ, auth_pb2.Permission.READWRITE)]
    lines.append("KV Write:")
    lines += [_perm_text(p) for p in resp.perm
              if p.permType in (auth_pb2.Permission.WRITE, auth_pb2.Permission.READWRITE)]
    return "".join(line + "\n" for line in lines)


def _perm_text(perm: auth_pb2.Permission) -> str:
    key = _text(perm.key)
    if not perm.range_end:
        return f"\t{key}"
    end = f"{_text(perm.range_end)})" if perm.range_end != OPEN_END else "<open ended>"
    prefix = f" (prefix {key})" if requests.prefix_range_end(perm.key) == perm.range_end else ""
    return f"\t[{key}, {end}{prefix}"


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _header(printer: Printer, header: pb.ResponseHeader) -> None:
    printer.write(f'"ClusterID" : {header.cluster_id}\n"MemberID" : {header.member_id}\n'
                  f'"Revision" : {header.revision}\n"RaftTerm" : {header.raft_term}\n')


