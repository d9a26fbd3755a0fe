"""Parsers for single values that are not URLs: integers, choices, durations and the
auto-compaction retention. Each takes the text as given and raises BadValue with a
reason; the caller names the flag."""

from __future__ import annotations

import re

from .errors import BadValue

_INTEGER = re.compile(r"-?[0-9]+")

# Go's time.ParseDuration units, which etcd uses for --auto-compaction-retention.
_DURATION_UNIT_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}
_DURATION_TERM = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION = re.compile(rf"(?:{_DURATION_TERM.pattern})+")

SECONDS_PER_HOUR = 3600


def parse_int(text: str, minimum: int) -> int:
    """A plain decimal integer, at least `minimum`. Python's int() would also take
    underscores, spaces and non-ASCII digits; etcd (Go) takes none of them."""
    if not _INTEGER.fullmatch(text):
        raise BadValue("must be an integer")
    value = int(text)
    if value < minimum:
        raise BadValue(_below_minimum(minimum))
    return value


def _below_minimum(minimum: int) -> str:
    if minimum == 0:
        return "must not be negative"
    if minimum == 1:
        return "must be greater than 0"
    return f"must be at least {minimum}"


_GO_BOOLS = {**dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
             **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False)}


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool, which etcd's bool flags use."""
    if text not in _GO_BOOLS:
        raise BadValue("must be true or false")
    return _GO_BOOLS[text]


def parse_choice(text: str, choices: tuple[str, ...]) -> str:
    # Case-sensitive, as etcd's flags are.
    if text not in choices:
        raise BadValue(f"must be one of {', '.join(choices)}")
    return text


def parse_duration_seconds(text: str) -> float:
    """A non-negative Go duration ("1h", "30m", "1h30m", "1.5h", "500ms", "0")."""
    if text == "0":
        return 0.0
    if not _DURATION.fullmatch(text):
        raise BadValue('must be a duration such as "1h", "30m" or "5s"')
    return sum(float(n) * _DURATION_UNIT_SECONDS[u] for n, u in _DURATION_TERM.findall(text))


def parse_periodic_retention_seconds(text: str) -> float:
    """etcd's periodic retention: a bare integer counts hours (etcd keeps this for
    compatibility with its first, hours-only form), anything else is a duration."""
    if _INTEGER.fullmatch(text):
        return float(parse_int(text, minimum=0) * SECONDS_PER_HOUR)
    try:
        return parse_duration_seconds(text)
    except BadValue:
        raise BadValue(
            'must be a duration such as "1h", "30m" or "5s", or a whole number of hours '
            "(with --auto-compaction-mode periodic)"
        ) from None


def parse_revision_retention(text: str) -> int:
    # etcd would also read a duration here and use its nanoseconds as a revision
    # count; petcd refuses that rather than keep a surprising number of revisions.
    if not _INTEGER.fullmatch(text):
        raise BadValue("must be a whole number of revisions (with --auto-compaction-mode revision)")
    return parse_int(text, minimum=0)
