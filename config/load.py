"""The entry points: `load(argv, environ)` for code and tests, `load_or_exit(argv)`
for the `petcd` console script."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from .bootstrap import verify_bootstrap
from .errors import ConfigError
from .settings import Settings, build_settings
from .sources import config_file_path, from_environ, from_file, merge, parse_argv

EXIT_BAD_CONFIG = 2  # as argparse exits on a bad command line


def load(argv: Sequence[str], environ: Mapping[str, str], *, bootstrap_checks: bool = True) -> Settings:
    """Settings from flags (argv, without the program name), PETCD_* variables and the
    --config-file, with precedence flag > env > file > default.

    Raises ConfigError for bad configuration. --help and --version print and raise
    SystemExit(0), and an unknown flag raises SystemExit(2), as argparse does.
    With bootstrap_checks=False the --name/--initial-cluster checks that etcd makes
    only before bootstrapping are skipped (see bootstrap.verify_bootstrap).
    """
    flag_layer = parse_argv(argv)
    env_layer = from_environ(environ)
    config_file = config_file_path(flag_layer, env_layer)
    file_layer = from_file(config_file.text, config_file.origin) if config_file else {}
    settings = build_settings(
        merge(file_layer, env_layer, flag_layer),
        config_file=Path(config_file.text) if config_file else None,
    )
    if bootstrap_checks:
        verify_bootstrap(settings)
    return settings


def load_or_exit(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    bootstrap_checks: bool = True,
) -> Settings:
    """`load` for a console script: a ConfigError is printed to stderr as one line and
    the process exits with status 2. Defaults to sys.argv[1:] and os.environ."""
    try:
        return load(
            sys.argv[1:] if argv is None else argv,
            os.environ if environ is None else environ,
            bootstrap_checks=bootstrap_checks,
        )
    except ConfigError as error:
        print(f"petcd: error: {error}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIG) from None
