"""Go's text formats that etcdctl's output is made of, reproduced byte for byte.

- `quote`: strconv.Quote (fmt's %q) of a byte string;
- `duration`: time.Duration.String (e.g. "1.735498ms", "1m30s");
- `parse_duration`: time.ParseDuration, for flags such as --dial-timeout=2s;
- `parse_int`, `parse_uint`: strconv.ParseInt and ParseUint of 64 bits, with their
  error messages;
- `human_bytes`: go-humanize's Bytes (SI units, "20 kB");
- `to_json`: encoding/json of etcd's gogoproto structs: fields named as in the .proto,
  zero values omitted, 64-bit integers as numbers, bytes in base64, enums as
  numbers, a oneof as {"GoName": {"GoFieldName": ...}}.
"""

from __future__ import annotations

import base64
import json
import math
import re

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_SIGNED_DIGITS = {10: re.compile(r"[+-]?[0-9]+"), 16: re.compile(r"[+-]?[0-9a-fA-F]+")}
_UNSIGNED_DIGITS = {10: re.compile(r"[0-9]+"), 16: re.compile(r"[0-9a-fA-F]+")}
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1


def parse_int(text: str, base: int) -> int:
    """strconv.ParseInt(text, base, 64); ValueError with Go's message."""
    return _parse(text, base, "ParseInt", _SIGNED_DIGITS, INT64_MIN, INT64_MAX)


def parse_uint(text: str, base: int) -> int:
    """strconv.ParseUint(text, base, 64) (no sign); ValueError with Go's message."""
    return _parse(text, base, "ParseUint", _UNSIGNED_DIGITS, 0, UINT64_MAX)


def _parse(text: str, base: int, func: str, digits: dict[int, re.Pattern[str]],
           low: int, high: int) -> int:
    # Python's int() also takes "0x", "_" and spaces, which Go refuses.
    if not digits[base].fullmatch(text):
        raise ValueError(f"strconv.{func}: parsing {quote(text.encode())}: invalid syntax")
    value = int(text, base)
    if not low <= value <= high:
        raise ValueError(f"strconv.{func}: parsing {quote(text.encode())}: value out of range")
    return value


_SHORT_ESCAPES = {7: r"\a", 8: r"\b", 12: r"\f", 10: r"\n", 13: r"\r", 9: r"\t",
                  11: r"\v", 0x22: r"\"", 0x5C: r"\\"}


def quote(data: bytes) -> str:
    """Go's %q of string(data): printable runes kept, invalid UTF-8 bytes as \\xNN."""
    out = ['"']
    for char in data.decode("utf-8", errors="surrogateescape"):
        point = ord(char)
        if 0xDC80 <= point <= 0xDCFF:  # an undecodable byte
            out.append(f"\\x{point - 0xDC00:02x}")
        elif point in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[point])
        elif char == " " or (char.isprintable() and not char.isspace()):
            out.append(char)
        elif point < 0x80:
            out.append(f"\\x{point:02x}")
        elif point < 0x10000:
            out.append(f"\\u{point:04x}")
        else:
            out.append(f"\\U{point:08x}")
    out.append('"')
    return "".join(out)


def _fraction(value_ns: int, digits: int) -> tuple[str, int]:
    """Go's fmtFrac: the fraction of value_ns / 10**digits without trailing zeros."""
    whole, frac = divmod(value_ns, 10 ** digits)
    text = f"{frac:0{digits}d}".rstrip("0") if digits else ""
    return ("." + text if text else ""), whole


def duration(seconds: float) -> str:
    """time.Duration(seconds).String()."""
    ns = round(seconds * 1e9)
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for limit, digits, unit in ((1_000, 0, "ns"), (1_000_000, 3, "µs"),
                                    (1_000_000_000, 6, "ms")):
            if ns < limit:
                frac, whole = _fraction(ns, digits)
                return f"{sign}{whole}{frac}{unit}"
    frac, secs = _fraction(ns, 9)
    mins, secs = divmod(secs, 60)
    hours, mins = divmod(mins, 60)
    text = f"{secs}{frac}s"
    if mins or hours:
        text = f"{mins}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


_DURATION_UNITS_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3,
                     "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """time.ParseDuration, in seconds; ValueError with Go's message."""
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(match.group(1)) * _DURATION_UNITS_S[match.group(2)]
        pos = match.end()
    if not body:
        raise ValueError(f'time: invalid duration "{text}"')
    return -total if text.startswith("-") else total


_SI_SUFFIXES = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


def human_bytes(size: int) -> str:
    """go-humanize's Bytes: 20480 -> "20 kB", 1536000 -> "1.5 MB"."""
    if size < 10:
        return f"{size} B"
    exponent = math.floor(math.log(size) / math.log(1000))
    value = math.floor(size / 1000 ** exponent * 10 + 0.5) / 10
    return f"{value:.0f} {_SI_SUFFIXES[exponent]}" if value >= 10 else \
        f"{value:.1f} {_SI_SUFFIXES[exponent]}"


def _go_name(proto_name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in proto_name.split("_"))


def _value(field: FieldDescriptor, value):
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return struct(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value  # ints (enums too), bools and strings print as they are


def struct(message: Message) -> dict:
    """The message as Go's encoding/json sees etcd's generated struct (see above)."""
    out: dict = {}
    for field in message.DESCRIPTOR.fields:
        oneof = field.containing_oneof
        if oneof is not None:  # etcd's protos have no proto3 `optional` fields
            chosen = message.WhichOneof(oneof.name)
            if chosen == field.name:
                out[_go_name(oneof.name)] = {
                    _go_name(chosen): _value(field, getattr(message, chosen))}
            continue
        value = getattr(message, field.name)
        if field.is_repeated:
            if value:
                out[field.name] = [_value(field, item) for item in value]
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if message.HasField(field.name):
                out[field.name] = struct(value)
        elif value:
            out[field.name] = _value(field, value)
    return out


def to_json(value) -> str:
    """json.Marshal's compact text, with its HTML-safe escapes of <, > and &."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
