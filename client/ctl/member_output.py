"""How etcdctl 3.4 prints member add, remove, update and promote (printer*.go and
member_command.go; the binary was the judge):

- simple: "Member <id> added to cluster <cluster id>" with both IDs as Go's %16x
  (space-padded hex), learner or not; add then prints the environment a new member
  starts with, as ETCD_* lines and, for petcd, the same as PETCD_* lines.
- json, protobuf: the response message.
- fields, table: not supported (exit 4, after the call).

etcdctl 3.4 has no printer but simple's for promote: with any other -w it calls
through a nil printer after the promotion and crashes (a Go panic, exit 2, seen with
3.4.23 on a learner that had caught up). petcd prints json and protobuf as etcdctl 3.5
does, and refuses fields and table as for the other member commands.
"""

from __future__ import annotations

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.client.ctl import gofmt
from petcd.client.ctl.printers import Printer

# The prefixes of the environment variables a new member reads its flags from.
ENV_PREFIXES = ("ETCD_", "PETCD_")

Changed = pb.MemberRemoveResponse | pb.MemberUpdateResponse | pb.MemberPromoteResponse


def add(printer: Printer, resp: pb.MemberAddResponse, name: str, peer_urls: str) -> None:
    """`peer_urls` is --peer-urls as given (etcdctl echoes it unparsed)."""
    if printer.name == "simple":
        printer.write(f"Member {resp.member.ID:16x} added to cluster "
                      f"{resp.header.cluster_id:16x}\n\n"
                      + "".join(_environment(prefix, resp, name, peer_urls)
                                for prefix in ENV_PREFIXES))
    else:
        printer.message(resp)


def changed(printer: Printer, verb: str, member_id: int, resp: Changed) -> None:
    """`verb`: "removed from", "updated in" or "promoted in"."""
    if printer.name == "simple":
        printer.write(f"Member {member_id:16x} {verb} cluster "
                      f"{resp.header.cluster_id:16x}\n")
    else:
        printer.message(resp)


def initial_cluster(resp: pb.MemberAddResponse, name: str) -> str:
    """name=url for every peer URL of every member, the new one under `name`
    (a member that has not started yet has no name: "=url")."""
    return ",".join(f"{name if member.ID == resp.member.ID else member.name}={url}"
                    for member in resp.members for url in member.peerURLs)


def _environment(prefix: str, resp: pb.MemberAddResponse, name: str, peer_urls: str) -> str:
    quoted = {"NAME": name, "INITIAL_CLUSTER": initial_cluster(resp, name),
              "INITIAL_ADVERTISE_PEER_URLS": peer_urls, "INITIAL_CLUSTER_STATE": "existing"}
    return "".join(f"{prefix}{key}={gofmt.quote(value.encode())}\n"
                   for key, value in quoted.items())
