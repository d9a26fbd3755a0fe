"""Moved to actors/bus/rundir.py, beside the socket addresses it locks, so that
petcdutl defrag (client/, which may not import nodes/) can take the same lock.
nodes/supervisor.py still imports it from here: it is being changed on another
branch; once that lands, import petcd.actors.bus.rundir there and delete this file."""

from petcd.actors.bus.rundir import RunDir, RunDirBusy

__all__ = ["RunDir", "RunDirBusy"]
