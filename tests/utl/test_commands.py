"""petcdutl's command table: version, each command's --help, an unknown command."""

from __future__ import annotations

from petcd import __version__
from tests.utl.tools import petcdutl


def test_version_and_help():
    assert petcdutl("version").stdout == f"petcdutl version: {__version__}\nAPI version: 3.5\n"
    restore_help = petcdutl("snapshot", "restore", "--help").stdout
    assert "--bump-revision uint" in restore_help and "--initial-memory-map-size" in restore_help
    assert "--data-dir string" in petcdutl("defrag", "-h").stdout
    unknown = petcdutl("migrate", "--data-dir", "x")
    assert (unknown.returncode, unknown.stderr) == (1, 'Error: unknown command "migrate" for "petcdutl"\n')
