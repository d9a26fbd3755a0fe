"""The text of every file scripts/launch writes, from a checked Description.

Per member: petcd's YAML config (etcd's config-file keys, which `petcd --config-file`
reads), the same settings as a PETCD_* environment file, and a systemd unit that runs
`petcd --config-file`. For the cluster: a backup script (etcd's operations guide's
cron job: `snapshot save`, named by date, the newest K kept), and a systemd service
and timer that run it every N hours.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

from petcd.config.flags import env_var_for

from .description import BackupSpec, Description, MemberSpec

CONFIG_FILE = "petcd.conf.yml"
ENV_FILE = "petcd.env"
UNIT_FILE = "petcd.service"
BACKUP_SCRIPT = "petcd-backup.sh"
BACKUP_SERVICE = "petcd-backup.service"
BACKUP_TIMER = "petcd-backup.timer"
SNAPSHOT_PREFIX = "petcd-snapshot-"  # then the UTC date, so names sort by age
OPEN_FILES_LIMIT = 40000  # etcd's docs' LimitNOFILE: a descriptor per client and peer connection


@dataclass(frozen=True, slots=True)
class Install:
    """Where the programs and the files are on each server (absolute paths)."""
    petcd: str       # the petcd program; petcdctl is installed beside it
    config_dir: str  # where CONFIG_FILE, ENV_FILE and BACKUP_SCRIPT go

    def __post_init__(self) -> None:
        for path in (self.petcd, self.config_dir):
            assert PurePosixPath(path).is_absolute() and not any(c.isspace() for c in path), path

    @property
    def petcdctl(self) -> str:
        return str(PurePosixPath(self.petcd).with_name("petcdctl"))

    def path(self, file_name: str) -> str:
        return str(PurePosixPath(self.config_dir) / file_name)


def member_flags(description: Description, member: MemberSpec, state: str) -> tuple[tuple[str, str], ...]:
    """The member's petcd flags (etcd's names), in the order a reader looks for them."""
    assert state in ("new", "existing"), state
    own = (("name", member.name), ("data-dir", member.data_dir),
           *((("wal-dir", member.wal_dir),) if member.wal_dir else ()),
           ("listen-peer-urls", member.peer_url), ("initial-advertise-peer-urls", member.peer_url),
           ("listen-client-urls", member.client_url), ("advertise-client-urls", member.client_url),
           ("initial-cluster", description.initial_cluster),
           ("initial-cluster-token", description.token), ("initial-cluster-state", state))
    return own + description.settings


def member_files(description: Description, member: MemberSpec, install: Install,
                 state: str) -> dict[str, str]:
    flags = member_flags(description, member, state)
    return {CONFIG_FILE: config_yaml(description, member, flags, install),
            ENV_FILE: env_file(description, member, flags),
            UNIT_FILE: member_unit(description, member, install)}


def config_yaml(description: Description, member: MemberSpec, flags: tuple[tuple[str, str], ...],
                install: Install) -> str:
    import yaml

    header = (f"# petcd member {member.name} of cluster {description.token}, written by scripts/launch.\n"
              f"# {UNIT_FILE} runs `{install.petcd} --config-file {install.path(CONFIG_FILE)}`.\n"
              "# initial-cluster* are read only on the first start, while the data dir is empty.\n")
    return header + yaml.safe_dump(dict(flags), sort_keys=False, default_flow_style=False)


def env_file(description: Description, member: MemberSpec, flags: tuple[tuple[str, str], ...]) -> str:
    """KEY=value lines that both systemd's EnvironmentFile= and a shell's `. file` read."""
    header = (f"# petcd member {member.name} of cluster {description.token}, written by scripts/launch:\n"
              f"# the settings of {CONFIG_FILE} as PETCD_* variables, for `petcd` with no flags\n"
              "# under another supervisor (EnvironmentFile=, or `set -a; . ./petcd.env; set +a`).\n")
    return header + "".join(f"{env_var_for(flag)}={shlex.quote(value)}\n" for flag, value in flags)


def member_unit(description: Description, member: MemberSpec, install: Install) -> str:
    mounts = " ".join(_unit_text(p) for p in (member.data_dir, member.wal_dir) if p)
    return (f"# petcd member {member.name} of cluster {description.token}, written by scripts/launch.\n"
            "[Unit]\n"
            f"Description=petcd member {member.name} of cluster {description.token}\n"
            "After=network-online.target\n"
            "Wants=network-online.target\n"
            "# Start only once the disks of the data dir (and of the WAL) are mounted.\n"
            f"RequiresMountsFor={mounts}\n"
            "\n"
            "[Service]\n"
            "# petcd does not speak sd_notify: it counts as started once it has been executed.\n"
            "Type=exec\n"
            f"User={member.user}\n"
            f"ExecStart={_unit_text(install.petcd)} --config-file {_unit_text(install.path(CONFIG_FILE))}\n"
            "# A member removed from the cluster exits 0, and stays down.\n"
            "Restart=on-failure\n"
            "RestartSec=5\n"
            f"LimitNOFILE={OPEN_FILES_LIMIT}\n"
            "# etcd's tuning guide (`ionice -c2 -n0`): the WAL's fsyncs go before other\n"
            "# best-effort I/O on the same disk.\n"
            "IOSchedulingClass=best-effort\n"
            "IOSchedulingPriority=0\n"
            "\n"
            "[Install]\n"
            "WantedBy=multi-user.target\n")


def backup_files(description: Description, backup: BackupSpec, install: Install) -> dict[str, str]:
    return {BACKUP_SCRIPT: backup_script(description, backup, install),
            BACKUP_SERVICE: backup_service(description, backup, install),
            BACKUP_TIMER: backup_timer(description, backup)}


def backup_command(install: Install) -> str:
    """What the backup service runs, and the cron line too."""
    return f"/bin/sh {install.path(BACKUP_SCRIPT)}"


def backup_script(description: Description, backup: BackupSpec, install: Install) -> str:
    endpoints = " ".join(shlex.quote(m.client_url) for m in description.members)
    return (
        "#!/bin/sh\n"
        f"# A snapshot of petcd cluster {description.token}, written by scripts/launch: saved\n"
        "# from the first member that answers (petcdctl snapshots one member, as etcdctl),\n"
        f"# named by UTC date; only the newest {backup.keep} stay. Restore with\n"
        "# `petcdutl snapshot restore FILE --data-dir ...` on every member.\n"
        "set -eu\n"
        f"dir={shlex.quote(backup.dir)}\n"
        f"keep={backup.keep}\n"
        f'file="$dir/{SNAPSHOT_PREFIX}$(date -u +%Y%m%dT%H%M%SZ).db"\n'
        'mkdir -p "$dir"\n'
        "saved=\n"
        f"for endpoint in {endpoints}; do\n"
        f'    if {shlex.quote(install.petcdctl)} --endpoints="$endpoint" snapshot save "$file"; then\n'
        "        saved=yes\n"
        "        break\n"
        "    fi\n"
        "done\n"
        '[ -n "$saved" ] || { echo "petcd-backup: no member could be snapshotted" >&2; exit 1; }\n'
        f'ls -1 "$dir"/{SNAPSHOT_PREFIX}*.db | sort -r | tail -n +$((keep + 1)) | while read -r old; do\n'
        '    rm -f -- "$old"\n'
        "done\n")


def backup_service(description: Description, backup: BackupSpec, install: Install) -> str:
    return (f"# Started by {BACKUP_TIMER}; written by scripts/launch.\n"
            "[Unit]\n"
            f"Description=petcd snapshot of cluster {description.token} into {_unit_text(backup.dir)}\n"
            "After=network-online.target\n"
            "Wants=network-online.target\n"
            "\n"
            "[Service]\n"
            "Type=oneshot\n"
            f"User={backup.user}\n"
            f"ExecStart={_unit_text(backup_command(install))}\n")


def backup_timer(description: Description, backup: BackupSpec) -> str:
    return (f"# Runs {BACKUP_SERVICE}; written by scripts/launch.\n"
            "[Unit]\n"
            f"Description=petcd snapshot of cluster {description.token} every {backup.every_hours} hours\n"
            "\n"
            "[Timer]\n"
            f"OnCalendar={on_calendar(backup.every_hours)}\n"
            "# A run missed while the machine was off happens at the next boot.\n"
            "Persistent=true\n"
            "\n"
            "[Install]\n"
            "WantedBy=timers.target\n")


def on_calendar(every_hours: int) -> str:
    # systemd refuses a repetition of 24 ("00/24"); once a day is midnight.
    return "*-*-* 00:00:00" if every_hours == 24 else f"*-*-* 00/{every_hours}:00:00"


def cron_line(backup: BackupSpec, install: Install) -> str:
    """The same schedule for /etc/cron.d (which names the user), as etcd's guide's cron job."""
    hours = "0" if backup.every_hours == 24 else f"*/{backup.every_hours}"
    return f"0 {hours} * * * {backup.user} {backup_command(install)}"


def _unit_text(text: str) -> str:
    return text.replace("%", "%%")  # '%' starts a specifier in unit files
