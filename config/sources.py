"""Where values come from: command-line flags, PETCD_<FLAG> environment variables and
the YAML --config-file, merged with precedence flag > env > file > default.

Each layer yields text keyed by flag name, tagged with its origin for error messages.
Values are not parsed here; settings.py parses whichever value wins, so a bad value
that is overridden never stops the member from starting (as with etcd's env vars).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, quote
from .flags import CONFIG_FILE_FLAG, ENV_PREFIX, FLAGS, FLAGS_BY_NAME, build_parser

if TYPE_CHECKING:
    import yaml


@dataclass(frozen=True, slots=True)
class RawValue:
    text: str
    origin: str  # "" for the command line, else e.g. "PETCD_NAME" or "config file a.yml"


Layer = dict[str, RawValue]


def merge(*layers_low_to_high: Layer) -> Layer:
    merged: Layer = {}
    for layer in layers_low_to_high:
        merged.update(layer)
    return merged


def from_namespace(namespace: argparse.Namespace) -> Layer:
    # The parser SUPPRESSes flags that were not given, so all keys here were typed.
    return {name: RawValue(text, "") for name, text in vars(namespace).items() if name in FLAGS_BY_NAME}


def from_environ(environ: Mapping[str, str]) -> Layer:
    """PETCD_<FLAG> for every flag. Empty means unset, as etcd reads ETCD_<FLAG>."""
    layer: Layer = {}
    for flag in FLAGS:
        text = environ.get(flag.env_var, "")
        if text:
            layer[flag.name] = RawValue(text, flag.env_var)
    return layer


def unknown_env_vars(environ: Mapping[str, str]) -> tuple[str, ...]:
    """PETCD_* variables that match no flag (a typo, or an etcd flag petcd lacks).
    etcd logs a warning for these; the entry point may do the same."""
    known = {flag.env_var for flag in FLAGS}
    return tuple(sorted(k for k in environ if k.startswith(f"{ENV_PREFIX}_") and k not in known))


def from_file(path_text: str, origin_of_path: str) -> Layer:
    """The YAML config file: a mapping from flag names to scalars; lists are
    comma-separated strings, as in etcd's YAML."""
    document = _read_yaml(path_text, origin_of_path)
    if document is None:  # an empty or all-comments file sets nothing
        return {}
    if not isinstance(document, dict):
        raise ConfigError.invalid(CONFIG_FILE_FLAG, path_text,
                                  f"the file must hold a YAML mapping of flag names to values, "
                                  f"not a {_yaml_kind(document)}", origin_of_path)
    origin = f"config file {path_text}"
    layer: Layer = {}
    for key, value in document.items():
        name = _known_key(key, path_text)
        if value is not None:  # `wal-dir:` with nothing after it leaves the default
            layer[name] = RawValue(_scalar_text(name, value, origin), origin)
    return layer


def _read_yaml(path_text: str, origin_of_path: str) -> object:
    # Imported here, not at the top: every actor process imports this package (for
    # Settings) and PyYAML (18 modules, about 0.8 MiB) is needed by none of them:
    # only the supervisor reads a --config-file, and only when one is given.
    import yaml

    try:
        text = Path(path_text).read_text(encoding="utf-8")
    except OSError as error:
        reason = f"cannot read the config file: {error.strerror or error}"
        raise ConfigError.invalid(CONFIG_FILE_FLAG, path_text, reason, origin_of_path) from None
    except UnicodeDecodeError:
        raise ConfigError.invalid(CONFIG_FILE_FLAG, path_text, "the config file is not UTF-8 text",
                                  origin_of_path) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError.invalid(CONFIG_FILE_FLAG, path_text, _yaml_error_line(error), origin_of_path) from None


def _yaml_error_line(error: yaml.YAMLError) -> str:
    # PyYAML's own message spans several lines; keep the problem and where it is.
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or "invalid YAML"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"invalid YAML{where}: {problem}"


def _known_key(key: object, path_text: str) -> str:
    name = str(key)
    if name == CONFIG_FILE_FLAG:
        raise ConfigError(f"config file {path_text}: key {quote(name)} is not allowed in a config file")
    if name not in FLAGS_BY_NAME:
        raise ConfigError(f"config file {path_text}: unknown key {quote(name)} "
                          f"(keys are petcd's flag names without dashes, e.g. data-dir)")
    return name


def _scalar_text(name: str, value: object, origin: str) -> str:
    # YAML 1.1 reads yes/no/on/off as booleans; none of petcd's flags is a boolean, so
    # a boolean here is a name or word that needs quotes.
    if isinstance(value, bool):
        raise ConfigError.invalid(name, str(value).lower(), "expected a string or number; quote it", origin)
    if isinstance(value, (str, int, float)):
        return str(value)
    reason = f"expected a string or number, not a {_yaml_kind(value)}"
    if isinstance(value, list):
        reason += " (write lists as one comma-separated string, as etcd does)"
    raise ConfigError.invalid(name, _short(value), reason, origin)


_YAML_KINDS: dict[type[object], str] = {list: "list", dict: "mapping"}


def _yaml_kind(value: object) -> str:
    return _YAML_KINDS.get(type(value), type(value).__name__)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def config_file_path(flag_layer: Layer, env_layer: Layer) -> RawValue | None:
    """--config-file itself: flag > env. It cannot come from the file."""
    raw = flag_layer.get(CONFIG_FILE_FLAG) or env_layer.get(CONFIG_FILE_FLAG)
    return raw if raw is not None and raw.text else None


def parse_argv(argv: Sequence[str], prog: str = "petcd") -> Layer:
    """Command-line flags. --help/--version and unknown flags end the process the way
    argparse does (exit 0, or exit 2 with usage), before any config is read."""
    return from_namespace(build_parser(prog).parse_args(list(argv)))

