"""petcdctl member add, remove, update and promote print what etcdctl 3.4 prints.

As in test_ctl_compat, a scenario runs with etcdctl on a fresh one-member cluster,
then with petcdctl on the same cluster wiped and restarted, and every step's exit
code, stdout and stderr must match. The cluster and answering member keep their IDs
across the restart, but an added member's ID is drawn from the clock (etcd hashes its
peer URLs with the time in seconds), so each added ID is masked as <added1>,
<added2>, ... in hex and decimal, and a step names the latest one as "{added}".
etcd lists members in the order of their IDs, so where the members are printed their
order is not compared: lines are sorted, and json's and protobuf's member lists.
petcdctl's PETCD_* lines after member add must repeat its ETCD_* lines; they are
checked, then dropped before the comparison.

The learner added here never starts (its peer URL is a dummy), so a promotion is
refused ("not in sync"), and etcd 3.4 allows one learner at a time: each format's
add is followed by the learner's removal. A voting member added to a one-member
cluster leaves it without a quorum, so that add comes last.
"""

from __future__ import annotations

import json
import re

import pytest
from dataclasses import dataclass

from google.protobuf import text_format
from google.protobuf.message import Message

from petcd.api.etcdserverpb import rpc_pb2 as pb
from petcd.client import Client
from petcd.client.ctl import member_output
from petcd.client.peer_urls import check_peer_urls
from tests.client.tools import TABLE_PADDING, Outcome, masked, run

FORMATS = ["simple", "json", "fields", "table", "protobuf"]
ADDED = "{added}"
_PEER = "http://127.0.0.1:{}"  # nothing listens there: the member stays unstarted
_ENV_LINE = re.compile(rb"^(P?)ETCD_(\w+=.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Step:
    args: list[str]  # ADDED stands for the hex ID of the latest member added
    response: type[Message] | None = None  # -w protobuf: compared decoded


@dataclass
class _Run:
    """One tool's pass over a scenario, tracking the IDs of the members it added."""

    tool: str
    endpoints: list[str]
    added: list[int]

    def step(self, step: Step) -> Outcome:
        latest = f"{self.added[-1]:x}" if self.added else "0"
        args = [arg.replace(ADDED, latest) for arg in step.args]
        outcome = run(self.tool, self.endpoints, args)
        self._learn_added()
        if step.response is not None and outcome.code == 0:
            decoded = step.response.FromString(outcome.out)
            _sort_members(decoded)
            outcome = Outcome(outcome.code, text_format.MessageToBytes(decoded), outcome.err)
        elif "json" in args and outcome.code == 0:
            outcome = Outcome(outcome.code, _json_members_sorted(outcome.out), outcome.err)
        outcome = self._masked(outcome)  # before sorting lines: the IDs lead them
        if step.response is None and "json" not in args:
            outcome = Outcome(outcome.code, _lines_sorted(outcome.out), outcome.err)
        # A table's columns are as wide as its widest ID, which differs between runs.
        return masked(outcome, TABLE_PADDING) if "table" in args else outcome

    def _learn_added(self) -> None:
        with Client(self.endpoints) as client:
            unstarted = [m.ID for m in client.member_list().members if not m.name]
        self.added += [member_id for member_id in unstarted if member_id not in self.added]

    def _masked(self, outcome: Outcome) -> Outcome:
        out, err = outcome.out, outcome.err
        for number, member_id in enumerate(self.added, 1):
            label = f"<added{number}>".encode()
            # Go's %16x pads with spaces: the padding goes with the ID it pads.
            for text in (f"{member_id:16x}", f"{member_id:x}", str(member_id)):
                pattern = rb"(?<![0-9a-z])" + re.escape(text.encode()) + rb"(?![0-9a-z])"
                out, err = re.sub(pattern, label, out), re.sub(pattern, label, err)
        return Outcome(outcome.code, out, err)


def _sort_members(message: Message) -> None:
    members = sorted(message.members, key=lambda m: list(m.peerURLs))
    del message.members[:]
    message.members.extend(members)


def _json_members_sorted(out: bytes) -> bytes:
    value = json.loads(out)
    value["members"] = sorted(value.get("members", []), key=lambda m: m["peerURLs"])
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def _lines_sorted(out: bytes) -> bytes:
    """The lines in order, and the name=url items of an INITIAL_CLUSTER line."""
    out = re.sub(rb'(INITIAL_CLUSTER=")([^"]*)',
                 lambda m: m.group(1) + b",".join(sorted(m.group(2).split(b","))), out)
    return b"".join(sorted(out.splitlines(True)))


def _without_petcd_lines(outcome: Outcome) -> Outcome:
    """The outcome without its PETCD_* lines, once they are seen to repeat ETCD_*'s."""
    lines = _ENV_LINE.findall(outcome.out)
    etcd = [rest for prefix, rest in lines if not prefix]
    petcd = [rest for prefix, rest in lines if prefix]
    assert petcd == etcd, f"PETCD_* lines do not repeat ETCD_* lines:\n{outcome.out!r}"
    out = re.sub(rb"^PETCD_.*\n", b"", outcome.out, flags=re.MULTILINE)
    return Outcome(outcome.code, out, outcome.err)


def _outcomes(cluster, tool: str, steps: list[Step]) -> list[Outcome]:
    cluster.reset()
    tool_run = _Run(tool, cluster.endpoints, [])
    outcomes = [tool_run.step(step) for step in steps]
    if tool == "petcdctl":
        outcomes = [_without_petcd_lines(outcome) for outcome in outcomes]
    return outcomes


def assert_same_output(cluster, steps: list[Step]) -> None:
    expected = _outcomes(cluster, "etcdctl", steps)
    actual = _outcomes(cluster, "petcdctl", steps)
    for step, want, got in zip(steps, expected, actual):
        assert got == want, f"petcdctl {' '.join(step.args)} differs from etcdctl"


def _steps(*lines: list[str]) -> list[Step]:
    return [Step(args) for args in lines]


ARGUMENT_ERRORS = _steps(
    ["member", "add"], ["member", "add", "a", "b"],
    ["member", "add", "a", "http://x:1", "HTTPS://y:2"],  # etcdctl's --peer-urls hint
    ["member", "add", "a"], ["member", "add", "a", "--peer-urls="],
    ["member", "remove"], ["member", "remove", "1", "2"], ["member", "remove", "zz"],
    ["member", "remove", "0x12"], ["member", "remove", "+12"],
    ["member", "remove", "1ffffffffffffffff"],
    ["member", "update"], ["member", "update", "zz"], ["member", "update", "12"],
    ["member", "update", "zz", "--peer-urls", _PEER.format(2395)],
    ["member", "promote"], ["member", "promote", "zz"], ["member", "promote", "1", "2"],
)

# clientv3's check before it asks the server (pkg/types.NewURLs).
# A learner, so that URLs it accepts leave the quorum as it was.
URL_ERRORS = [Step(["member", "add", "a", "--learner", f"--peer-urls={urls}"]) for urls in (
    "foo", "http://x", "http://x:1/p", "http://x:1/", "http://x:1y", ":x", "ftp://x:1",
    "unix://sock", "http://x:1,,http://y:2", " http://x:1", "http://x:1?q=1",
)] + _steps(["member", "update", "12", "--peer-urls=http://x"])


def _format_round(index: int, fmt: str) -> list[Step]:
    """Add a learner, list, update, fail to promote and remove it, all in `fmt`."""
    write = ["-w", fmt]
    protobuf = fmt == "protobuf"
    return [
        Step(["member", "add", f"learner{index}", "--learner",
              f"--peer-urls={_PEER.format(2390 + index)}", *write],
             pb.MemberAddResponse if protobuf else None),
        Step(["member", "list", *write], pb.MemberListResponse if protobuf else None),
        Step(["member", "update", ADDED, f"--peer-urls={_PEER.format(2400 + index)}", *write],
             pb.MemberUpdateResponse if protobuf else None),
        Step(["member", "promote", ADDED, *write]),
        Step(["member", "remove", ADDED, *write],
             pb.MemberRemoveResponse if protobuf else None),
    ]


def test_member_argument_and_url_errors(cluster):
    assert_same_output(cluster, ARGUMENT_ERRORS + URL_ERRORS)


def test_member_add_update_promote_remove(cluster):
    steps: list[Step] = []
    for index, fmt in enumerate(FORMATS):
        steps += _format_round(index, fmt)
    steps += _steps(
        ["member", "add", "learner9", "--learner", f"--peer-urls={_PEER.format(2409)}"],
        # A second learner is refused by etcd 3.4 (one at most).
        ["member", "add", "learner10", "--learner", f"--peer-urls={_PEER.format(2410)}"],
        # Another member's URL, among others (so its ID differs from the learner's).
        ["member", "add", "dup", f"--peer-urls={_PEER.format(2411)},{_PEER.format(2409)}"],
        ["member", "update", ADDED, f"--peer-urls={_PEER.format(2409)}"],  # its own: fine
        ["member", "remove", ADDED], ["member", "remove", ADDED],  # already removed
        ["member", "update", ADDED, f"--peer-urls={_PEER.format(2412)}"],
        ["member", "promote", ADDED],
        ["member", "remove", "1234"], ["member", "update", "1234", "--peer-urls",
                                       _PEER.format(2413)],
        ["member", "promote", "1234"],
        # Last: a voting member that never starts leaves one member of two running.
        ["member", "add", "voter", f"--peer-urls={_PEER.format(2414)},{_PEER.format(2415)}"],
    )
    assert_same_output(cluster, steps)


@pytest.mark.parametrize("urls, message", [
    ([], "no valid URLs given"),
    (["http://a:1", "b:2"], "URL scheme must be http, https, unix, or unixs: b:2"),
    (["unixs://a"], 'URL address does not have the form "host:port": unixs://a'),
    (["http://[::1]"], 'URL address does not have the form "host:port": http://[::1]'),
    (["https://a:1/x"], "URL must not contain a path: https://a:1/x"),
    (["http://a:x1"], 'parse "http://a:x1": invalid port ":x1" after host'),
])
def test_peer_urls_refused_as_etcds_client_does(urls, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_peer_urls(urls)


@pytest.mark.parametrize("urls", [["http://a:1"], ["HTTP://u@a:1?q#f"], ["http://[::1]:2380"],
                                  ["unix://a:1", " https://a:1 "], ["http://:1"]])
def test_peer_urls_accepted(urls):
    check_peer_urls(urls)


def test_initial_cluster_names_the_new_member_and_every_peer_url():
    new = pb.Member(ID=2, peerURLs=["http://c:1"], isLearner=True)
    resp = pb.MemberAddResponse(member=new, members=[
        pb.Member(ID=1, name="m1", peerURLs=["http://a:1", "http://b:1"]),
        pb.Member(ID=3, peerURLs=["http://d:1"]), new])  # 3 has not started: no name
    assert member_output.initial_cluster(resp, "m2") == (
        "m1=http://a:1,m1=http://b:1,=http://d:1,m2=http://c:1")
