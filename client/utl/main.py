"""petcdutl: etcdutl's commands that work on files, without a running member.

    petcdutl snapshot status FILE [-w simple|table|json|fields]
    petcdutl snapshot restore FILE [--data-dir --wal-dir --name --initial-cluster
        --initial-cluster-token --initial-advertise-peer-urls --skip-hash-check
        --bump-revision N --mark-compacted --initial-memory-map-size BYTES]
    petcdutl defrag --data-dir DIR
    petcdutl backup --data-dir DIR --backup-dir DIR [--wal-dir DIR] [--backup-wal-dir DIR]
        [--with-v3]
    petcdutl hashkv FILE|STORE-DIR [--rev N] [-w simple|table|json|fields]
    petcdutl check disk [--data-dir DIR] [--wal-dir DIR] [--count N] [--duration D]
        [--size-bytes N] [-w simple|json]
    petcdutl version

Not here (etcdutl 3.6 has them): `migrate` (petcd's store has its own schema
versions, upgraded by a member's open) and `completion`. `backup` is etcdutl 3.5's
(3.6 removed it; utl/backup.py).

`check disk` is petcd's own: etcd's guides run fio for it (utl/disk_check.py).

Messages and exit codes are etcdctl 3.4's (`etcdctl snapshot status`, which etcd
3.5 moved into etcdutl): `Error: <message>` on stderr, 128 for bad arguments, 1 for
a file that cannot be read.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from petcd.client.ctl import flags
from petcd.client.ctl.flags import EXIT_BAD_ARGS, EXIT_ERROR, CtlError, Flag
from petcd import __version__
from petcd.client.utl import backup, defrag, disk_check, hashkv, restore, status_output
from petcd.config.flags import API_VERSION
from petcd.storage.mvcc import snapfile

GLOBAL_FLAGS = [Flag("write-out", "string", "simple", short="w")]

USAGE = ("NAME:\n\tpetcdutl - etcdutl's offline commands for petcd's files\n\n"
         "USAGE:\n\tpetcdutl [flags] <command> [args]\n\nCOMMANDS:\n"
         "\tbackup\n\tcheck disk\n\tdefrag\n\thashkv\n\tsnapshot status\n\tsnapshot restore\n\tversion\n\n"
         "GLOBAL OPTIONS:\n"
         + "".join(f"      {f.label()}\n" for f in GLOBAL_FLAGS))


def snapshot_status(parsed: flags.Parsed) -> int:
    if len(parsed.args) != 1:
        raise CtlError(EXIT_BAD_ARGS, "snapshot status requires exactly one argument")
    path = parsed.args[0]
    if not os.path.exists(path):
        raise CtlError(EXIT_ERROR, f"stat {path}: no such file or directory")
    render = status_output.formatter(str(parsed.values["write-out"]))  # etcdutl's order
    try:
        status = snapfile.status(path)
    except snapfile.SnapshotFileError as exc:
        raise CtlError(EXIT_ERROR, str(exc)) from None
    sys.stdout.write(render(status))
    return 0


def version(parsed: flags.Parsed) -> int:
    """etcdutl's two lines, with petcd's version and the etcd API it speaks."""
    sys.stdout.write(f"petcdutl version: {__version__}\nAPI version: {API_VERSION}\n")
    return 0


@dataclass(frozen=True, slots=True)
class Command:
    own_flags: list[Flag]  # after the global ones
    run: Callable[[flags.Parsed], int]
    help: str  # what `<command> --help` prints


GROUPS = ("snapshot", "check")  # words that only lead to a command

COMMANDS: dict[tuple[str, ...], Command] = {
    ("snapshot", "status"): Command([], snapshot_status, "petcdutl snapshot status <filename>\n"),
    ("snapshot", "restore"): Command(restore.FLAGS, restore.snapshot_restore, restore.HELP),
    ("check", "disk"): Command(disk_check.FLAGS, disk_check.check_disk, disk_check.HELP),
    ("defrag",): Command(defrag.FLAGS, defrag.defrag, defrag.HELP),
    ("backup",): Command(backup.FLAGS, backup.backup, backup.HELP),
    ("hashkv",): Command(hashkv.FLAGS, hashkv.hashkv, hashkv.HELP),
    ("version",): Command([], version, "petcdutl version\n"),
}


def _command_words(words: list[str]) -> tuple[str, ...] | None:
    """The command the leading words name; a command's own flags are not known yet,
    so a flag's value may follow its words (defrag --data-dir DIR)."""
    for length in (2, 1):
        if tuple(words[:length]) in COMMANDS:
            return tuple(words[:length])
    return None


def run(argv: list[str]) -> int:
    if {"-h", "--help", "help"} & set(argv[:1]):
        sys.stdout.write(USAGE)
        return 0
    # Global flags only before the words: a command's own (--name takes a value) are
    # known once the command is.
    words = flags.positionals(GLOBAL_FLAGS, argv)
    name = _command_words(words)
    if name is None:
        if words and words[0] not in GROUPS:
            raise CtlError(EXIT_ERROR, f'unknown command "{words[0]}" for "petcdutl"')
        sys.stdout.write(USAGE)
        return 0
    command = COMMANDS[name]
    if {"-h", "--help"} & set(argv):
        sys.stdout.write(command.help)
        return 0
    parsed = flags.parse(GLOBAL_FLAGS + command.own_flags, argv)
    return command.run(flags.Parsed(parsed.values, parsed.given, parsed.args[len(name):]))


def main() -> None:
    try:
        code = run(sys.argv[1:])
    except CtlError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"Error: {exc.message}\n")
        code = exc.exit_code
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
