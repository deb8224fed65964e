"""Backups of a cluster's data volumes, their locations, and restoring them."""
