"""petcd's configuration: one typed, frozen Settings from etcd-named flags,
PETCD_<FLAG> environment variables and an optional YAML --config-file."""

from .bootstrap import format_initial_cluster, verify_bootstrap
from .errors import ConfigError
from .flags import FLAGS, Flag, build_parser, env_var_for, version_text
from .load import EXIT_BAD_CONFIG, load, load_or_exit
from .settings import Settings, build_settings
from .sources import unknown_env_vars
from .urls import InitialMember, Url, parse_url

__all__ = [
    "EXIT_BAD_CONFIG", "FLAGS", "ConfigError", "Flag", "InitialMember", "Settings", "Url",
    "build_parser", "build_settings", "env_var_for", "format_initial_cluster", "load",
    "load_or_exit", "parse_url", "unknown_env_vars", "verify_bootstrap", "version_text",
]
