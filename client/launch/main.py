"""scripts/launch DESCRIPTION --out DIR: each member's config, environment file and
systemd unit in DIR/<name>/, the backup script and timer in DIR/backup/ when the
description asks for backups, then the commands to install and start them.

A description that cannot become a cluster is refused before anything is written:
one line on stderr, exit status 2 (as petcd's own bad configuration).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path, PurePosixPath

from .description import DescriptionError, parse_description, size_warning
from .render import Install, backup_files, member_files
from .steps import backup_steps, check_steps, member_steps

PROG = "scripts/launch"
EXIT_BAD_DESCRIPTION = 2
FALLBACK_PETCD = "/usr/local/bin/petcd"


class OutputError(Exception):
    """--out cannot be written: not the description's fault, so exit status 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("description", type=Path, help="the cluster description (YAML)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the files")
    parser.add_argument("--member", action="append", default=[],
                        help="only this member's files (repeatable); default: every member")
    parser.add_argument("--petcd", default=shutil.which("petcd") or FALLBACK_PETCD,
                        help="the petcd program on the servers; petcdctl beside it "
                             "(default: the petcd on PATH, else %(default)s)")
    parser.add_argument("--config-dir", default="/etc/petcd",
                        help="where the config files go on the servers (default: %(default)s)")
    parser.add_argument("--initial-cluster-state", choices=("new", "existing"), default="new",
                        help="existing: for a member added with `petcdctl member add`")
    return parser


def run(args: argparse.Namespace) -> int:
    description = parse_description(_read(args.description), str(args.description))
    warning = size_warning(len(description.members))
    if warning:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    install = Install(_absolute_program(args.petcd), _absolute_dir(args.config_dir))
    members = [description.member(name) for name in args.member] or list(description.members)
    for member in members:
        _write(args.out / member.name, member_files(description, member, install, args.initial_cluster_state))
        print(member_steps(member, install, str(args.out)))
    if description.backup is not None:
        _write(args.out / "backup", backup_files(description, description.backup, install))
        print(backup_steps(description.backup, install, str(args.out)))
    print(check_steps(description, install), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except DescriptionError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_BAD_DESCRIPTION
    except OutputError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise DescriptionError(f"{path}: cannot read the description: {reason}") from None


def _absolute_program(path: str) -> str:
    absolute = os.path.abspath(path)
    if any(c.isspace() for c in absolute):
        raise DescriptionError(f"--petcd: {absolute!r}: a path without spaces")
    return absolute


def _absolute_dir(path: str) -> str:
    if not PurePosixPath(path).is_absolute() or any(c.isspace() for c in path):
        raise DescriptionError(f"--config-dir: {path!r}: an absolute path without spaces")
    return path


def _write(folder: Path, files: dict[str, str]) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
    except OSError as error:
        raise OutputError(f"cannot write {error.filename}: {error.strerror or error}") from None


if __name__ == "__main__":
    sys.exit(main())
