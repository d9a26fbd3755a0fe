"""How etcdctl 3.4 prints lease responses in each format (printer_*.go; the binary was
the judge). Its json and protobuf printers get clientv3's structs, not the messages:

- json: the struct's fields, the embedded *ResponseHeader's flattened into it
  ({"cluster_id":..,"revision":..,"ID":..,"TTL":..,"Error":""}); timetolive's and
  list's fields carry json tags ("id", "granted-ttl", "keys": null when none asked);
  revoke's is the message ({"header":{...}}).
- protobuf: only the embedded header has a Marshal method, so only the header is
  written; revoke's struct has none (exit 4, after the revoke).
- table: not supported (exit 4, after the call).
"""

from __future__ import annotations

import base64

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.client.ctl import gofmt
from petcd.client.ctl.flags import EXIT_BAD_FEATURE, CtlError
from petcd.client.ctl.printers import Printer


def _json(printer: Printer, header: pb.ResponseHeader, fields: dict) -> None:
    printer.write(gofmt.to_json({**gofmt.struct(header), **fields}) + "\n")


def _fields(printer: Printer, header: pb.ResponseHeader, lines: list[tuple[str, object]]) -> None:
    head = [("ClusterID", header.cluster_id), ("MemberID", header.member_id),
            ("Revision", header.revision), ("RaftTerm", header.raft_term)]
    printer.write("".join(f'"{name}" : {value}\n' for name, value in head + lines))


def _unsupported(printer: Printer) -> None:
    raise CtlError(EXIT_BAD_FEATURE, f"{printer.name} not supported as output format")


def grant(printer: Printer, resp: pb.LeaseGrantResponse) -> None:
    if printer.name == "simple":
        printer.write(f"lease {resp.ID:016x} granted with TTL({resp.TTL}s)\n")
    elif printer.name == "json":
        _json(printer, resp.header, {"ID": resp.ID, "TTL": resp.TTL, "Error": resp.error})
    elif printer.name == "fields":
        _fields(printer, resp.header, [("ID", resp.ID), ("TTL", resp.TTL)])
    elif printer.name == "protobuf":
        printer.write(resp.header.SerializeToString())
    else:
        _unsupported(printer)


def revoke(printer: Printer, lease_id: int, resp: pb.LeaseRevokeResponse) -> None:
    if printer.name == "simple":
        printer.write(f"lease {lease_id:016x} revoked\n")
    elif printer.name == "json":
        printer.write(gofmt.to_json(gofmt.struct(resp)) + "\n")
    elif printer.name == "fields":
        _fields(printer, resp.header, [])
    elif printer.name == "protobuf":
        # Go's %v of the struct: the header in protobuf's compact text.
        raise CtlError(EXIT_BAD_FEATURE, "marshal unsupported for type "
                       f"clientv3.LeaseRevokeResponse ({{{_compact_text(resp.header)}}})")
    else:
        _unsupported(printer)


def _compact_text(header: pb.ResponseHeader) -> str:
    return "".join(f"{field.name}:{value} " for field, value in header.ListFields())


def keep_alive(printer: Printer, resp: pb.LeaseKeepAliveResponse) -> None:
    if printer.name == "simple":
        printer.write(f"lease {resp.ID:016x} keepalived with TTL({resp.TTL})\n")
    elif printer.name == "json":
        _json(printer, resp.header, {"ID": resp.ID, "TTL": resp.TTL})
    elif printer.name == "fields":
        _fields(printer, resp.header, [("ID", resp.ID), ("TTL", resp.TTL)])
    elif printer.name == "protobuf":
        printer.write(resp.header.SerializeToString())
    else:
        _unsupported(printer)


def time_to_live(printer: Printer, resp: pb.LeaseTimeToLiveResponse, keys: bool) -> None:
    if printer.name == "simple":
        printer.write(_time_to_live_text(resp, keys))
    elif printer.name == "json":
        attached = [base64.b64encode(key).decode() for key in resp.keys]
        _json(printer, resp.header, {"id": resp.ID, "ttl": resp.TTL,
                                     "granted-ttl": resp.grantedTTL,
                                     "keys": attached or None})
    elif printer.name == "fields":
        _fields(printer, resp.header, [("ID", resp.ID), ("TTL", resp.TTL),
                                       ("GrantedTTL", resp.grantedTTL)]
                + [("Key", gofmt.quote(key)) for key in resp.keys])
    elif printer.name == "protobuf":
        printer.write(resp.header.SerializeToString())
    else:
        _unsupported(printer)


def _time_to_live_text(resp: pb.LeaseTimeToLiveResponse, keys: bool) -> bytes:
    if resp.grantedTTL == 0 and resp.TTL == -1:
        return f"lease {resp.ID:016x} already expired\n".encode()
    text = (f"lease {resp.ID:016x} granted with TTL({resp.grantedTTL}s), "
            f"remaining({resp.TTL}s)").encode()
    if keys:  # Go's %v of a []string: raw bytes, space-separated
        text += b", attached keys([" + b" ".join(resp.keys) + b"])"
    return text + b"\n"


def leases(printer: Printer, resp: pb.LeaseLeasesResponse) -> None:
    if printer.name == "simple":
        printer.write(f"found {len(resp.leases)} leases\n"
                      + "".join(f"{lease.ID:016x}\n" for lease in resp.leases))
    elif printer.name == "json":
        _json(printer, resp.header, {"leases": [{"id": lease.ID} for lease in resp.leases]})
    elif printer.name == "fields":
        _fields(printer, resp.header, [("ID", lease.ID) for lease in resp.leases])
    elif printer.name == "protobuf":
        printer.write(resp.header.SerializeToString())
    else:
        _unsupported(printer)
