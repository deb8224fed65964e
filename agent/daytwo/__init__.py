"""Day-2 work on running clusters: patching, scans and backups, on schedule and on demand::

DayTwoError (agent.errors.AgentError)
├── OperationError      operations          a cluster or policy the state does not declare
├── UpgradeFailed       patching            a node's upgrade command failed
├── ScanError           scans.scanning      a scan type that has no tool
├── ReportUnreadable    scans.reports       a tool's output is not its report, or not whole
├── BackupFailed        backups.creating    a backup that cannot be made
├── RestoreError        backups.restoring   a backup that cannot be restored
├── LocationError       backups.locations   a folder or S3 bucket that cannot be used
├── HistoryError        history             the record of runs (SQLite)
└── ScheduleError       schedules           the job store (SQLite)
"""

from agent.errors import AgentError


class DayTwoError(AgentError):
    """A day-2 run, its record or its schedule failed; the message is one line."""
