"""What scripts/launch prints: the commands an operator types on each server to
install the files it wrote and start the member (and the backup timer)."""

from __future__ import annotations

import shlex

from .description import BackupSpec, Description, MemberSpec
from .render import (BACKUP_SCRIPT, BACKUP_SERVICE, BACKUP_TIMER, CONFIG_FILE, ENV_FILE,
                     UNIT_FILE, Install, cron_line)


def member_steps(member: MemberSpec, install: Install, out_dir: str) -> str:
    """Run from the directory that holds the member's folder, copied to its server."""
    folder = member.name
    dirs = " ".join(shlex.quote(d) for d in (member.data_dir, member.wal_dir) if d)
    return (f"# {member.name}: copy {out_dir}/{folder}/ to {member.host}, then there, beside it:\n"
            f"{_add_user(member.user)}\n"
            f"sudo install -d -o {member.user} -g {member.user} -m 700 {dirs}\n"
            f"sudo install -D -m 644 {folder}/{CONFIG_FILE} {install.path(CONFIG_FILE)}\n"
            f"sudo install -D -m 644 {folder}/{ENV_FILE} {install.path(ENV_FILE)}\n"
            f"sudo install -m 644 {folder}/{UNIT_FILE} /etc/systemd/system/{UNIT_FILE}\n"
            "sudo systemctl daemon-reload\n"
            "sudo systemctl enable --now petcd\n")


def check_steps(description: Description, install: Install) -> str:
    endpoints = ",".join(m.client_url for m in description.members)
    return ("# once every member runs, from anywhere that reaches them:\n"
            f"{install.petcdctl} --endpoints={endpoints} endpoint health\n"
            f"{install.petcdctl} --endpoints={endpoints} member list -w table\n")


def backup_steps(backup: BackupSpec, install: Install, out_dir: str) -> str:
    return (f"# backups: copy {out_dir}/backup/ to one machine that reaches the cluster, then there:\n"
            f"{_add_user(backup.user)}\n"
            f"sudo install -d -o {backup.user} -g {backup.user} -m 700 {shlex.quote(backup.dir)}\n"
            f"sudo install -D -m 755 backup/{BACKUP_SCRIPT} {install.path(BACKUP_SCRIPT)}\n"
            f"sudo install -m 644 backup/{BACKUP_SERVICE} backup/{BACKUP_TIMER} /etc/systemd/system/\n"
            "sudo systemctl daemon-reload\n"
            f"sudo systemctl enable --now {BACKUP_TIMER}\n"
            "# or, with cron instead of the timer, this line in /etc/cron.d/petcd-backup:\n"
            f"# {cron_line(backup, install)}\n")


def _add_user(user: str) -> str:
    return (f"id -u {user} >/dev/null 2>&1 || "
            f"sudo useradd --system --no-create-home --shell /usr/sbin/nologin {user}")
