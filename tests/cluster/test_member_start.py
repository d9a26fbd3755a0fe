"""What a member checks about the cluster as it starts: the size advice at bootstrap,
and a store whose member table does not list the member."""

from __future__ import annotations

import shutil

from petcd.config import EXIT_BAD_CONFIG

from .members import Member, running

WAIT_S = 30.0


def test_an_even_member_count_is_advised_against_at_bootstrap(tmp_path):
    with running(tmp_path, 2) as c:
        c.wait_leader().put("k", "v")  # advised against, not refused
        for m in c.members:
            advice = m.log_events("cluster size not recommended")
            assert [x["voting_members"] for x in advice] == [2]


def test_a_member_whose_id_is_not_in_the_cluster_refuses_to_start(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with running(tmp_path / "a", 1) as a, running(tmp_path / "b", 1) as b:
        a.wait_leader().put("k", "a")
        b.wait_leader().put("k", "b")
        member, other = a.members[0], b.members[0]
        assert member.stop() == 0 and other.stop() == 0
        # Its store is another cluster's (restored from the wrong machine's backup, say).
        shutil.rmtree(store(member))
        shutil.copytree(store(other), store(member))
        a.start(member)
        assert member.proc is not None and member.proc.wait(WAIT_S) == EXIT_BAD_CONFIG
        refusal = member.log_events(
            "refusing to start: this member is not in the cluster's member table")
        assert [x["members"] for x in refusal] == [[other.log_events()[0]["member_id"]]]


def store(m: Member):
    return m.data_dir / "member" / "snap" / "db"
