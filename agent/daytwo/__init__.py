"""Day-2 work on running clusters: patching, scans and backups, on schedule and on demand."""
