"""scripts/launch: what it writes for each member is what petcd reads, and a
description that cannot become a cluster is refused in one line, before any file."""

from __future__ import annotations

import dataclasses

import pytest

from petcd.config.load import load

from tests.scripts.launch_tools import PETCD, THREE_MEMBERS, env_of, exec_start, launch


def test_each_member_gets_a_config_petcd_reads_and_the_same_settings_as_variables(tmp_path):
    out = tmp_path / "out"
    done = launch(THREE_MEMBERS, out)
    assert done.code == 0, done.stderr
    assert done.stderr == ""
    for name, host in (("infra1", "10.0.1.10"), ("infra2", "10.0.1.11"), ("infra3", "10.0.1.12")):
        from_file = load(["--config-file", str(out / name / "petcd.conf.yml")], {})
        assert from_file.name == name
        assert [str(u) for u in from_file.listen_client_urls] == [f"http://{host}:2379"]
        assert [str(u) for u in from_file.initial_advertise_peer_urls] == [f"http://{host}:2380"]
        assert [m.name for m in from_file.initial_cluster] == ["infra1", "infra2", "infra3"]
        assert from_file.initial_cluster_token == "petcd-test"
        assert str(from_file.data_dir) == f"/var/lib/petcd/{name}.petcd"
        from_env = load([], env_of(out / name / "petcd.env"))
        assert dataclasses.replace(from_file, config_file=None) == from_env
    assert str(load(["--config-file", str(out / "infra2" / "petcd.conf.yml")], {}).wal_dir) \
        == "/mnt/nvme/petcd-wal"


def test_the_unit_runs_petcd_on_its_config_as_the_user_and_restarts_it_on_failure(tmp_path):
    out = tmp_path / "out"
    assert launch(THREE_MEMBERS, out, "--config-dir", "/srv/petcd").code == 0
    unit = (out / "infra2" / "petcd.service").read_text().splitlines()
    assert exec_start(out / "infra2" / "petcd.service") == f"{PETCD} --config-file /srv/petcd/petcd.conf.yml"
    for line in ("User=petcd", "Restart=on-failure", "LimitNOFILE=40000",
                 "IOSchedulingClass=best-effort", "IOSchedulingPriority=0",
                 "RequiresMountsFor=/var/lib/petcd/infra2.petcd /mnt/nvme/petcd-wal"):
        assert line in unit


def test_the_printed_commands_install_each_members_files_and_start_it(tmp_path):
    done = launch(THREE_MEMBERS, tmp_path / "out")
    assert "sudo install -D -m 644 infra3/petcd.conf.yml /etc/petcd/petcd.conf.yml" in done.stdout
    assert done.stdout.count("sudo systemctl enable --now petcd\n") == 3
    assert "sudo systemctl enable --now petcd-backup.timer" in done.stdout
    assert "# 0 */6 * * * petcd /bin/sh /etc/petcd/petcd-backup.sh" in done.stdout


def test_a_member_added_later_gets_only_its_files_and_joins_the_existing_cluster(tmp_path):
    out = tmp_path / "out"
    done = launch(THREE_MEMBERS, out, "--member", "infra3", "--initial-cluster-state", "existing")
    assert done.code == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["backup", "infra3"]
    assert load(["--config-file", str(out / "infra3" / "petcd.conf.yml")], {}).initial_cluster_state \
        == "existing"


@pytest.mark.parametrize(("hours", "calendar", "cron"), [
    (6, "OnCalendar=*-*-* 00/6:00:00", "0 */6 * * *"),
    (24, "OnCalendar=*-*-* 00:00:00", "0 0 * * *"),  # systemd refuses 00/24
])
def test_the_backup_timer_and_the_cron_line_fire_at_the_same_hours(tmp_path, hours, calendar, cron):
    description = THREE_MEMBERS.replace("every-hours: 6", f"every-hours: {hours}")
    done = launch(description, tmp_path / "out")
    assert calendar in (tmp_path / "out" / "backup" / "petcd-backup.timer").read_text().splitlines()
    assert f"# {cron} petcd /bin/sh /etc/petcd/petcd-backup.sh" in done.stdout


MEMBERS = THREE_MEMBERS.split("members:\n")[1].split("backup:")[0]


@pytest.mark.parametrize(("description", "message"), [
    (THREE_MEMBERS.replace("name: infra3", "name: infra1"),
     "duplicate: name 'infra1' and name 'infra1'"),
    ("token: t\nmembers:\n  - {name: a, host: 10.0.0.1}\n  - {name: b, host: 10.0.0.1, client-port: 2380}\n",
     "duplicate: a's peer port 10.0.0.1:2380 and b's client port 10.0.0.1:2380"),
    ("token: t\nmembers:\n  - {name: a, host: 127.0.0.1, client-port: 1, peer-port: 2}\n"
     "  - {name: b, host: 127.0.0.1, client-port: 3, peer-port: 4}\ndata-dir: /d\n",
     "duplicate: a's data-dir /d and b's data-dir /d"),
    (THREE_MEMBERS.replace("host: 10.0.1.12", "host: infra3.example.com"),
     "members[2] (infra3): host: 'infra3.example.com' is not an IP address"),
    (THREE_MEMBERS.replace("host: 10.0.1.12", "host: 0.0.0.0"), "0.0.0.0 is not a member's address"),
    (THREE_MEMBERS.replace("host: 10.0.1.12}", "host: 10.0.1.12, peer-port: 70000}"),
     "peer-port: 70000 is not a port"),
    (THREE_MEMBERS.replace("wal-dir: /mnt/nvme/petcd-wal", "wal-dir: wal"), "'wal' is not an absolute path"),
    (THREE_MEMBERS.replace("token: petcd-test\n", ""), "token: give the cluster a token"),
    ("token: t\nmembers: []\n", "members: a list of at least one member"),
    (THREE_MEMBERS + "settings: {snapshot-count: 100, initial-cluster: x}\n",
     "settings: initial-cluster: set by the description itself"),
    (THREE_MEMBERS + "settings: {snapshot-cuont: 100}\n", "'snapshot-cuont' is not a petcd flag"),
    (THREE_MEMBERS.replace("every-hours: 6", "every-hours: 5"), "every-hours: one of 1, 2, 3, 4, 6, 8, 12, 24"),
    (THREE_MEMBERS.replace("keep: 7", "keep: 0"), "keep: how many snapshots to keep, at least 1"),
    (THREE_MEMBERS.replace("{name: infra1,", "{nmae: infra1,"), "unknown key 'nmae'"),
    ("members: [\n", "invalid YAML at line 2"),
])
def test_an_invalid_description_is_refused_in_one_line_and_nothing_is_written(tmp_path, description, message):
    out = tmp_path / "out"
    done = launch(description, out)
    assert done.code == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("scripts/launch: error: ")
    assert message in done.stderr
    assert not out.exists()


@pytest.mark.parametrize(("count", "warning"), [
    (4, "4 members: an even count tolerates no more failed members than one fewer would"),
    (9, "9 members: more than 7 makes every write wait"),
])
def test_an_even_or_over_seven_member_count_is_warned_about_but_written(tmp_path, count, warning):
    description = "token: t\nmembers:\n" + "".join(
        f"  - {{name: m{i}, host: 10.0.0.{i}}}\n" for i in range(1, count + 1))
    done = launch(description, tmp_path / "out")
    assert done.code == 0
    assert done.stderr.startswith(f"scripts/launch: warning: {warning}") and done.stderr.count("\n") == 1
    assert len(list((tmp_path / "out").iterdir())) == count
