"""petcdctl lease prints what etcdctl lease prints (see test_ctl_compat): grant,
revoke, timetolive, list and keep-alive in every format etcdctl offers for them, with
its argument errors and exit codes. Leases the tests look into are granted with a
fixed ID so both runs see the same bytes; the IDs the server picks are masked.
"""

from __future__ import annotations

from petcd.client import Client
from tests.client.test_ctl_compat import Step, assert_same_output
from tests.client.test_ctl_watch import Running
from tests.client.test_ctl_watch import assert_same_output as assert_same_running
from tests.client.tools import Outcome, masked

FORMATS = ["simple", "json", "fields", "protobuf", "table"]
KEPT_ID, UNKNOWN_ID = 0xABC, 0x1234
KEPT_TTL_S = 100
# The ID the server picks for `lease grant`, in each format.
GRANTED_ID = ((rb"lease [0-9a-f]{1,16}", b"lease <id>"), (rb'"ID":\d+', b'"ID":<id>'),
              (rb'"ID" : \d+', b'"ID" : <id>'))
# A lease granted for 100 s a moment ago has 80-100 s left, whichever run it is and
# however loaded the machine, or 101 s if a leader was elected since: a new leader
# adds an election timeout's grace. (An expired or unknown lease shows -1 or 0.)
REMAINING = ((rb"remaining\((8\d|9\d|10[01])s\)", b"remaining(<ttl>)"),
             (rb'"ttl":(8\d|9\d|10[01]),', b'"ttl":<ttl>,'),
             (rb'"TTL" : (8\d|9\d|10[01])\n', b'"TTL" : <ttl>\n'))


def _kept_lease(endpoints: list[str]) -> None:
    """Lease abc (100 s) with key k attached."""
    with Client(endpoints) as client:
        client.lease_grant(KEPT_TTL_S, lease_id=KEPT_ID)
        client.put("k", "v", lease=KEPT_ID)


def _lease(lease_id: int):
    def grant(endpoints: list[str]) -> None:
        with Client(endpoints) as client:
            client.lease_grant(KEPT_TTL_S, lease_id=lease_id)
    return grant


def test_grant_and_its_errors(cluster):
    steps = [Step(["lease", "grant", "5", "-w", fmt], masks=GRANTED_ID) for fmt in FORMATS]
    steps += [Step(args, masks=GRANTED_ID) for args in (
        ["lease", "grant"], ["lease", "grant", "1", "2"], ["lease", "grant", "abc"],
        ["lease", "grant", "0x10"], ["lease", "grant", "1.5"],
        ["lease", "grant", "99999999999"],  # beyond etcd's largest TTL
        ["lease", "grant", "99999999999999999999"],  # beyond int64
        ["lease", "grant", "--", "-5"], ["lease", "grant", "+3"])]
    assert_same_output(cluster, steps)


def test_timetolive_keep_alive_once_and_list(cluster):
    steps = [Step(["lease", "timetolive", "abc"], before=_kept_lease, masks=REMAINING)]
    for fmt in FORMATS:
        steps += [Step(["lease", "timetolive", "abc", "-w", fmt], masks=REMAINING),
                  Step(["lease", "timetolive", "abc", "--keys", "-w", fmt], masks=REMAINING),
                  Step(["lease", "keep-alive", "--once", "abc", "-w", fmt]),
                  Step(["lease", "list", "-w", fmt])]
    steps += [Step(args) for args in (
        ["lease", "timetolive", "1234"], ["lease", "timetolive", "1234", "-w", "json"],
        ["lease", "timetolive", "1234", "--keys", "-w", "fields"],
        ["lease", "timetolive", "--", "-1"], ["lease", "timetolive"],
        ["lease", "timetolive", "xyz"], ["lease", "timetolive", "12345678901234567"],
        ["lease", "keep-alive", "--once", "1234"], ["lease", "keep-alive"],
        ["lease", "keep-alive", "q"], ["lease", "keep-alive", "1", "2"],
        ["lease", "keep-alive", "1234"],  # an unknown lease: over at once
        ["lease", "list", "ignored-argument"])]
    assert_same_output(cluster, steps)


def test_revoke_in_every_format(cluster):
    steps = [Step(["lease", "revoke", "abc"], before=_kept_lease), Step(["get", "k"])]
    for number, fmt in enumerate(FORMATS):
        steps.append(Step(["lease", "revoke", f"{0xB0 + number:x}", "-w", fmt],
                          before=_lease(0xB0 + number)))
    steps += [Step(args) for args in (
        ["lease", "revoke", "abc"], ["lease", "revoke", "1234", "-w", "json"],
        ["lease", "revoke", "0"], ["lease", "revoke"], ["lease", "revoke", "zz"],
        ["lease", "revoke", "1", "2"], ["lease", "revoke", "--", "-1"],
        ["lease", "list"])]
    assert_same_output(cluster, steps)


def _once_per_line(outcome: Outcome) -> Outcome:
    """How many renewals print before the revoke depends on timing: keep one of each
    run of equal responses (one line, or six in the fields format)."""
    return masked(outcome, (rb"(?m)^((?:.*\n){1,6}?)\1+", rb"\1"))


def test_keep_alive_until_revoked(cluster):
    """Renewals print (TTL/3 apart) until the lease is revoked; then the tool ends."""
    def scenario(tool: str, endpoints: list[str]) -> list[Outcome]:
        outcomes = []
        for number, fmt in enumerate(("simple", "json", "fields")):
            lease_id = 0xC0 + number
            with Client(endpoints) as client:
                client.lease_grant(3, lease_id=lease_id)
                running = Running(tool, endpoints, ["lease", "keep-alive", f"{lease_id:x}",
                                                    "-w", fmt])
                running.wait_for(b"TTL")
                client.lease_revoke(lease_id)
            outcomes.append(_once_per_line(running.finish(terminate=False)))
        return outcomes
    assert_same_running(cluster, scenario)

