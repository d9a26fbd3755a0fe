"""petcd's console scripts run as processes, from this checkout (an installed script
may be another checkout's)."""

from __future__ import annotations

import subprocess
import sys

COMMAND_TIMEOUT_S = 60


def run_script(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The console script `module:main` as a process."""
    return subprocess.run([sys.executable, "-c", f"from {module} import main; main()",
                           *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)


def petcdutl(*args: str) -> subprocess.CompletedProcess[str]:
    return run_script("petcd.client.utl.main", *args)
