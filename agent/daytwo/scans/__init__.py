"""Scans: the scan tools run next to a cluster's nodes, and their reports read."""
