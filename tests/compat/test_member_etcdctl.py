"""The real etcdctl's member commands against a 3-member petcd, as an operator's
runbook uses them: add a learner, start it from the lines `member add` prints, list,
promote it once it has caught up, update its peer URLs, remove it (it stops)."""

from __future__ import annotations

import re
import time

from tests.cluster.members import Member, running, wait_until
from tests.ports import free_ports

from .etcdctl import ETCDCTL, Ctl, require

WAIT_S = 30.0


def _exports(out: str) -> dict[str, str]:
    """The NAME="value" lines etcdctl prints after member add."""
    return dict(re.findall(r'^(ETCD_[A-Z_]+)="(.*)"$', out, re.MULTILINE))


def test_etcdctl_member_add_list_promote_update_remove(tmp_path):
    require()
    ctl = Ctl(ETCDCTL)
    with running(tmp_path, 3) as c:
        c.wait_leader()
        client_port, peer_port = free_ports(2)
        new = Member("m4", client_port, peer_port, tmp_path / "m4.petcd", tmp_path / "m4.log")
        added = ctl(c, "member", "add", "m4", "--learner", f"--peer-urls={new.peer_url}")
        assert added.code == 0, added.err
        member_hex, cluster_hex = re.match(r"Member +([0-9a-f]+) added to cluster +([0-9a-f]+)",
                                           added.out).groups()
        env = _exports(added.out)
        assert env["ETCD_NAME"] == "m4" and env["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
        assert env["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == new.peer_url
        assert len(env["ETCD_INITIAL_CLUSTER"].split(",")) == 4
        new.start(env["ETCD_INITIAL_CLUSTER"], c.token, state="existing")
        c.members.append(new)

        listed = ctl(c, "member", "list", "-w", "json")
        assert listed.code == 0
        members = {f"{m['ID']:x}": m for m in listed.json()["members"]}
        assert members[member_hex].get("isLearner") is True
        assert f"{listed.json()['header']['cluster_id']:x}" == cluster_hex
        assert wait_until(lambda: new.get("nothing", serializable=True) is None, WAIT_S)

        deadline = time.monotonic() + WAIT_S
        while (promoted := ctl(c, "member", "promote", member_hex)).code != 0:
            assert "in sync with leader" in promoted.error_line, promoted.err
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert re.fullmatch(rf"Member +{member_hex} promoted in cluster +{cluster_hex}",
                            promoted.out.strip()), promoted.out
        line = rf"^{member_hex}, started, m4, {new.peer_url}, {new.client_url}, false$"
        assert wait_until(lambda: re.search(line, ctl(c, "member", "list").out, re.MULTILINE),
                          WAIT_S), "m4 published its name and client URL"

        updated = ctl(c, "member", "update", member_hex, f"--peer-urls={new.peer_url}")
        assert re.fullmatch(rf"Member +{member_hex} updated in cluster +{cluster_hex}",
                            updated.out.strip()), updated.out

        removed = ctl(c, "member", "remove", member_hex)
        assert re.fullmatch(rf"Member +{member_hex} removed from cluster +{cluster_hex}",
                            removed.out.strip()), removed.out
        assert wait_until(lambda: not new.alive, WAIT_S)
        again = ctl(c, "member", "remove", member_hex)
        assert again.code == 1 and again.error_line == "Error: etcdserver: member not found"
        assert len(ctl(c, "member", "list", "-w", "json").json()["members"]) == 3
