"""petcdutl's log lines: one JSON object each on stderr, as petcd's own logs are (and
etcdutl's zap lines, with etcd's messages and field names where it has them)."""

from __future__ import annotations

import json
import sys
import time


def log(msg: str, level: str = "info", **fields: object) -> None:
    line = {"level": level, "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "msg": msg, **fields}
    sys.stderr.write(json.dumps(line) + "\n")
    sys.stderr.flush()
